"""cost_entry: exact money (integer 1/10,000 KRW), status/provider/alert/subscriber, the report index

Float KRW columns drift when millions of rows are summed; integers sum exactly on SQLite and PostgreSQL.
Old rows are filled from their float prices (rounded once) and from their delivery.

Revision ID: 0006
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cost_entry") as batch_op:
        batch_op.add_column(sa.Column("price_e4", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("baseline_e4", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("short_saving_e4", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("provider", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("alert_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("subscriber_id", sa.Integer(), nullable=True))
    op.execute("UPDATE cost_entry SET price_e4 = CAST(ROUND(price_krw * 10000) AS BIGINT), "
               "baseline_e4 = CAST(ROUND(baseline_krw * 10000) AS BIGINT), "
               "status = (SELECT d.status FROM delivery d WHERE d.id = cost_entry.delivery_id), "
               "provider = (SELECT d.provider FROM delivery d WHERE d.id = cost_entry.delivery_id), "
               "alert_id = (SELECT d.alert_id FROM delivery d WHERE d.id = cost_entry.delivery_id), "
               "subscriber_id = (SELECT d.subscriber_id FROM delivery d WHERE d.id = cost_entry.delivery_id)")
    op.create_index("ix_cost_entry_report", "cost_entry",
                    ["month", "dry_run", "channel", "status", "price_e4", "baseline_e4", "short_saving_e4"])


def downgrade() -> None:
    op.drop_index("ix_cost_entry_report", table_name="cost_entry")
    with op.batch_alter_table("cost_entry") as batch_op:
        for name in ("subscriber_id", "alert_id", "provider", "status", "short_saving_e4", "baseline_e4",
                     "price_e4"):
            batch_op.drop_column(name)
