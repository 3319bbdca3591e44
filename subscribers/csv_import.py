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
- Lines become rows in ``subscribers.csv_rows`` (no database code). A big file (``PARSE_PROCESS_MIN_ROWS``
  lines and more) bound for PostgreSQL is parsed by a child process (``subscribers.parse_process``): in one
  process the parser held the interpreter lock the writer thread needed each time it came back from the
  database, and the database waited meanwhile (a million rows on PostgreSQL: server and parser each about half
  the wall time, overlapping little).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from subscribers.bulk_writers import BulkWriter, json_list, writer_for
from subscribers.chunk_pipeline import ChunkPipeline
from subscribers.csv_rows import (
    Chunk,
    ImportReport,
    Row,
    RowParser,
    UnreadableLine,
    read_chunks,
)
from subscribers.models import Subscriber
from subscribers.parse_process import ParseProcess, ParseProcessError
from subscribers.phone import mask
from subscribers.sqltypes import utcnow

REQUIRED_COLUMNS = ("phone", "zones")
KNOWN_COLUMNS = ("phone", "name", "zones", "min_severity", "language", "categories", "quiet_hours", "hazards",
                 # written by `subscribers export`, applied after the bulk import by subscribers.roundtrip
                 "points", "vessels", "status")
CHUNK_ROWS = 20_000
log = logging.getLogger("alimcast.subscribers.csv_import")

#: An import on PostgreSQL that wrote at least this many people ends with ANALYZE (``_analyze_after``).
ANALYZE_AFTER_ROWS = 10_000
#: ... and gives up on it (a warning in the log) when a lock keeps it waiting this long.
ANALYZE_LOCK_TIMEOUT_S = 5.0
#: Files with at least this many lines are parsed by a child process (``import_csv(parse_process=...)``).
PARSE_PROCESS_MIN_ROWS = 50_000
#: ... when the database is one of these. PostgreSQL works in its own server process, so the child's core is
#: gained; SQLite's work is done in this process, and a million rows measured no faster with the child on a
#: loaded 2-core machine (the pickling between the processes costs about 2.5 CPU seconds), so it is left as it was.
PARSE_PROCESS_DIALECTS = frozenset({"postgresql"})

ProgressCallback = Callable[[int, int], None]

_SUBSCRIBER = Subscriber.__table__  # type: ignore[attr-defined]


class CsvImportError(ValueError):
    """The file as a whole cannot be imported (missing, unreadable, bad header)."""


def import_csv(
    target: Session | Engine | Connection,
    path: str | Path,
    *,
    progress: ProgressCallback | None = None,
    consent_source: str | None = None,
    consent_text: str | None = None,
    consent_at: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
    parse_process: bool | None = None,
) -> ImportReport:
    """Import ``path``; raises CsvImportError only when the file as a whole is unusable.

    ``parse_process``: parse in a child process (``subscribers.parse_process``); None: when the file has at
    least ``PARSE_PROCESS_MIN_ROWS`` lines (below that, starting a process costs more than it saves) and the
    database is PostgreSQL (``PARSE_PROCESS_DIALECTS``).
    """
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
        parser = RowParser([(f or "").strip().lower() for f in header or []])  # "Phone " -> "phone"

        def flush(writer: BulkWriter, item: Chunk) -> None:
            chunk, part = item
            if chunk:
                _flush(writer, chunk, consent, parser.columns, part)
            report.absorb(part)  # in file order: one writer, chunks in the order handed over

        # An Engine: the next chunk is parsed while a writer thread writes this one, on its own connection.
        # A Session or Connection is the caller's: written inline, in the caller's thread and transaction.
        pipeline: ChunkPipeline[BulkWriter, Chunk] = ChunkPipeline(
            lambda: _import_connection(target), flush, threaded=isinstance(target, Engine))
        if parse_process is None:
            parse_process = total >= PARSE_PROCESS_MIN_ROWS and _dialect(target) in PARSE_PROCESS_DIALECTS
        parse_process = parse_process and ParseProcess.available()
        # A big file is parsed by a child process (its own core, its own interpreter lock), else right here.
        chunks: AbstractContextManager[Iterator[Chunk]] = (
            ParseProcess(source, encoding, chunk_rows) if parse_process
            else nullcontext(read_chunks(reader, parser, chunk_rows)))
        with pipeline, chunks as parsed:
            rows_seen = 0
            try:
                for chunk, part in parsed:
                    rows_seen += part.rows
                    pipeline.submit((chunk, part))
                    if progress and len(chunk) >= chunk_rows:
                        progress(rows_seen, max(total, rows_seen))
            except UnreadableLine as exc:
                pipeline.close()
                raise CsvImportError(f"{source}: {exc}") from None
            except ParseProcessError as exc:
                pipeline.close()  # what was parsed before is stored: importing the file again adds the rest
                raise CsvImportError(f"{source}: {exc}; the rows read before it are stored, import the file "
                                     f"again to add the rest") from None
            pipeline.close()
    _analyze_after(target, report)
    if progress:
        progress(report.rows, report.rows)
    return report


def _analyze_after(target: Session | Engine | Connection, report: ImportReport) -> None:
    """PostgreSQL's statistics of the people's tables brought up to date after a large import.

    Why: the planner sizes its plans by them, and until autovacuum gets round to it (a minute or more) they
    still describe the tables before the import. A warning matched right after 100,000 people were imported
    then grouped their preferences with a sort spilled to disk instead of in memory (PostgreSQL's own advice for
    a bulk load: "Populating a Database", run ANALYZE afterwards). ANALYZE reads a fixed sample (30,000 rows by
    default), so it costs a fraction of a second whatever the size. Only for an import on an Engine (the CLI,
    the console): a Session or Connection is the caller's transaction, theirs to finish. Its lock (SHARE UPDATE
    EXCLUSIVE) lets inserts, updates and fan-outs go on; it waits only for another ANALYZE or VACUUM, a schema
    change, or another import's table lock (subscribers/bulk_writers.py), at most ``ANALYZE_LOCK_TIMEOUT_S``.
    Whatever goes wrong, the import has succeeded: a warning."""
    if not isinstance(target, Engine) or target.dialect.name != "postgresql":
        return
    if report.inserted + report.updated < ANALYZE_AFTER_ROWS:
        return
    try:
        with target.connect() as conn:
            # it never waits long for a lock (another ANALYZE or VACUUM, a schema change): the import is done
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(ANALYZE_LOCK_TIMEOUT_S * 1000)}ms'")
            conn.exec_driver_sql("ANALYZE subscriber, subscription")
            conn.commit()
    except SQLAlchemyError as exc:  # the rows are stored: statistics are an optimisation, never the import's failure
        log.warning("after the import: ANALYZE failed (autovacuum will analyze later): %s", exc)


def _dialect(target: Session | Engine | Connection) -> str:
    bind = target.get_bind() if isinstance(target, Session) else target
    return str(bind.dialect.name)


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


def _flush(writer: BulkWriter, chunk: dict[str, Row], consent: dict[str, Any], columns: frozenset[str],
           report: ImportReport) -> None:
    s = _SUBSCRIBER.c
    now = utcnow()
    with writer.chunk():
        existing = writer.existing(list(chunk))

        # in phone order, as read_chunks sorted the chunk (inserts then walk the unique phone index in order)
        new_rows = [r for phone, r in chunk.items() if phone not in existing]
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
        touched: dict[int, Row] = {}
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


def _changed_values(current: Any, r: Row, has: frozenset[str]) -> dict[str, Any]:
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
