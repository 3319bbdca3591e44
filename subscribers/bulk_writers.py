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

PostgreSQL (``PostgresBulkWriter``): binary ``COPY`` (psycopg's ``cursor.copy``). Each chunk first locks the
``subscriber`` table against other writers (SHARE ROW EXCLUSIVE: readers go on, another import or
``subscribers add`` waits for the chunk, as on SQLite), so the people found missing are still missing when
they are written: they, and their zone rows, are COPied straight into the tables with ids drawn from the
table's sequence. Zones added to people already stored go through a staging table and ``INSERT ... SELECT
... ON CONFLICT DO NOTHING`` (another writer may add the same zone meanwhile). The statement-level
change-log triggers (transition tables) fire once per statement, COPY included. Measured on a million rows
(2.2 million zone rows), half the server's time went to the foreign key's check per zone row and the
trigger's transition table: when it is safe and allowed, new people's zone rows are COPied with the row
triggers set aside and their work done once per chunk (``_copy_new_people_zones`` says why that is sound).

Both: who is already stored is read once per chunk, with their zones, in plain SQL on the driver's cursor
(``existing``); a re-import of an unchanged file is that read and a comparison, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import orjson
from psycopg.types.json import set_json_dumps
from sqlalchemy.engine import Connection

from subscribers.models import Subscriber

_SUBSCRIBER = Subscriber.__table__  # type: ignore[attr-defined]

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


class StoredPerson(NamedTuple):
    """A person already stored, as an import compares them with a line of the file (their zones included)."""

    id: int
    phone: str
    name: str
    min_severity: str
    language: str
    categories: list[str]
    quiet_start_min: int | None
    quiet_end_min: int | None
    status: str
    #: The UTC day they unsubscribed ("2026-11-30"), for the line's error; None if they never did.
    unsubscribed_on: str | None
    hazards: list[str]
    #: Their leaf zone codes (kind zone).
    zones: frozenset[str]


def _existing_sql(dialect: str) -> str:
    """Who is stored among a chunk's phones, with their zones, in one statement of plain SQL.

    Why plain SQL on the driver: a re-import of an unchanged million-row file is nothing but this read, and
    SQLAlchemy's typed rows (datetimes and JSON decoded per row, then a second query for the zones) cost
    more than everything else the re-import does. JSON comes back as text (decoded once per distinct text),
    the unsubscribe time as its UTC day, the zones as one text per person (read through ``uq_subscription_zone``;
    zone codes hold no spaces).
    """
    if dialect == "postgresql":
        day = "to_char(p.unsubscribed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        zones = ("(SELECT string_agg(z.zone_code, ' ') FROM subscription z "
                 "WHERE z.subscriber_id = p.id AND z.kind = 'zone')")
        # one text, split by the server: psycopg dumps a list parameter element by element in Python (a regex
        # search each), which cost the writer thread more than the server spent answering (phones hold no comma)
        among = "p.phone = ANY(string_to_array(%(phones)s, ','))"
    else:
        day = "substr(p.unsubscribed_at, 1, 10)"
        zones = ("(SELECT group_concat(z.zone_code, ' ') FROM subscription z "
                 "WHERE z.subscriber_id = p.id AND z.kind = 'zone')")
        among = "p.phone IN (SELECT value FROM json_each(?))"
    return (f"SELECT p.id, p.phone, p.name, p.min_severity, p.language, CAST(p.categories AS text), "
            f"p.quiet_start_min, p.quiet_end_min, p.status, {day}, CAST(p.hazards AS text), {zones} "
            f"FROM subscriber p WHERE {among}")


class BulkWriter:
    """What ``csv_import`` needs from an engine; every method works inside :meth:`chunk`."""

    def __init__(self, conn: Connection, owns_transactions: bool) -> None:
        self.conn = conn
        #: True when the import opened the connection (an Engine): each chunk is then its own transaction.
        self.owns_transactions = owns_transactions
        self._dialect = conn.dialect.name
        self._existing_sql = _existing_sql(self._dialect)
        self._json: dict[str | None, list[str]] = {None: []}

    @contextmanager
    def chunk(self) -> Iterator[None]:
        if self.owns_transactions:
            with self.conn.begin():
                yield
        else:
            yield

    def existing(self, phones: Sequence[str]) -> dict[str, StoredPerson]:
        """Stored people among these phones, by phone, with their zones."""
        if not phones:
            return {}
        params: Any = ({"phones": ",".join(phones)} if self._dialect == "postgresql"
                       else (orjson.dumps(list(phones)).decode(),))
        cursor = self.conn.connection.cursor()  # the driver's plain tuples, fetched at once
        try:
            cursor.execute(self._existing_sql, params)
            rows = cursor.fetchall()
        finally:
            cursor.close()
        found: dict[str, StoredPerson] = {}
        json = self._json
        for sid, phone, name, severity, language, categories, q_start, q_end, status, day, hazards, zones in rows:
            if categories not in json:
                json[categories] = orjson.loads(categories)
            if hazards not in json:
                json[hazards] = orjson.loads(hazards)
            codes = frozenset(zones.split()) if zones else frozenset()
            found[phone] = StoredPerson(sid, phone, name, severity, language, json[categories], q_start, q_end,
                                        status, day, json[hazards], codes)
        return found

    def insert_people(self, rows: Sequence[tuple[Any, ...]],
                      constants: dict[str, Any]) -> tuple[dict[str, int], set[str]]:
        """New people (tuples in ``PERSON_COLUMNS`` order, sorted by phone). Returns phone -> id for all of them,
        and the phones another writer added meanwhile (their rows were not ours to write; PostgreSQL only)."""
        raise NotImplementedError

    def insert_zones(self, pairs: Sequence[tuple[int, str]], *, new_people: bool = False) -> None:
        """(subscriber id, leaf zone code) rows of kind zone, logged in the change log per person.
        ``new_people``: every id is a person this chunk inserted (no other writer can hold their rows)."""
        raise NotImplementedError


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


#: The columns of the change-log row the PostgreSQL triggers write (migrations 0002/0013).
_PG_TXN_NOW = "SELECT pg_current_xact_id()::text::bigint, extract(epoch from clock_timestamp())::double precision"


def _json_bytes(value: Any) -> bytes:
    """JSON for a binary COPY: a ``str`` is already the stored JSON text (``json_list``); else serialised."""
    return value.encode() if isinstance(value, str) else orjson.dumps(value)


#: Why the fast path for new people's zone rows may set the per-row triggers of ``subscription`` aside: its
#: only triggers on INSERT are the change log (written here instead) and the foreign key to ``subscriber``
#: (checked here per chunk, set-based), and the role may set ``session_replication_role`` ({may_set}).
_PG_FAST_PATH_CHECK = """
SELECT {may_set}
   AND (SELECT coalesce(array_agg(tgname::text ORDER BY tgname::text), '{{}}') FROM pg_trigger
        WHERE tgrelid = 'subscription'::regclass AND NOT tgisinternal AND tgenabled <> 'D'
          AND (tgtype & 4) <> 0) = ARRAY[%(log)s]::text[]
   AND (SELECT array_agg(confrelid::regclass::text) FROM pg_constraint
        WHERE conrelid = 'subscription'::regclass AND contype = 'f') = ARRAY['subscriber']::text[]
"""


class PostgresBulkWriter(BulkWriter):
    def __init__(self, conn: Connection, owns_transactions: bool) -> None:
        super().__init__(conn, owns_transactions)
        #: New people's zone rows may be COPied with the row triggers set aside (see ``insert_zones``).
        # PostgreSQL 15 can GRANT SET on a parameter; before it, only a superuser may set this one
        may_set = ("has_parameter_privilege('session_replication_role', 'SET')"
                   if (conn.dialect.server_version_info or (0,)) >= (15,)
                   else "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")
        self._set_triggers_aside = bool(conn.exec_driver_sql(_PG_FAST_PATH_CHECK.format(may_set=may_set),
                                                             {"log": CHANGE_TRIGGER}).scalar())
        #: PostgreSQL 11 and later have the ``jit`` setting (see ``chunk``).
        self._jit_setting = (conn.dialect.server_version_info or (0,)) >= (11,)
        #: The ids ``insert_people`` handed out in this chunk (first, last): new people's zone rows point there.
        self._new_ids: tuple[int, int] | None = None
        self._types: dict[str, dict[str, int]] = {}

    @contextmanager
    def chunk(self) -> Iterator[None]:
        self._new_ids = None
        with super().chunk():
            # Other writers of people wait for the chunk (readers do not; as SQLite's write lock): who is new
            # stays true until the commit, so new people and their zones are COPied straight in.
            self.conn.exec_driver_sql("LOCK TABLE subscriber IN SHARE ROW EXCLUSIVE MODE")
            if self._jit_setting:
                # The read of who is stored (20,000 phones: its estimated cost is over jit_above_cost) was compiled
                # by LLVM in every chunk, 7 to 23 ms measured, more than a tenth of the statement; it runs once.
                # Only this transaction (LOCAL); JIT changes how fast a plan runs, never what it returns.
                self.conn.exec_driver_sql("SET LOCAL jit = off")
            # ON COMMIT DROP: nothing outlives the chunk's transaction (IF NOT EXISTS: a caller's Session
            # runs every chunk in one transaction, the table is then emptied instead)
            self.conn.exec_driver_sql(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING_ZONES} (subscriber_id integer, zone_code text) "
                "ON COMMIT DROP")
            yield

    def _copy_into(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        """COPY in the binary format: the server parses no text (three timestamps a person cost as much as
        the rest of the row in text). Column types come from the catalogue; a ``str`` for a JSON column is
        the stored JSON text itself (``json_list``), sent as it is."""
        types = self._column_types(table)
        cursor = self.conn.connection.cursor()
        try:
            set_json_dumps(_json_bytes, context=cursor)  # type: ignore[arg-type]
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:  # type: ignore[attr-defined]
                copy.set_types([types[c] for c in columns])
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()

    def _column_types(self, table: str) -> dict[str, int]:
        types = self._types.get(table)
        if types is None:  # a temporary table is found through pg_temp in the search path, like the COPY
            types = self._types[table] = dict(self.conn.exec_driver_sql(
                "SELECT attname::text, atttypid::int FROM pg_attribute WHERE attrelid = %(t)s::regclass "
                "AND attnum > 0 AND NOT attisdropped", {"t": table}).all())
        return types

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
          ``insert_people`` drew), and one statement counts that the whole block is in ``subscriber``;
          the SHARE ROW EXCLUSIVE lock taken by ``chunk()`` keeps any other transaction from deleting or
          changing them until our commit (what the foreign key's row lock did, per row);
        - the change log is COPied here, one row per person with the trigger's own columns (this
          transaction's id, the database clock), as migration 0013's trigger writes it;
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
        found = self.conn.exec_driver_sql("SELECT count(*) FROM subscriber WHERE id BETWEEN %(first)s AND %(last)s",
                                          {"first": first, "last": last}).scalar_one()
        if found != last - first + 1:  # cannot happen under the table lock; the transaction is rolled back
            raise RuntimeError(f"bulk import: {last - first + 1 - found} new people missing from subscriber")
        # the trigger's columns: this transaction's id and the database clock (read once for the chunk)
        txn, now = self.conn.exec_driver_sql(_PG_TXN_NOW).one()
        self._copy_into("subscription_change", ("subscriber_id", "txn", "changed_at"),
                        ((sid, txn, now) for sid in people))


def writer_for(conn: Connection, owns_transactions: bool) -> BulkWriter:
    name = conn.dialect.name
    if name == "sqlite":
        return SqliteBulkWriter(conn, owns_transactions)
    if name == "postgresql":
        return PostgresBulkWriter(conn, owns_transactions)
    raise ValueError(f"database {name}: bulk import supports SQLite and PostgreSQL")


__all__ = ["EXISTING_COLUMNS", "PERSON_COLUMNS", "BulkWriter", "PostgresBulkWriter", "SqliteBulkWriter",
           "StoredPerson", "json_list", "writer_for"]
