"""The write side of the bulk subscriber import, one class per engine, one interface.

``subscribers.csv_import`` decides, per chunk of parsed rows, who is new, who changed and which zone rows
are missing; these writers only move the rows into the tables as cheaply as each engine allows, so both
engines give the same rows for the same file (a contract test checks it).

SQLite (``SqliteBulkWriter``): the driver's ``executemany`` with plain tuples under the write lock taken
first thing in each chunk. Two things measured on a million rows (2.2 million zone rows):
- the per-row change-log trigger ``subscription_change_insert`` cost more than every insert together (~18 us
  a row). Inside the chunk's transaction the trigger is dropped, the zone rows are written, one change-log
  row per person is written in one statement, and the trigger is created again from its own stored SQL,
  before the commit. SQLite DDL is transactional and the write lock is ours, so no other writer can ever
  see the table without its trigger; a rollback restores it. The live zone index and the catch-up read the
  log by person (``DISTINCT subscriber_id``), so one row per person says what one row per zone row said.
- ids are handed out here (max(id) + 1 ..., what SQLite itself would pick), under the lock, so reading
  them back by phone is not needed; a plain INSERT (no ON CONFLICT) fails loudly if that ever went wrong.

PostgreSQL (``PostgresBulkWriter``): ``COPY`` (psycopg's ``cursor.copy``). Each chunk first locks the
``subscriber`` table against other writers (SHARE ROW EXCLUSIVE: readers go on, another import or
``subscribers add`` waits for the chunk, as on SQLite), so the people found missing are still missing when
they are written: they, and their zone rows, are COPied straight into the tables with ids drawn from the
table's sequence. Zones added to people already stored go through a staging table and ``INSERT ... SELECT
... ON CONFLICT DO NOTHING`` (another writer may add the same zone meanwhile). The statement-level
change-log triggers (transition tables) fire once per statement, COPY included.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import ARRAY, Integer, String, any_, bindparam, func, literal_column, select
from sqlalchemy.engine import Connection

from subscribers.models import Subscriber, Subscription

_SUBSCRIBER = Subscriber.__table__  # type: ignore[attr-defined]
_SUBSCRIPTION = Subscription.__table__  # type: ignore[attr-defined]

#: Columns of a new person taken from the file, in the order of the tuples given to ``insert_people``.
PERSON_COLUMNS = (
    "phone", "name", "language", "min_severity", "categories", "hazards", "quiet_start_min", "quiet_end_min",
)
#: Columns read for people already stored (what an import may change, and whether they unsubscribed).
EXISTING_COLUMNS = (
    "id", "phone", "name", "min_severity", "language", "categories", "quiet_start_min", "quiet_end_min",
    "status", "unsubscribed_at", "hazards",
)
#: The change-log trigger a bulk zone insert replaces with one row per person (migration 0002).
CHANGE_TRIGGER = "subscription_change_insert"
_SQLITE_NOW = "(julianday('now') - 2440587.5) * 86400.0"  # the trigger's own clock expression


def json_list(values: Sequence[str]) -> str:
    """The stored text of a JSON list column (the engines' serializer is orjson too)."""
    return orjson.dumps(list(values)).decode()


class BulkWriter:
    """What ``csv_import`` needs from an engine; every method works inside :meth:`chunk`."""

    def __init__(self, conn: Connection, owns_transactions: bool) -> None:
        self.conn = conn
        #: True when the import opened the connection (an Engine): each chunk is then its own transaction.
        self.owns_transactions = owns_transactions
        dialect = conn.dialect.name
        s, sub = _SUBSCRIBER.c, _SUBSCRIPTION.c
        # One bound parameter for the whole list: an expanding IN of 10,000 values cost SQLAlchemy more to
        # render than the database took to answer.
        self._existing = select(*(s[c] for c in EXISTING_COLUMNS)).where(_one_param(s.phone, dialect, String))
        self._zones = select(sub.subscriber_id, sub.zone_code).where(
            _one_param(sub.subscriber_id, dialect, Integer), sub.kind == "zone")
        self._dialect = dialect

    @contextmanager
    def chunk(self) -> Iterator[None]:
        if self.owns_transactions:
            with self.conn.begin():
                yield
        else:
            yield

    def _list(self, values: Sequence[Any]) -> Any:
        return list(values) if self._dialect == "postgresql" else orjson.dumps(list(values)).decode()

    def existing(self, phones: Sequence[str]) -> dict[str, Any]:
        """Stored people among these phones, by phone (typed rows: datetimes, decoded JSON)."""
        if not phones:
            return {}
        return {row.phone: row for row in self.conn.execute(self._existing, {"values": self._list(phones)})}

    def zones_of(self, subscriber_ids: Sequence[int]) -> dict[int, set[str]]:
        have: dict[int, set[str]] = {}
        if subscriber_ids:
            for sid, code in self.conn.execute(self._zones, {"values": self._list(subscriber_ids)}):
                have.setdefault(sid, set()).add(code)
        return have

    def insert_people(self, rows: Sequence[tuple[Any, ...]],
                      constants: dict[str, Any]) -> tuple[dict[str, int], set[str]]:
        """New people (tuples in ``PERSON_COLUMNS`` order, sorted by phone). Returns phone -> id for all of them,
        and the phones another writer added meanwhile (their rows were not ours to write; PostgreSQL only)."""
        raise NotImplementedError

    def insert_zones(self, pairs: Sequence[tuple[int, str]], *, new_people: bool = False) -> None:
        """(subscriber id, leaf zone code) rows of kind zone, logged in the change log per person.
        ``new_people``: every id is a person this chunk inserted (no other writer can hold their rows)."""
        raise NotImplementedError


def _one_param(column: Any, dialect: str, item_type: Any) -> Any:
    if dialect == "postgresql":
        return column == any_(bindparam("values", type_=ARRAY(item_type)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam("values", type_=String))))


class SqliteBulkWriter(BulkWriter):
    def __init__(self, conn: Connection, owns_transactions: bool) -> None:
        super().__init__(conn, owns_transactions)
        found = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ? "
                                     "AND tbl_name = 'subscription'", (CHANGE_TRIGGER,)).scalar()
        #: The trigger's own DDL, re-created as stored (None: a schema without the change log, e.g. create_all).
        self._trigger_sql: str | None = found if found and "subscription_change" in found else None

    @contextmanager
    def chunk(self) -> Iterator[None]:
        with super().chunk():
            # A write first: the driver opens the transaction and SQLite hands us the write lock now, so the
            # reads below (who exists, max(id)) cannot be overtaken by another writer before our inserts.
            self.conn.exec_driver_sql("DELETE FROM subscription_change WHERE 0" if self._trigger_sql
                                      else "DELETE FROM subscription WHERE 0")
            if self._trigger_sql is None:
                yield
                return
            self.conn.exec_driver_sql(f"DROP TRIGGER {CHANGE_TRIGGER}")
            try:
                yield
            except BaseException:
                # a caller's Session that catches the error and commits keeps its trigger (unless the
                # database already rolled the transaction back, which restored it)
                if not self._trigger_exists():
                    self.conn.exec_driver_sql(self._trigger_sql)
                raise
            self.conn.exec_driver_sql(self._trigger_sql)

    def _trigger_exists(self) -> bool:
        return self.conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                                         (CHANGE_TRIGGER,)).first() is not None

    def insert_people(self, rows: Sequence[tuple[Any, ...]],
                      constants: dict[str, Any]) -> tuple[dict[str, int], set[str]]:
        if not rows:
            return {}, set()
        names = [*PERSON_COLUMNS, *constants, "id"]
        sql = (f"INSERT INTO subscriber ({', '.join(names)}) "
               f"VALUES ({', '.join('?' * len(names))})")
        const = tuple(_sqlite_value(_SUBSCRIBER.c[k], v, self.conn) for k, v in constants.items())
        first = int(self.conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM subscriber").scalar_one()) + 1
        ids = range(first, first + len(rows))
        self.conn.exec_driver_sql(sql, [(*row, *const, sid) for row, sid in zip(rows, ids, strict=True)])
        return {row[0]: sid for row, sid in zip(rows, ids, strict=True)}, set()

    def insert_zones(self, pairs: Sequence[tuple[int, str]], *, new_people: bool = False) -> None:
        if not pairs:
            return
        self.conn.exec_driver_sql("INSERT INTO subscription (subscriber_id, kind, zone_code) VALUES (?, 'zone', ?) "
                                  "ON CONFLICT DO NOTHING", pairs)
        if self._trigger_sql is not None:
            people = sorted({sid for sid, _ in pairs})
            self.conn.exec_driver_sql(
                f"INSERT INTO subscription_change (subscriber_id, changed_at) "
                f"SELECT value, {_SQLITE_NOW} FROM json_each(?)", (orjson.dumps(people).decode(),))


def _sqlite_value(column: Any, value: Any, conn: Connection) -> Any:
    """The value as SQLAlchemy would hand it to the driver (e.g. a UTC datetime as SQLite's text)."""
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return process(value) if process else value


_STAGING_ZONES = "alimcast_import_zones"


#: The change-log row the PostgreSQL triggers write (migrations 0002/0013), for the people a chunk gave zones.
_PG_LOG_PEOPLE = (
    "WITH logged AS (INSERT INTO subscription_change (subscriber_id, txn, changed_at) "
    "SELECT p.id, pg_current_xact_id()::text::bigint, extract(epoch from clock_timestamp())::double precision "
    "FROM subscriber p WHERE p.id = ANY(%(ids)s) ORDER BY p.id RETURNING 1) SELECT count(*) FROM logged")

#: Why the fast path for new people's zone rows may set the per-row triggers of ``subscription`` aside: its
#: only triggers on INSERT are the change log (written here instead) and the foreign key to ``subscriber``
#: (checked here per chunk, set-based), and the role may set ``session_replication_role``.
_PG_FAST_PATH_CHECK = """
SELECT has_parameter_privilege('session_replication_role', 'SET')
   AND (SELECT coalesce(array_agg(tgname::text ORDER BY tgname::text), '{}') FROM pg_trigger
        WHERE tgrelid = 'subscription'::regclass AND NOT tgisinternal AND tgenabled <> 'D'
          AND (tgtype & 4) <> 0) = ARRAY[%(log)s]::text[]
   AND (SELECT array_agg(confrelid::regclass::text) FROM pg_constraint
        WHERE conrelid = 'subscription'::regclass AND contype = 'f') = ARRAY['subscriber']::text[]
"""


class PostgresBulkWriter(BulkWriter):
    def __init__(self, conn: Connection, owns_transactions: bool) -> None:
        super().__init__(conn, owns_transactions)
        #: New people's zone rows may be COPied with the row triggers set aside (see ``insert_zones``).
        self._set_triggers_aside = bool(conn.exec_driver_sql(_PG_FAST_PATH_CHECK, {"log": CHANGE_TRIGGER}).scalar())
        #: The ids ``insert_people`` handed out in this chunk (first, last): new people's zone rows point there.
        self._new_ids: tuple[int, int] | None = None

    @contextmanager
    def chunk(self) -> Iterator[None]:
        self._new_ids = None
        with super().chunk():
            # Other writers of people wait for the chunk (readers do not; as SQLite's write lock): who is new
            # stays true until the commit, so new people and their zones are COPied straight in.
            self.conn.exec_driver_sql("LOCK TABLE subscriber IN SHARE ROW EXCLUSIVE MODE")
            # ON COMMIT DROP: nothing outlives the chunk's transaction (IF NOT EXISTS: a caller's Session
            # runs every chunk in one transaction, the table is then emptied instead)
            self.conn.exec_driver_sql(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING_ZONES} (subscriber_id integer, zone_code text) "
                "ON COMMIT DROP")
            yield

    def _copy_into(self, table: str, columns: Iterable[str], rows: Iterable[tuple[Any, ...]]) -> None:
        cursor = self.conn.connection.cursor()
        try:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()

    def insert_people(self, rows: Sequence[tuple[Any, ...]],
                      constants: dict[str, Any]) -> tuple[dict[str, int], set[str]]:
        if not rows:
            return {}, set()
        # one block of ids: nobody else draws from this sequence while the table lock is ours
        first = int(self.conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence('subscriber', 'id'))").scalar_one())
        self.conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('subscriber', 'id'), %(last)s)",
                                  {"last": first + len(rows) - 1})
        ids = range(first, first + len(rows))
        self._new_ids = (first, first + len(rows) - 1)
        const = tuple(constants.values())
        # the table lock taken by chunk() makes "not stored yet" still true now: COPY straight in
        self._copy_into("subscriber", ("id", *PERSON_COLUMNS, *constants),
                        ((sid, *row, *const) for sid, row in zip(ids, rows, strict=True)))
        return {row[0]: sid for row, sid in zip(rows, ids, strict=True)}, set()

    def insert_zones(self, pairs: Sequence[tuple[int, str]], *, new_people: bool = False) -> None:
        if not pairs:
            return
        if new_people:
            # Their rows are ours alone until the commit (no other transaction sees these people): COPY them
            # straight in, without a staging pass or a conflict check per row.
            if self._set_triggers_aside:
                self._copy_new_people_zones(pairs)
            else:
                self._copy_into("subscription", ("subscriber_id", "kind", "zone_code"),
                                ((sid, "zone", code) for sid, code in pairs))
            return
        self.conn.exec_driver_sql(f"TRUNCATE {_STAGING_ZONES}")
        self._copy_into(_STAGING_ZONES, ("subscriber_id", "zone_code"), pairs)
        self.conn.exec_driver_sql(
            f"INSERT INTO subscription (subscriber_id, kind, zone_code) SELECT subscriber_id, 'zone', zone_code "
            f"FROM {_STAGING_ZONES} ORDER BY subscriber_id, zone_code ON CONFLICT DO NOTHING")


    def _copy_new_people_zones(self, pairs: Sequence[tuple[int, str]]) -> None:
        """COPY new people's zone rows with the row triggers of ``subscription`` set aside, then do their work
        once for the chunk, set-based.

        Measured on a million-row import, the server spent half its time on ``subscription`` in the foreign
        key's check (one index probe and one row lock on ``subscriber`` per zone row) and in the change-log
        trigger's transition table. ``session_replication_role = replica`` (SET LOCAL: this transaction only,
        undone by its rollback) skips both for the COPY alone; what they guaranteed still holds because:
        - every zone row points at a person this chunk inserted (checked here: the ids lie in the block
          ``insert_people`` drew), and one statement counts that each of those people is in ``subscriber``;
          the SHARE ROW EXCLUSIVE lock taken by ``chunk()`` keeps any other transaction from deleting or
          changing them until our commit (what the foreign key's row lock did, per row);
        - the same statement writes the change log, one row per person with the trigger's own columns
          (transaction id, clock), as migration 0013's trigger does;
        - ``_PG_FAST_PATH_CHECK`` made sure these are the only triggers a COPY into ``subscription`` fires;
          otherwise this path is not taken. The unique indexes are not triggers: they are checked per row.
        """
        if self._new_ids is None:
            raise RuntimeError("bulk import: zone rows of new people before any person was inserted")
        first, last = self._new_ids
        people = sorted({sid for sid, _ in pairs})
        if people[0] < first or people[-1] > last:
            raise RuntimeError(f"bulk import: zone rows for ids outside this chunk's new people {first}..{last}")
        self.conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        self._copy_into("subscription", ("subscriber_id", "kind", "zone_code"),
                        ((sid, "zone", code) for sid, code in pairs))
        self.conn.exec_driver_sql("SET LOCAL session_replication_role = origin")
        found = self.conn.exec_driver_sql(_PG_LOG_PEOPLE, {"ids": people}).scalar_one()
        if found != len(people):  # cannot happen under the table lock; the transaction is rolled back
            raise RuntimeError(f"bulk import: {len(people) - found} new people missing from subscriber")


def writer_for(conn: Connection, owns_transactions: bool) -> BulkWriter:
    name = conn.dialect.name
    if name == "sqlite":
        return SqliteBulkWriter(conn, owns_transactions)
    if name == "postgresql":
        return PostgresBulkWriter(conn, owns_transactions)
    raise ValueError(f"database {name}: bulk import supports SQLite and PostgreSQL")


__all__ = ["EXISTING_COLUMNS", "PERSON_COLUMNS", "BulkWriter", "PostgresBulkWriter", "SqliteBulkWriter",
           "json_list", "writer_for"]
