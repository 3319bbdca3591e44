"""Bulk subscriber import from CSV: a million rows in well under 30 s, idempotent, bad lines reported.

Header: ``phone,name,zones,min_severity`` plus optional ``language``, ``categories``, ``hazards`` and ``quiet_hours``
("22:00-06:00"); ``zones`` holds codes or names separated by spaces, commas or ``;``. ``points``,
``vessels`` and ``status`` (written by ``subscribers export``) are applied by ``subscribers.roundtrip``.
The export of ``subscribers.store`` writes
the same header, so an export imports back unchanged.

Why it is written this way:
- The ORM costs ~1 ms a row (a million rows would take a quarter of an hour), so rows are validated in
  Python and decided here per chunk (who is new, what changed, which zone rows are missing); the rows are
  moved by ``subscribers.bulk_writers``: the driver's ``executemany`` of plain tuples on SQLite, ``COPY``
  into staging tables on PostgreSQL. Both engines therefore give the same rows for the same file.
- Zone expansion and preference parsing are cached per distinct text (a real file repeats a few hundred
  zone combinations a million times); phones use the fast path of ``subscribers.phone``.
- Re-importing is idempotent: people are matched by normalised phone, zones are added (never removed:
  an import must not silently take coverage away), changed name/severity/language/categories/quiet
  hours are updated, an identical row counts as ``unchanged``.
- A person who unsubscribed is *not* re-subscribed by an import (the file cannot prove new consent);
  that line is reported and skipped.
- One bad line is reported as ``line N: why`` and skipped; the rest of the file is imported.
- With an Engine each chunk commits on its own (a crash keeps the finished chunks, a re-run completes
  the rest), and is written by a writer thread while the next one is parsed (``subscribers.chunk_pipeline``);
  with a Session everything joins the caller's transaction, written inline.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from subscribers import zones as zone_catalogue
from subscribers.bulk_writers import BulkWriter, json_list, writer_for
from subscribers.chunk_pipeline import ChunkPipeline
from subscribers.models import Subscriber
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
MAX_NAME = 100
MAX_ERRORS_KEPT = 10_000

ProgressCallback = Callable[[int, int], None]

_SUBSCRIBER = Subscriber.__table__  # type: ignore[attr-defined]


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

    def absorb(self, part: ImportReport) -> None:
        """Add a later part of the same import (its errors after ours)."""
        self.inserted += part.inserted
        self.updated += part.updated
        self.unchanged += part.unchanged
        self.merged += part.merged
        self.rows += part.rows
        for message in part.errors:
            self.add_error(message)
        self.skipped += part.skipped - len(part.errors)


@dataclass(slots=True)
class _Row:
    line: int
    phone: str
    name: str
    min_severity: str
    language: str
    categories: tuple[str, ...]
    quiet: tuple[int | None, int | None]
    #: Sorted leaf codes (shared between the rows of one zone text: never mutated, replaced on a merge).
    zones: tuple[str, ...]
    hazards: tuple[str, ...]


class _Parser:
    """Row validation with caches: the same zone list or severity text is parsed once per file.

    Rows come from ``csv.reader`` (lists, cells picked by position): ``csv.DictReader`` built a dict per
    line, a tenth of the import's time at a million rows.
    """

    def __init__(self, names: list[str]) -> None:
        #: Which optional columns this file has: absent columns do not overwrite stored values.
        self.columns = frozenset(names)
        self.width = len(names)
        self._at = {name: i for i, name in enumerate(names)}
        self._zones: dict[str, tuple[str, ...] | str] = {}
        self._items: dict[str, tuple[str, ...] | str] = {}
        # Optional columns in _Row's order: (column, parser, value when the file has no such column). For the
        # columns the file has: (slot, position, cache of cell text -> (valid, value or the error message), parser).
        optional: tuple[tuple[str, Callable[[str], Any], Any], ...] = (
            ("min_severity", lambda t: check_severity(t.strip() or None), "Unknown"),
            ("language", lambda t: check_language(t.strip() or None), "ko"),
            ("categories", lambda t: tuple(parse_categories(t)), ()),
            ("quiet_hours", parse_quiet_hours, (None, None)),
            ("hazards", lambda t: tuple(parse_hazards(t)), ()),
        )
        self._defaults = tuple(default for _, _, default in optional)
        self._present: list[tuple[int, int, dict[str, tuple[bool, Any]], Callable[[str], Any]]] = [
            (slot, self._at[column], {}, parse) for slot, (column, parse, _) in enumerate(optional)
            if column in self._at
        ]

    def cells(self, record: list[str]) -> list[str]:
        """The row with as many cells as the header (short rows padded with empty cells, as DictReader did)."""
        return record + [""] * (self.width - len(record)) if len(record) < self.width else record

    def parse(self, line: int, cells: list[str]) -> _Row:
        at = self._at
        phone = normalize(cells[at["phone"]])
        zone_text = cells[at["zones"]]
        points_at, vessels_at = at.get("points"), at.get("vessels")
        others = (points_at is not None and cells[points_at].strip()) or \
            (vessels_at is not None and cells[vessels_at].strip())
        # a person with only points or vessels has no zones
        zones = self._zone_list(zone_text) if not others or zone_text.strip() else ()
        name_at = at.get("name")
        name = cells[name_at].strip() if name_at is not None else ""
        if len(name) > MAX_NAME:
            raise PreferenceError(f"name: longer than {MAX_NAME} characters")
        values = list(self._defaults)
        for slot, at_cell, cache, parse in self._present:
            text = cells[at_cell]
            found = cache.get(text)
            if found is None:
                found = _parse_cell(cache, text, parse)
            if not found[0]:
                raise PreferenceError(found[1])
            values[slot] = found[1]
        severity, language, categories, quiet, hazards = values
        return _Row(line, phone, name, severity, language, categories, quiet, zones, hazards)

    def _zone_list(self, text: str) -> tuple[str, ...]:
        cached = self._zones.get(text)
        if cached is None:
            items = text.replace(",", " ").replace(";", " ").split()
            cached = self._expand(items) if items else "zones: empty"
            self._zones[text] = cached
        if isinstance(cached, str):
            raise zone_catalogue.ZoneError(cached)
        return cached

    def _expand(self, items: list[str]) -> tuple[str, ...] | str:
        """``zones.expand_many`` (the union of the items' leaves; the first bad item is the error), with each
        item expanded once per file: "S1251100 S1252010" pairs are many, their codes are few."""
        leaves: set[str] = set()
        for item in items:
            found = self._items.get(item)
            if found is None:
                try:
                    found = tuple(zone_catalogue.expand(item))
                except zone_catalogue.ZoneError as exc:
                    found = str(exc)
                self._items[item] = found
            if isinstance(found, str):
                return found
            leaves.update(found)
        return tuple(sorted(leaves))


def _parse_cell(cache: dict[str, tuple[bool, Any]], text: str, parse: Callable[[str], Any]) -> tuple[bool, Any]:
    """Parse a cell text the file had not had yet; a bad one is remembered as its error message."""
    try:
        found = (True, parse(text))
    except PreferenceError as exc:
        found = (False, str(exc))
    cache[text] = found
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
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        _check_header(source, header)
        parser = _Parser([(f or "").strip().lower() for f in header or []])  # "Phone " -> "phone"
        width = parser.width

        def flush(writer: BulkWriter, item: tuple[dict[str, _Row], ImportReport]) -> None:
            chunk, part = item
            if chunk:
                _flush(writer, chunk, consent, parser.columns, part)
            report.absorb(part)  # in file order: one writer, chunks in the order handed over

        # An Engine: the next chunk is parsed while a writer thread writes this one, on its own connection.
        # A Session or Connection is the caller's: written inline, in the caller's thread and transaction.
        pipeline: ChunkPipeline[BulkWriter, tuple[dict[str, _Row], ImportReport]] = ChunkPipeline(
            lambda: _import_connection(target), flush, threaded=isinstance(target, Engine))
        with pipeline:
            chunk: dict[str, _Row] = {}
            part = ImportReport()  # this chunk's lines: its parse errors come before its write's errors
            rows_seen = 0
            try:
                for record in reader:
                    if not record:
                        continue  # a blank line is no row (as csv.DictReader skipped it)
                    part.rows += 1
                    line = reader.line_num
                    if len(record) > width:
                        part.add_error(f"line {line}: more fields than the header has")
                        continue
                    try:
                        row = parser.parse(line, parser.cells(record))
                    except (PhoneError, zone_catalogue.ZoneError, PreferenceError) as exc:
                        part.add_error(f"line {line}: {exc}")
                        continue
                    previous = chunk.get(row.phone)
                    if previous is not None:
                        if not set(previous.zones) <= set(row.zones):
                            row.zones = tuple(sorted(set(row.zones) | set(previous.zones)))
                        part.merged += 1
                    chunk[row.phone] = row
                    if len(chunk) >= chunk_rows:
                        rows_seen += part.rows
                        pipeline.submit((chunk, part))
                        chunk, part = {}, ImportReport()
                        if progress:
                            progress(rows_seen, max(total, rows_seen))
            except (UnicodeDecodeError, csv.Error) as exc:
                pipeline.submit((chunk, part))
                pipeline.close()
                raise CsvImportError(f"{source}: line {reader.line_num}: unreadable: {exc}") from None
            pipeline.submit((chunk, part))
            pipeline.close()
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


#: SQLite page cache for the import connection (KiB, negative = size). The default 2 MB makes index
#: maintenance re-read pages from the OS once the file outgrows it; restored when the import ends.
_SQLITE_IMPORT_CACHE = -262_144


@contextmanager
def _import_connection(target: Session | Engine | Connection) -> Iterator[BulkWriter]:
    if isinstance(target, Session):
        yield _writer(target.connection(), False)
        return
    if isinstance(target, Connection):
        yield _writer(target, False)
        return
    with target.connect() as conn:
        previous = None
        if conn.dialect.name == "sqlite":
            previous = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            conn.exec_driver_sql(f"PRAGMA cache_size={_SQLITE_IMPORT_CACHE}")
            conn.commit()
        try:
            writer = _writer(conn, True)
            conn.commit()  # the writer's look at the schema opened a transaction: chunks open their own
            yield writer
        finally:
            if previous is not None:
                conn.rollback()
                conn.exec_driver_sql(f"PRAGMA cache_size={int(previous)}")
                conn.commit()


def _writer(conn: Connection, owns_transactions: bool) -> BulkWriter:
    try:
        return writer_for(conn, owns_transactions)
    except ValueError as exc:
        raise CsvImportError(str(exc)) from None


class _JsonTexts:
    """The stored JSON text of each distinct list (a file repeats a handful of category lists)."""

    def __init__(self) -> None:
        self._texts: dict[tuple[str, ...], str] = {}

    def __call__(self, values: tuple[str, ...]) -> str:
        text = self._texts.get(values)
        if text is None:
            text = self._texts[values] = json_list(values)
        return text


def _flush(writer: BulkWriter, chunk: dict[str, _Row], consent: dict[str, Any], columns: frozenset[str],
           report: ImportReport) -> None:
    s = _SUBSCRIBER.c
    now = utcnow()
    with writer.chunk():
        existing = writer.existing(list(chunk))

        # Sorted by phone: inserts then walk the unique phone index in order (fewer page visits).
        new_rows = sorted((r for phone, r in chunk.items() if phone not in existing), key=attrgetter("phone"))
        zone_pairs: list[tuple[int, str]] = []
        if new_rows:
            as_json = _JsonTexts()
            ids, taken = writer.insert_people(
                [(r.phone, r.name, r.language, r.min_severity, as_json(r.categories), as_json(r.hazards),
                  r.quiet[0], r.quiet[1]) for r in new_rows],
                {**consent, "status": "active", "created_at": now, "updated_at": now},
            )
            report.inserted += len(ids)
            fresh: list[tuple[int, str]] = []
            for r in new_rows:
                sid = ids.get(r.phone)
                if sid is not None:
                    # a person another writer added meanwhile gets the zones a conflict check lets in
                    (zone_pairs if r.phone in taken else fresh).extend([(sid, code) for code in r.zones])
            writer.insert_zones(fresh, new_people=True)

        updates: list[dict[str, Any]] = []
        touched: dict[int, _Row] = {}
        for phone, current in existing.items():
            r = chunk[phone]
            if current.status == "unsubscribed":
                when = current.unsubscribed_on or "earlier"
                report.add_error(
                    f"line {r.line}: phone {mask(phone)!r}: unsubscribed ({when}); an import does not "
                    "re-subscribe, add them again with `subscribers add` to record new consent"
                )
                continue
            values = _changed_values(current, r, columns)
            touched[current.id] = r
            if values:
                updates.append({"b_id": current.id, **values, "updated_at": now})

        zones_added: set[int] = set()
        by_id = {row.id: row for row in existing.values()}
        if touched:
            for sid, r in touched.items():
                missing = set(r.zones) - by_id[sid].zones
                if missing:
                    zones_added.add(sid)
                    zone_pairs.extend((sid, code) for code in sorted(missing))
        writer.insert_zones(zone_pairs)

        if updates:
            update_columns = sorted({k for u in updates for k in u} - {"b_id"})
            # executemany needs the same keys in every parameter set: fill from the stored row.
            for u in updates:
                for column in update_columns:
                    if column not in u:
                        u[column] = getattr(by_id[u["b_id"]], column)
            statement = (
                update(_SUBSCRIBER)
                .where(s.id == bindparam("b_id"))
                .values({c: bindparam(c) for c in update_columns})
            )
            writer.conn.execute(statement, updates)
        changed_ids = {u["b_id"] for u in updates} | zones_added
        report.updated += len(changed_ids)
        report.unchanged += len(touched) - len(changed_ids)


def _changed_values(current: Any, r: _Row, has: frozenset[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "name" in has and r.name and r.name != current.name:
        values["name"] = r.name
    if "min_severity" in has and r.min_severity != current.min_severity:
        values["min_severity"] = r.min_severity
    if "language" in has and r.language != current.language:
        values["language"] = r.language
    if "categories" in has and list(r.categories) != list(current.categories or []):
        values["categories"] = list(r.categories)
    if "hazards" in has and list(r.hazards) != list(current.hazards or []):
        values["hazards"] = list(r.hazards)
    if "quiet_hours" in has and r.quiet != (current.quiet_start_min, current.quiet_end_min):
        values["quiet_start_min"], values["quiet_end_min"] = r.quiet
    return values


__all__ = ["CsvImportError", "ImportReport", "import_csv"]
