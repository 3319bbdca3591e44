"""vessel change log

Database triggers note every vessel whose latest fix (or existence) changed, so the in-memory geometry index
(``subscribers.live_geoindex``) can answer exactly from a snapshot while a new one is built in the background:
it rechecks just the vessels logged since its snapshot, as the zone index does with ``subscription_change``.

Revision ID: 0021
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_NOW = "(julianday('now') - 2440587.5) * 86400.0"

_SQLITE_TRIGGERS = {
    "vessel_change_insert": f"""
        CREATE TRIGGER vessel_change_insert AFTER INSERT ON vessel BEGIN
            INSERT INTO vessel_change (mmsi, changed_at) VALUES (NEW.mmsi, {_SQLITE_NOW});
        END""",
    "vessel_change_delete": f"""
        CREATE TRIGGER vessel_change_delete AFTER DELETE ON vessel BEGIN
            INSERT INTO vessel_change (mmsi, changed_at) VALUES (OLD.mmsi, {_SQLITE_NOW});
        END""",
    "vessel_change_update": f"""
        CREATE TRIGGER vessel_change_update AFTER UPDATE OF mmsi, last_lat, last_lon, last_fix_at ON vessel BEGIN
            INSERT INTO vessel_change (mmsi, changed_at) VALUES (NEW.mmsi, {_SQLITE_NOW});
            INSERT INTO vessel_change (mmsi, changed_at)
                SELECT OLD.mmsi, {_SQLITE_NOW} WHERE OLD.mmsi IS NOT NEW.mmsi;
        END""",
}

_PG_ROW = "pg_current_xact_id()::text::bigint, extract(epoch from clock_timestamp())::double precision"

_PG_FUNCTIONS = {
    "alimcast_vessel_inserted": ("changed_new",),
    "alimcast_vessel_deleted": ("changed_old",),
    "alimcast_vessel_updated": ("changed_new", "changed_old"),
}
_PG_TRIGGERS = (
    ("vessel_change_insert", "INSERT", "NEW TABLE AS changed_new", "alimcast_vessel_inserted"),
    ("vessel_change_delete", "DELETE", "OLD TABLE AS changed_old", "alimcast_vessel_deleted"),
    ("vessel_change_update", "UPDATE", "NEW TABLE AS changed_new OLD TABLE AS changed_old", "alimcast_vessel_updated"),
)


#: An UPDATE logs only rows whose position (or MMSI) changed: PostgreSQL allows no column list with transition tables.
_PG_MOVED = ("SELECT n.mmsi FROM changed_new n JOIN changed_old o ON o.id = n.id WHERE "
             "(o.mmsi, o.last_lat, o.last_lon, o.last_fix_at) IS DISTINCT FROM (n.mmsi, n.last_lat, n.last_lon, "
             "n.last_fix_at) UNION SELECT o.mmsi FROM changed_new n JOIN changed_old o ON o.id = n.id "
             "WHERE o.mmsi IS DISTINCT FROM n.mmsi")


def _pg_body(tables: Sequence[str]) -> str:
    if len(tables) == 2:
        return f"INSERT INTO vessel_change (mmsi, txn, changed_at) SELECT mmsi, {_PG_ROW} FROM ({_PG_MOVED}) AS moved"
    vessels = " UNION ".join(f"SELECT DISTINCT mmsi FROM {t}" for t in tables)
    return f"INSERT INTO vessel_change (mmsi, txn, changed_at) SELECT mmsi, {_PG_ROW} FROM ({vessels}) AS changed"


def upgrade() -> None:
    op.create_table(
        "vessel_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mmsi", sa.BigInteger(), nullable=False),
        sa.Column("txn", sa.BigInteger(), nullable=True),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_vessel_change_txn", "vessel_change", ["txn"], unique=False,
                    sqlite_where=sa.text("txn IS NOT NULL"), postgresql_where=sa.text("txn IS NOT NULL"))
    if op.get_bind().dialect.name == "postgresql":
        for name, tables in _PG_FUNCTIONS.items():
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {_pg_body(tables)}; "
                       "RETURN NULL; END $$")
        for trigger, event, referencing, function in _PG_TRIGGERS:
            op.execute(f"CREATE TRIGGER {trigger} AFTER {event} ON vessel REFERENCING {referencing} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    else:
        for ddl in _SQLITE_TRIGGERS.values():
            op.execute(ddl)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger, _event, _referencing, _function in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON vessel")
        for name in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_vessel_change_txn", table_name="vessel_change")
    op.drop_table("vessel_change")
