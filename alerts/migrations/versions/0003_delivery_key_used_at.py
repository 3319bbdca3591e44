"""delivery.key_used_at: when a batch's idempotency key was first sent

A batch whose outcome is unknown keeps its key and comes back later; once the provider has forgotten the
key (NHN: 10 minutes) the dispatcher asks what arrived before sending again, measured from this time.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.sqltypes

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.add_column(sa.Column("key_used_at", subscribers.sqltypes.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_column("key_used_at")
