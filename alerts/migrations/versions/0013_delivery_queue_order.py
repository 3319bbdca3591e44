"""delivery (status, priority DESC, id): the dispatcher's claim order from an index, not a sort of the queue

Revision ID: 0013
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_delivery_queue_order", "delivery", ["status", sa.text("priority DESC"), "id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_queue_order", table_name="delivery")
