"""delivery.carried_by, delivery.grouped_until: several warnings for one person in one message

A storm (five zone warnings at once, a typhoon crossing several seas) groups one person's new warnings: one
row (the group's head) carries the grouped message, the others point to it (``carried_by``, status
``carried``). ``grouped_until`` is when a group still gathering warnings goes.

Revision ID: 0005
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.sqltypes

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.add_column(sa.Column("carried_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("grouped_until", subscribers.sqltypes.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index("ix_delivery_carried_by", ["carried_by"])


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_index("ix_delivery_carried_by")
        batch_op.drop_column("grouped_until")
        batch_op.drop_column("carried_by")
