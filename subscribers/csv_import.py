"""Bulk subscriber import from CSV: a million rows in well under a minute, idempotent, bad lines reported.

Header: ``phone,name,zones,min_severity`` plus optional ``language``, ``categories``, ``hazards`` and ``quiet_hours``
("22:00-06:00"); ``zones`` holds codes or names separated by spaces, commas or ``;``. ``points``,
``vessels`` and ``status`` (written by ``subscribers export``) are applied by ``subscribers.roundtrip``.
The export of ``subscribers.store`` writes
the same header, so an export imports back unchanged.

Why it is written this way:
- The ORM costs ~1 ms a row (a million rows would take a quarter of an hour), so rows are validated in
  Python and written with SQLAlchemy Core ``executemany`` in chunks: INSERT ... ON CONFLICT DO NOTHING
  RETURNING id for new people, one bulk UPDATE for the changed ones, and only the missing zone rows.
- Zone expansion and preference parsing are cached per distinct text (a real file repeats a few hundred
  zone combinations a million times); phones use the fast path of ``subscribers.phone``.
- Re-importing is idempotent: people are matched by normalised phone, zones are added (never removed:
  an import must not silently take coverage away), changed name/severity/language/categories/quiet
  hours are updated, an identical row counts as ``unchanged``.
- A person who unsubscribed is *not* re-subscribed by an import (the file cannot prove new consent);
  that line is reported and skipped.
- One bad line is reported as ``line N: why`` and skipped; the rest of the file is imported.
- With an Engine each chunk commits on its own (a crash keeps the finished chunks, a re-run completes
  the rest); with a Session everything joins the caller's transaction.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from subscribers import zones as zone_catalogue
from subscribers.models import Subscriber, Subscription
from subscribers.phone import PhoneError, mask, normalize
from subscribers.preferences import (
    PreferenceError,
    check_language,
    check_severity,
    parse_categories,
    parse_hazards,
    parse_quiet_hours,
)
from subscribers.sqltypes import utcnow

REQUIRED_COLUMNS = ("phone", "zones")
KNOWN_COLUMNS = ("phone", "name", "zones", "min_severity", "language", "categories", "quiet_hours", "hazards",
                 # written by `subscribers export`, applied after the bulk import by subscribers.roundtrip
                 "points", "vessels", "status")
CHUNK_ROWS = 20_000
#: Bound parameters per IN (...) query: below SQLite's 32,766 and PostgreSQL's 65,535 limits.
IN_BATCH = 10_000
MAX_NAME = 100
MAX_ERRORS_KEPT = 10_000

ProgressCallback = Callable[[int, int], None]

_SUBSCRIBER = Subscriber.__table__  # type: ignore[attr-defined]
_SUBSCRIPTION = Subscription.__table__  # type: ignore[attr-defined]


class CsvImportError(ValueError):
    """The file as a whole cannot be imported (missing, unreadable, bad header)."""


@dataclass
class ImportReport:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    #: Lines whose phone already appeared earlier in the same file (merged into that person).
    merged: int = 0
    errors: list[str] = field(default_factory=list)
    rows: int = 0

    def add_error(self, message: str) -> None:
        self.skipped += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)


@dataclass
class _Row:
    line: int
    phone: str
    name: str
    min_severity: str
    language: str
    categories: tuple[str, ...]
    quiet: tuple[int | None, int | None]
    zones: set[str]
    hazards: tuple[str, ...]
    #: Which optional columns this file has: absent columns do not overwrite stored values.
    has: frozenset[str]


class _Parser:
    """Row validation with caches: the same zone list or severity text is parsed once per file."""

    def __init__(self, columns: frozenset[str]) -> None:
        self.columns = columns
        self._zones: dict[str, list[str] | str] = {}
        self._severity: dict[str, str | None] = {}
        self._categories: dict[str, tuple[str, ...] | str] = {}
        self._quiet: dict[str, tuple[int | None, int | None] | str] = {}
        self._hazards: dict[str, tuple[str, ...] | str] = {}

    def parse(self, line: int, record: dict[str, str]) -> _Row:
        phone = normalize(record.get("phone") or "")
        others = (record.get("points") or "").strip() or (record.get("vessels") or "").strip()
        zones = self._zone_list(record.get("zones") or "") if not others or (record.get("zones") or "").strip() \
            else []  # a person with only points or vessels has no zones
        name = (record.get("name") or "").strip()
        if len(name) > MAX_NAME:
            raise PreferenceError(f"name: longer than {MAX_NAME} characters")
        severity = check_severity((record.get("min_severity") or "").strip() or None)
        language = check_language((record.get("language") or "").strip() or None)
        categories = self._category_list(record.get("categories") or "")
        quiet = self._quiet_hours(record.get("quiet_hours") or "")
        hazards = self._hazard_list(record.get("hazards") or "")
        return _Row(line, phone, name, severity, language, categories, quiet, set(zones), hazards, self.columns)

    def _zone_list(self, text: str) -> list[str]:
        cached = self._zones.get(text)
        if cached is None:
            items = text.replace(",", " ").replace(";", " ").split()
            try:
                cached = zone_catalogue.expand_many(items) if items else "zones: empty"
            except zone_catalogue.ZoneError as exc:
                cached = str(exc)
            self._zones[text] = cached
        if isinstance(cached, str):
            raise zone_catalogue.ZoneError(cached)
        return cached

    def _category_list(self, text: str) -> tuple[str, ...]:
        return _cached(self._categories, text, lambda t: tuple(parse_categories(t)))

    def _hazard_list(self, text: str) -> tuple[str, ...]:
        return _cached(self._hazards, text, lambda t: tuple(parse_hazards(t)))

    def _quiet_hours(self, text: str) -> tuple[int | None, int | None]:
        return _cached(self._quiet, text, parse_quiet_hours)


def _cached(cache: dict[str, Any], text: str, parse: Callable[[str], Any]) -> Any:
    """Parse a cell once per distinct text; a bad one is remembered as its error message."""
    found = cache.get(text)
    if found is None:
        try:
            found = parse(text)
        except PreferenceError as exc:
            found = str(exc)
        cache[text] = found
    if isinstance(found, str):
        raise PreferenceError(found)
    return found


def import_csv(
    target: Session | Engine | Connection,
    path: str | Path,
    *,
    progress: ProgressCallback | None = None,
    consent_source: str | None = None,
    consent_text: str | None = None,
    consent_at: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import ``path``; raises CsvImportError only when the file as a whole is unusable."""
    source = Path(path)
    if not source.is_file():
        raise CsvImportError(f"{source}: no such file")
    encoding = _detect_encoding(source)
    total = _count_data_lines(source)
    report = ImportReport()
    consent = {
        "consent_at": consent_at or utcnow(),
        "consent_source": (consent_source or "csv")[:32],
        "consent_text": consent_text if consent_text is not None else f"imported from {source.name}",
    }
    try:
        handle = source.open("r", encoding=encoding, newline="")
    except OSError as exc:
        raise CsvImportError(f"{source}: cannot read: {exc.strerror or exc}") from None
    with handle, _import_connection(target) as writer:
        reader = csv.DictReader(handle)
        columns = _check_header(source, reader.fieldnames)
        reader.fieldnames = [(f or "").strip().lower() for f in reader.fieldnames or []]  # "Phone " -> "phone"
        parser = _Parser(columns)
        chunk: dict[str, _Row] = {}
        try:
            for record in reader:
                report.rows += 1
                line = reader.line_num
                if None in record:
                    report.add_error(f"line {line}: more fields than the header has")
                    continue
                try:
                    row = parser.parse(line, record)
                except (PhoneError, zone_catalogue.ZoneError, PreferenceError) as exc:
                    report.add_error(f"line {line}: {exc}")
                    continue
                previous = chunk.get(row.phone)
                if previous is not None:
                    row.zones |= previous.zones
                    report.merged += 1
                chunk[row.phone] = row
                if len(chunk) >= chunk_rows:
                    _flush(writer, chunk, consent, report)
                    chunk = {}
                    if progress:
                        progress(report.rows, max(total, report.rows))
        except (UnicodeDecodeError, csv.Error) as exc:
            if chunk:
                _flush(writer, chunk, consent, report)
            raise CsvImportError(f"{source}: line {reader.line_num}: unreadable: {exc}") from None
        if chunk:
            _flush(writer, chunk, consent, report)
    if progress:
        progress(report.rows, report.rows)
    return report


def _detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM); Korean Excel saves CP949, which is accepted too."""
    with path.open("rb") as handle:
        sample = handle.read(1 << 20)
    try:
        sample.decode("utf-8")
        return "utf-8-sig"
    except UnicodeDecodeError as exc:
        if exc.start > len(sample) - 4:  # a character cut by the sample boundary
            return "utf-8-sig"
    try:
        sample.decode("cp949")
    except UnicodeDecodeError:
        raise CsvImportError(f"{path}: neither UTF-8 nor CP949 text") from None
    return "cp949"


def _count_data_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
    return max(lines - 1, 0)


def _check_header(path: Path, fieldnames: Any) -> frozenset[str]:
    if not fieldnames:
        raise CsvImportError(f"{path}: empty file (expected header {','.join(KNOWN_COLUMNS[:4])})")
    names = [(f or "").strip().lower() for f in fieldnames]
    unknown = [n for n in names if n not in KNOWN_COLUMNS]
    if unknown:
        raise CsvImportError(
            f"{path}: header: unknown column {unknown[0]!r} (known: {', '.join(KNOWN_COLUMNS)})"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise CsvImportError(f"{path}: header: missing column {missing[0]!r}")
    if len(set(names)) != len(names):
        raise CsvImportError(f"{path}: header: a column appears twice")
    return frozenset(names)


# -- writing ---------------------------------------------------------------------------------------


@dataclass
class _Writer:
    conn: Connection
    #: True when we opened the connection (Engine target): each chunk is then its own transaction.
    owns_transactions: bool

    @contextmanager
    def chunk(self) -> Iterator[Connection]:
        if self.owns_transactions:
            with self.conn.begin():
                yield self.conn
        else:
            yield self.conn


#: SQLite page cache for the import connection (KiB, negative = size). The default 2 MB makes index
#: maintenance re-read pages from the OS once the file outgrows it; restored when the import ends.
_SQLITE_IMPORT_CACHE = -262_144


@contextmanager
def _import_connection(target: Session | Engine | Connection) -> Iterator[_Writer]:
    if isinstance(target, Session):
        yield _Writer(target.connection(), False)
        return
    if isinstance(target, Connection):
        yield _Writer(target, False)
        return
    with target.connect() as conn:
        previous = None
        if conn.dialect.name == "sqlite":
            previous = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            conn.exec_driver_sql(f"PRAGMA cache_size={_SQLITE_IMPORT_CACHE}")
            conn.commit()
        try:
            yield _Writer(conn, True)
        finally:
            if previous is not None:
                conn.rollback()
                conn.exec_driver_sql(f"PRAGMA cache_size={int(previous)}")
                conn.commit()


def _insert(connection: Connection, table: Any) -> Any:
    name = connection.dialect.name
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    raise CsvImportError(f"database {name}: bulk import supports SQLite and PostgreSQL")


def _batches(items: list[Any], size: int = IN_BATCH) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _flush(writer: _Writer, chunk: dict[str, _Row], consent: dict[str, Any], report: ImportReport) -> None:
    s = _SUBSCRIBER.c
    now = utcnow()
    with writer.chunk() as conn:
        existing: dict[str, Any] = {}
        for phones in _batches(list(chunk)):
            query = select(
                s.id, s.phone, s.name, s.min_severity, s.language, s.categories, s.quiet_start_min,
                s.quiet_end_min, s.status, s.unsubscribed_at, s.hazards,
            ).where(s.phone.in_(phones))
            for row in conn.execute(query):
                existing[row.phone] = row

        # Sorted by phone: inserts then walk the unique phone index in order (fewer page visits).
        new_rows = sorted((r for phone, r in chunk.items() if phone not in existing), key=lambda r: r.phone)
        ids: dict[str, int] = {}
        if new_rows:
            writer = _BulkInsert(conn, _SUBSCRIBER, _NEW_SUBSCRIBER_COLUMNS,
                                 {**consent, "status": "active", "created_at": now, "updated_at": now})
            categories = _Processed(conn, s.categories)
            hazards = _Processed(conn, s.hazards)
            writer.run(
                (r.phone, r.name, r.language, r.min_severity, categories(r.categories), r.quiet[0], r.quiet[1],
                 hazards(r.hazards))
                for r in new_rows
            )
            # Plain executemany (no RETURNING) is the fast path on both drivers; ids are read back by phone.
            for phones in _batches([r.phone for r in new_rows]):
                for sid, phone in conn.execute(select(s.id, s.phone).where(s.phone.in_(phones))):
                    ids[phone] = sid
            report.inserted += len(ids)

        updates: list[dict[str, Any]] = []
        touched: dict[int, _Row] = {}
        for phone, current in existing.items():
            r = chunk[phone]
            if current.status == "unsubscribed":
                when = current.unsubscribed_at.strftime("%Y-%m-%d") if current.unsubscribed_at else "earlier"
                report.add_error(
                    f"line {r.line}: phone {mask(phone)!r}: unsubscribed ({when}); an import does not "
                    "re-subscribe, add them again with `subscribers add` to record new consent"
                )
                continue
            values = _changed_values(current, r)
            touched[current.id] = r
            if values:
                updates.append({"b_id": current.id, **values, "updated_at": now})

        zone_params: list[dict[str, Any]] = []
        for phone, sid in ids.items():
            zone_params.extend(_zone_rows(sid, chunk[phone].zones))
        zones_added: set[int] = set()
        if touched:
            have: dict[int, set[str]] = {}
            sub = _SUBSCRIPTION.c
            for batch in _batches(list(touched)):
                query = select(sub.subscriber_id, sub.zone_code).where(
                    sub.subscriber_id.in_(batch), sub.kind == "zone"
                )
                for sid, code in conn.execute(query):
                    have.setdefault(sid, set()).add(code)
            for sid, r in touched.items():
                missing = r.zones - have.get(sid, set())
                if missing:
                    zones_added.add(sid)
                    zone_params.extend(_zone_rows(sid, missing))
        if zone_params:
            _BulkInsert(conn, _SUBSCRIPTION, ("subscriber_id", "zone_code"), {"kind": "zone"}).run(zone_params)

        if updates:
            columns = sorted({k for u in updates for k in u} - {"b_id"})
            # executemany needs the same keys in every parameter set: fill from the stored row.
            by_id = {row.id: row for row in existing.values()}
            for u in updates:
                for column in columns:
                    if column not in u:
                        u[column] = getattr(by_id[u["b_id"]], column)
            statement = (
                update(_SUBSCRIBER)
                .where(s.id == bindparam("b_id"))
                .values({c: bindparam(c) for c in columns})
            )
            conn.execute(statement, updates)
        changed_ids = {u["b_id"] for u in updates} | zones_added
        report.updated += len(changed_ids)
        report.unchanged += len(touched) - len(changed_ids)


def _zone_rows(sid: int, codes: set[str]) -> list[tuple[int, str]]:
    return [(sid, code) for code in sorted(codes)]


_NEW_SUBSCRIBER_COLUMNS = (
    "phone", "name", "language", "min_severity", "categories", "quiet_start_min", "quiet_end_min", "hazards",
)


def _bind_processor(column: Any, conn: Connection) -> Any:
    """The processor SQLAlchemy itself would apply (the dialect's implementation, e.g. SQLite's DATETIME)."""
    return column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)


class _Processed:
    """A column's bind processor with a cache: JSON-encode the same category list once, not per row."""

    def __init__(self, conn: Connection, column: Any) -> None:
        self._process = _bind_processor(column, conn) or (lambda v: v)
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, value: tuple[str, ...]) -> Any:
        if value not in self._cache:
            self._cache[value] = self._process(list(value))
        return self._cache[value]


class _BulkInsert:
    """INSERT ... ON CONFLICT DO NOTHING through the driver's executemany.

    SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself at a million rows,
    so the statement is compiled once, constants (consent, timestamps) are processed once, and rows go
    to the driver as plain tuples (values must already be in driver form: str, int, None).
    """

    def __init__(self, conn: Connection, table: Any, columns: tuple[str, ...], constants: dict[str, Any]) -> None:
        self.conn = conn
        self.columns = columns
        dialect = conn.dialect
        self.constants = {}
        for key, value in constants.items():
            process = _bind_processor(table.c[key], conn)
            self.constants[key] = process(value) if process else value
        statement = _insert(conn, table).values({c: bindparam(c) for c in (*columns, *constants)})
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.order = list(compiled.positiontup or []) if self.positional else []

    def run(self, rows: Any) -> None:
        if self.positional:
            # Row values then constants in one tuple, reordered by one C-level itemgetter call per row.
            names = [*self.columns, *self.constants]
            const = tuple(self.constants.values())
            pick = itemgetter(*(names.index(k) for k in self.order))
            params: list[Any] = [pick(tuple(row) + const) for row in rows]
        else:
            params = [{**dict(zip(self.columns, row, strict=True)), **self.constants} for row in rows]
        if params:
            self.conn.exec_driver_sql(self.sql, params)


def _changed_values(current: Any, r: _Row) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "name" in r.has and r.name and r.name != current.name:
        values["name"] = r.name
    if "min_severity" in r.has and r.min_severity != current.min_severity:
        values["min_severity"] = r.min_severity
    if "language" in r.has and r.language != current.language:
        values["language"] = r.language
    if "categories" in r.has and list(r.categories) != list(current.categories or []):
        values["categories"] = list(r.categories)
    if "hazards" in r.has and list(r.hazards) != list(current.hazards or []):
        values["hazards"] = list(r.hazards)
    if "quiet_hours" in r.has and r.quiet != (current.quiet_start_min, current.quiet_end_min):
        values["quiet_start_min"], values["quiet_end_min"] = r.quiet
    return values


__all__ = ["CsvImportError", "ImportReport", "import_csv"]
