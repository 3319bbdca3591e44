"""delivery: an index in the claim's order (status, priority DESC, id)

The dispatcher claims the highest-priority queued rows first (then the oldest). Without an index in that order
every claim read and sorted every queued row: 45-65 ms per claim of 250 with 100,000 queued, four claims a second
at 1,000/s, which held the achieved rate well under the configured one. With it a claim reads its own rows
(1-6 ms). It costs the outbox write about a tenth more.

Revision ID: 0016
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_delivery_claim", "delivery", ["status", sa.text("priority DESC"), "id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_claim", table_name="delivery")
