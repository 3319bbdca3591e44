"""subscription change log

A table that database triggers fill whenever who is subscribed where may have changed, so an in-memory
zone index can stay exact without trusting every writer to report its changes
(see ``subscribers.models.SubscriptionChange`` and ``subscribers.live_zone_index``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 17:32:14.171889
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_NOW = "(julianday('now') - 2440587.5) * 86400.0"

#: SQLite: row triggers (the only kind it has). A subscription moved between people logs both.
_SQLITE_TRIGGERS = {
    "subscription_change_insert": f"""
        CREATE TRIGGER subscription_change_insert AFTER INSERT ON subscription BEGIN
            INSERT INTO subscription_change (subscriber_id, changed_at) VALUES (NEW.subscriber_id, {_SQLITE_NOW});
        END""",
    "subscription_change_delete": f"""
        CREATE TRIGGER subscription_change_delete AFTER DELETE ON subscription BEGIN
            INSERT INTO subscription_change (subscriber_id, changed_at) VALUES (OLD.subscriber_id, {_SQLITE_NOW});
        END""",
    "subscription_change_update": f"""
        CREATE TRIGGER subscription_change_update AFTER UPDATE ON subscription BEGIN
            INSERT INTO subscription_change (subscriber_id, changed_at) VALUES (NEW.subscriber_id, {_SQLITE_NOW});
            INSERT INTO subscription_change (subscriber_id, changed_at)
                SELECT OLD.subscriber_id, {_SQLITE_NOW} WHERE OLD.subscriber_id IS NOT NEW.subscriber_id;
        END""",
    "subscriber_status_change": f"""
        CREATE TRIGGER subscriber_status_change AFTER UPDATE OF status ON subscriber
        WHEN OLD.status IS NOT NEW.status BEGIN
            INSERT INTO subscription_change (subscriber_id, changed_at) VALUES (NEW.id, {_SQLITE_NOW});
        END""",
}

_PG_ROW = "pg_current_xact_id()::text::bigint, extract(epoch from clock_timestamp())::double precision"

#: PostgreSQL: statement triggers with transition tables, so a 20,000-row import chunk logs in one INSERT.
_PG_FUNCTIONS = {
    "alimcast_subscription_inserted": f"""
        INSERT INTO subscription_change (subscriber_id, txn, changed_at)
            SELECT DISTINCT subscriber_id, {_PG_ROW} FROM changed_new""",
    "alimcast_subscription_deleted": f"""
        INSERT INTO subscription_change (subscriber_id, txn, changed_at)
            SELECT DISTINCT subscriber_id, {_PG_ROW} FROM changed_old""",
    "alimcast_subscription_updated": f"""
        INSERT INTO subscription_change (subscriber_id, txn, changed_at)
            SELECT DISTINCT subscriber_id, {_PG_ROW}
            FROM (SELECT subscriber_id FROM changed_new UNION SELECT subscriber_id FROM changed_old) AS moved""",
    "alimcast_subscriber_status_changed": f"""
        INSERT INTO subscription_change (subscriber_id, txn, changed_at)
            SELECT n.id, {_PG_ROW} FROM changed_new n JOIN changed_old o ON o.id = n.id
            WHERE o.status IS DISTINCT FROM n.status""",
}
_PG_TRIGGERS = (
    ("subscription_change_insert", "INSERT", "subscription", "NEW TABLE AS changed_new",
     "alimcast_subscription_inserted"),
    ("subscription_change_delete", "DELETE", "subscription", "OLD TABLE AS changed_old",
     "alimcast_subscription_deleted"),
    ("subscription_change_update", "UPDATE", "subscription", "NEW TABLE AS changed_new OLD TABLE AS changed_old",
     "alimcast_subscription_updated"),
    ("subscriber_status_change", "UPDATE", "subscriber", "NEW TABLE AS changed_new OLD TABLE AS changed_old",
     "alimcast_subscriber_status_changed"),
)


def upgrade() -> None:
    op.create_table(
        "subscription_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("txn", sa.BigInteger(), nullable=True),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_subscription_change_txn", "subscription_change", ["txn"], unique=False,
                    sqlite_where=sa.text("txn IS NOT NULL"), postgresql_where=sa.text("txn IS NOT NULL"))
    if op.get_bind().dialect.name == "postgresql":
        for name, body in _PG_FUNCTIONS.items():
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body}; "
                       "RETURN NULL; END $$")
        for trigger, event, table, referencing, function in _PG_TRIGGERS:
            op.execute(f"CREATE TRIGGER {trigger} AFTER {event} ON {table} REFERENCING {referencing} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    else:
        for ddl in _SQLITE_TRIGGERS.values():
            op.execute(ddl)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger, _event, table, _referencing, _function in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        for name in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_subscription_change_txn", table_name="subscription_change")
    op.drop_table("subscription_change")
