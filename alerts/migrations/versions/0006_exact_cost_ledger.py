"""cost_entry: exact money (integer 1/10,000 KRW), status/provider/alert/subscriber; the month rollup

Float KRW columns drift when millions of rows are summed; integers sum exactly on SQLite and PostgreSQL.
Old rows are filled from their float prices (rounded once) and from their delivery.

``cost_rollup`` and ``cost_recipient`` are kept by triggers on ``cost_entry`` (like 0002's change log: every
writer is counted, whoever it is), so a month's report over five million ledger rows reads a few rows.
SQLite: row triggers updating one row per group (one writer at a time, so no lock cycles). PostgreSQL:
statement triggers with transition tables appending one delta row per statement and group: no two workers
ever wait on the same rollup row.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_ROLLUP_COLUMNS = "month, dry_run, channel, status, messages, price_e4, baseline_e4, short_messages, short_e4"


def _sqlite_rollup(row: str, sign: str) -> str:
    return (f"INSERT INTO cost_rollup ({_ROLLUP_COLUMNS}) VALUES ({row}.month, {row}.dry_run, {row}.channel, "
            f"COALESCE({row}.status, ''), {sign}1, {sign}COALESCE({row}.price_e4, 0), "
            f"{sign}COALESCE({row}.baseline_e4, 0), {sign}({row}.short_saving_e4 IS NOT NULL), "
            f"{sign}COALESCE({row}.short_saving_e4, 0)) "
            "ON CONFLICT (month, dry_run, channel, status) DO UPDATE SET messages = messages + excluded.messages, "
            "price_e4 = price_e4 + excluded.price_e4, baseline_e4 = baseline_e4 + excluded.baseline_e4, "
            "short_messages = short_messages + excluded.short_messages, short_e4 = short_e4 + excluded.short_e4;")


_SQLITE_ADD_RECIPIENT = ("INSERT OR IGNORE INTO cost_recipient (month, dry_run, subscriber_id) "
                         "SELECT NEW.month, NEW.dry_run, NEW.subscriber_id WHERE NEW.subscriber_id IS NOT NULL;")
_SQLITE_DROP_RECIPIENT = ("DELETE FROM cost_recipient WHERE month = OLD.month AND dry_run = OLD.dry_run "
                          "AND subscriber_id = OLD.subscriber_id AND NOT EXISTS (SELECT 1 FROM cost_entry e "
                          "WHERE e.month = OLD.month AND e.dry_run = OLD.dry_run "
                          "AND e.subscriber_id = OLD.subscriber_id);")
_SQLITE_TRIGGERS = {
    "cost_rollup_insert": f"CREATE TRIGGER cost_rollup_insert AFTER INSERT ON cost_entry BEGIN "
                          f"{_sqlite_rollup('NEW', '')} {_SQLITE_ADD_RECIPIENT} END",
    "cost_rollup_delete": f"CREATE TRIGGER cost_rollup_delete AFTER DELETE ON cost_entry BEGIN "
                          f"{_sqlite_rollup('OLD', '-')} {_SQLITE_DROP_RECIPIENT} END",
    "cost_rollup_update": f"CREATE TRIGGER cost_rollup_update AFTER UPDATE ON cost_entry BEGIN "
                          f"{_sqlite_rollup('OLD', '-')} {_sqlite_rollup('NEW', '')} {_SQLITE_DROP_RECIPIENT} "
                          f"{_SQLITE_ADD_RECIPIENT} END",
}


def _pg_rollup(table: str, sign: str) -> str:
    return (f"INSERT INTO cost_rollup ({_ROLLUP_COLUMNS}) SELECT month, dry_run, channel, COALESCE(status, ''), "
            f"{sign}count(*), {sign}COALESCE(sum(price_e4), 0), {sign}COALESCE(sum(baseline_e4), 0), "
            f"{sign}count(short_saving_e4), {sign}COALESCE(sum(short_saving_e4), 0) FROM {table} "
            "GROUP BY month, dry_run, channel, COALESCE(status, '')")


_PG_ADD_RECIPIENTS = ("INSERT INTO cost_recipient (month, dry_run, subscriber_id) SELECT DISTINCT month, dry_run, "
                      "subscriber_id FROM cost_new WHERE subscriber_id IS NOT NULL ORDER BY 1, 2, 3 "
                      "ON CONFLICT DO NOTHING")
_PG_DROP_RECIPIENTS = ("DELETE FROM cost_recipient r USING (SELECT DISTINCT month, dry_run, subscriber_id "
                       "FROM cost_old) o WHERE r.month = o.month AND r.dry_run = o.dry_run "
                       "AND r.subscriber_id = o.subscriber_id AND NOT EXISTS (SELECT 1 FROM cost_entry e "
                       "WHERE e.month = o.month AND e.dry_run = o.dry_run AND e.subscriber_id = o.subscriber_id)")
_PG_FUNCTIONS = {
    "alimcast_cost_inserted": f"{_pg_rollup('cost_new', '')}; {_PG_ADD_RECIPIENTS}",
    "alimcast_cost_deleted": f"{_pg_rollup('cost_old', '-')}; {_PG_DROP_RECIPIENTS}",
    "alimcast_cost_updated": f"{_pg_rollup('cost_old', '-')}; {_pg_rollup('cost_new', '')}; "
                             f"{_PG_DROP_RECIPIENTS}; {_PG_ADD_RECIPIENTS}",
}
_PG_TRIGGERS = (
    ("cost_rollup_insert", "INSERT", "NEW TABLE AS cost_new", "alimcast_cost_inserted"),
    ("cost_rollup_delete", "DELETE", "OLD TABLE AS cost_old", "alimcast_cost_deleted"),
    ("cost_rollup_update", "UPDATE", "NEW TABLE AS cost_new OLD TABLE AS cost_old", "alimcast_cost_updated"),
)


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
    op.create_index("ix_delivery_failed_finished", "delivery", ["finished_at"],
                    sqlite_where=sa.text("status = 'failed'"), postgresql_where=sa.text("status = 'failed'"))
    op.create_table(
        "cost_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("price_e4", sa.BigInteger(), nullable=False),
        sa.Column("baseline_e4", sa.BigInteger(), nullable=False),
        sa.Column("short_messages", sa.BigInteger(), nullable=False),
        sa.Column("short_e4", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    # SQLite updates one row per group in place (its upsert needs the key unique); PostgreSQL appends deltas.
    op.create_index("ix_cost_rollup_key", "cost_rollup", ["month", "dry_run", "channel", "status"],
                    unique=not postgres)
    op.create_table(
        "cost_recipient",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("month", "dry_run", "subscriber_id"),
    )
    op.execute(f"INSERT INTO cost_rollup ({_ROLLUP_COLUMNS}) SELECT month, dry_run, channel, COALESCE(status, ''), "
               "count(*), COALESCE(sum(price_e4), 0), COALESCE(sum(baseline_e4), 0), count(short_saving_e4), "
               "COALESCE(sum(short_saving_e4), 0) FROM cost_entry GROUP BY month, dry_run, channel, "
               "COALESCE(status, '')")
    op.execute("INSERT INTO cost_recipient (month, dry_run, subscriber_id) SELECT DISTINCT month, dry_run, "
               "subscriber_id FROM cost_entry WHERE subscriber_id IS NOT NULL")
    if postgres:
        for name, body in _PG_FUNCTIONS.items():
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body}; "
                       "RETURN NULL; END $$")
        for trigger, event, referencing, function in _PG_TRIGGERS:
            op.execute(f"CREATE TRIGGER {trigger} AFTER {event} ON cost_entry REFERENCING {referencing} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    else:
        for ddl in _SQLITE_TRIGGERS.values():
            op.execute(ddl)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger, _event, _referencing, _function in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON cost_entry")
        for name in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("cost_recipient")
    op.drop_index("ix_delivery_failed_finished", table_name="delivery")
    op.drop_index("ix_cost_rollup_key", table_name="cost_rollup")
    op.drop_table("cost_rollup")
    op.drop_index("ix_cost_entry_report", table_name="cost_entry")
    with op.batch_alter_table("cost_entry") as batch_op:
        for name in ("subscriber_id", "alert_id", "provider", "status", "short_saving_e4", "baseline_e4",
                     "price_e4"):
            batch_op.drop_column(name)
