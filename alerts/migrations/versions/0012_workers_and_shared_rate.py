"""worker, send_reservation: several workers on one provider account

``send_reservation`` is the provider account's send window shared by every worker on one PostgreSQL
database (alerts/delivery/shared_rate.py): one row per request in flight or answered less than a second ago.
``worker`` is the registry of running ``alimcast run`` processes and their heartbeats (alerts/workers.py).

Revision ID: 0012
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.sqltypes

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_reservation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("started_at", subscribers.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", subscribers.sqltypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("counts_until", subscribers.sqltypes.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_send_reservation_counts_until", "send_reservation", ["counts_until"])
    op.create_table(
        "worker",
        sa.Column("id", sa.String(length=200), primary_key=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", subscribers.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", subscribers.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("polls", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("holds", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("sent", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("stopped_at", subscribers.sqltypes.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("worker")
    op.drop_index("ix_send_reservation_counts_until", table_name="send_reservation")
    op.drop_table("send_reservation")
