"""subscription: the indexes a million-row import pays for, trimmed; the PostgreSQL change log once per person

Measured on a 1,000,000-person import (2.2 million zone rows), every index of ``subscription`` is paid for
each zone row:
- ``ix_subscription_subscriber_id`` repeats the leading column of ``uq_subscription`` (subscriber_id, kind,
  ...), which already serves every lookup by person and the foreign key's cascade: dropped.
- ``ix_subscription_mmsi`` held one NULL entry per zone and point row; only vessel rows have an MMSI, and
  every query by MMSI (``mmsi = x``, ``mmsi IN (...)``) implies ``mmsi IS NOT NULL``: now partial.
- PostgreSQL's statement triggers wrote ``SELECT DISTINCT subscriber_id, <txn>, clock_timestamp()``, and
  clock_timestamp() differs per row, so the DISTINCT kept one change row per zone row; now one per person
  and statement, as the live zone index and the catch-up read it (by person).

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_ROW = "pg_current_xact_id()::text::bigint, extract(epoch from clock_timestamp())::double precision"

_PG_FUNCTIONS = {
    "alimcast_subscription_inserted": ("changed_new",),
    "alimcast_subscription_deleted": ("changed_old",),
    "alimcast_subscription_updated": ("changed_new", "changed_old"),
}


def _pg_function(name: str, body: str) -> str:
    return (f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body}; "
            "RETURN NULL; END $$")


def _once_per_person(tables: Sequence[str]) -> str:
    people = " UNION ".join(f"SELECT DISTINCT subscriber_id FROM {t}" for t in tables)
    return (f"INSERT INTO subscription_change (subscriber_id, txn, changed_at) "
            f"SELECT subscriber_id, {_PG_ROW} FROM ({people}) AS changed")


def _as_before(tables: Sequence[str]) -> str:  # 0002's bodies, for the downgrade
    if len(tables) == 1:
        return (f"INSERT INTO subscription_change (subscriber_id, txn, changed_at) "
                f"SELECT DISTINCT subscriber_id, {_PG_ROW} FROM {tables[0]}")
    return (f"INSERT INTO subscription_change (subscriber_id, txn, changed_at) "
            f"SELECT DISTINCT subscriber_id, {_PG_ROW} FROM (SELECT subscriber_id FROM changed_new UNION SELECT subscriber_id FROM changed_old) AS moved")


def upgrade() -> None:
    # plain index DDL (no batch mode: SQLite must not copy the table, its change-log triggers stay)
    op.drop_index("ix_subscription_subscriber_id", table_name="subscription")
    op.drop_index("ix_subscription_mmsi", table_name="subscription")
    op.create_index("ix_subscription_mmsi", "subscription", ["mmsi"], unique=False,
                    sqlite_where=sa.text("mmsi IS NOT NULL"), postgresql_where=sa.text("mmsi IS NOT NULL"))
    if op.get_bind().dialect.name == "postgresql":
        for name, tables in _PG_FUNCTIONS.items():
            op.execute(_pg_function(name, _once_per_person(tables)))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, tables in _PG_FUNCTIONS.items():
            op.execute(_pg_function(name, _as_before(tables)))
    op.drop_index("ix_subscription_mmsi", table_name="subscription")
    op.create_index("ix_subscription_mmsi", "subscription", ["mmsi"], unique=False)
    op.create_index("ix_subscription_subscriber_id", "subscription", ["subscriber_id"], unique=False)
