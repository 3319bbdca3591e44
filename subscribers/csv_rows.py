"""The read side of the bulk subscriber import: CSV lines to validated rows, in chunks; no database.

Why a module of its own: a million-row import spends about half its time here, in Python. The database side
(``subscribers.csv_import``, ``subscribers.bulk_writers``) runs in the importing process; this side can run in
a child process of its own (``subscribers.parse_process``), so parsing no longer shares the interpreter lock
with the thread that feeds the database. It therefore imports only what parsing needs (no SQLAlchemy, no
driver): the child starts in a tenth of a second.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from subscribers import zones as zone_catalogue
from subscribers.phone import PhoneError, normalize
from subscribers.preferences import (
    PreferenceError,
    check_language,
    check_severity,
    parse_categories,
    parse_hazards,
    parse_quiet_hours,
)

MAX_NAME = 100
MAX_ERRORS_KEPT = 10_000


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
class Row:
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

    def astuple(self) -> tuple[Any, ...]:
        """The fields in order (``Row(*row.astuple())`` is the same row): what crosses a process boundary."""
        return (self.line, self.phone, self.name, self.min_severity, self.language, self.categories, self.quiet,
                self.zones, self.hazards)


class RowParser:
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

    def parse(self, line: int, cells: list[str]) -> Row:
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
        return Row(line, phone, name, severity, language, categories, quiet, zones, hazards)

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


class UnreadableLine(Exception):
    """The file cannot be read on from this line (bad encoding, broken quoting); the lines before it were read."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(f"line {line}: unreadable: {why}")
        self.line = line
        self.why = why


Chunk = tuple[dict[str, Row], ImportReport]


def read_chunks(reader: Any, parser: RowParser, chunk_rows: int) -> Iterator[Chunk]:
    """The rows after the header, by phone, in chunks of ``chunk_rows`` people, each with its lines' report.

    Each chunk is sorted by phone: new people are inserted in that order (the unique phone index is then walked
    in order, fewer page visits), and sorting here keeps the sort off the thread that feeds the database.

    ``reader`` is a ``csv.reader`` past the header. A phone seen again in the same chunk merges into the
    earlier line (zones added). The last chunk is yielded even when empty (its report may hold errors); an
    unreadable line yields the chunk read so far, then raises ``UnreadableLine``.
    """
    width = parser.width
    chunk: dict[str, Row] = {}
    part = ImportReport()  # this chunk's lines: its parse errors come before its write's errors
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
                yield dict(sorted(chunk.items())), part
                chunk, part = {}, ImportReport()
    except (UnicodeDecodeError, csv.Error) as exc:
        yield dict(sorted(chunk.items())), part
        raise UnreadableLine(reader.line_num, str(exc)) from None
    yield dict(sorted(chunk.items())), part


__all__ = ["MAX_ERRORS_KEPT", "MAX_NAME", "Chunk", "ImportReport", "Row", "RowParser", "UnreadableLine",
           "read_chunks"]
