"""Who gets a zone-coded alert: the subscribers of the alert's zones, once each, with a preference decision.

Two ways to find the people, same answer (a test checks they agree on random data):
- SQL (``matching_ids_sql``): always current, a few hundred milliseconds for a large alert on a million
  subscribers; the default of ``match_zones``.
- ``ZoneIndex``: zone code -> sorted numpy array of subscriber ids (int32 slices of one buffer, with the union of
  every catalogue group and broad name precomputed), built once from the database (a second or two for a
  million people, ~25 s and ~300 MB for ten million) and answering a leaf, group or broad-name alert by
  handing out one read-only array (microseconds, see ``benchmarks/bench_national_match.py``).
  It is a snapshot: people added after ``build`` are not in it. The running pipeline therefore uses
  ``subscribers.live_zone_index.LiveZoneIndex``, which corrects the snapshot with the change log the
  database's triggers keep, and so always gives the SQL answer at the index's speed.

Alert codes are expanded to leaf zones the same way subscriptions were stored (``subscribers.zones``),
so an alert for a group reaches the subscribers of all its leaves, and a person who subscribed to
several of the alert's zones is one recipient. Unknown codes are kept as they are (nobody can be
subscribed to them) and logged, so one new code does not stop the alert reaching everyone else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from time import perf_counter
from typing import Any

import numpy as np
import orjson
from sqlalchemy import ARRAY, Integer, String, any_, bindparam, func, literal_column, select, type_coerce
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from subscribers import zones as zone_catalogue
from subscribers.bulk_read import raw_chunks
from subscribers.id_bitmaps import FrozenBitMap, bitmap_bytes, bitmap_of, union_ids
from subscribers.models import Subscriber, Subscription
from subscribers.preferences import Action, Decision, Preferences, decide
from subscribers.sorted_ids import sorted_distinct

log = logging.getLogger("alimcast.subscribers.matching")

#: Bound parameters per IN (...) query (SQLite allows 32,766, PostgreSQL 65,535).
IN_BATCH = 10_000
_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False


@dataclass(frozen=True, slots=True)
class Recipient:
    subscriber_id: int
    phone: str
    name: str
    language: str
    decision: Decision


@lru_cache(maxsize=4096)
def _expand_one(code: str) -> tuple[str, ...]:
    try:
        return tuple(zone_catalogue.expand(code))
    except zone_catalogue.ZoneError:
        log.warning("alert zone %r is not in the zone catalogue; matched literally", code)
        return (code.strip().upper(),)


def alert_leaves(zone_codes: Iterable[str]) -> list[str]:
    """Leaf codes an alert's zone codes cover (groups and broad names expanded, unknown codes kept)."""
    out: set[str] = set()
    for code in zone_codes:
        if code and code.strip():
            out.update(_expand_one(code.strip()))
    return sorted(out)


def borrow_connection(target: Session | Engine | Connection) -> Any:
    """A context manager yielding a connection: the session's or the given one (left open), or a new one."""
    if isinstance(target, Session):
        return _Borrowed(target.connection())
    if isinstance(target, Connection):
        return _Borrowed(target)
    return target.connect()


class _Borrowed:
    """A connection we did not open: used as a context manager without closing it."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def __enter__(self) -> Connection:
        return self.connection

    def __exit__(self, *exc: object) -> None:
        return None


def matching_ids_sql(target: Session | Engine | Connection, zone_codes: Iterable[str]) -> np.ndarray:
    """Sorted unique ids of active subscribers of the alert's zones, straight from SQL (the baseline)."""
    leaves = alert_leaves(zone_codes)
    if not leaves:
        return _EMPTY
    sub = Subscription.__table__.c  # type: ignore[attr-defined]
    person = Subscriber.__table__.c  # type: ignore[attr-defined]
    query = (
        select(sub.subscriber_id)
        .distinct()
        .join_from(Subscription.__table__, Subscriber.__table__, person.id == sub.subscriber_id)  # type: ignore[attr-defined]
        .where(sub.kind == "zone", sub.zone_code.in_(leaves), person.status == "active")
        .order_by(sub.subscriber_id)
    )
    with borrow_connection(target) as conn:
        return np.fromiter((sid for (sid,) in conn.execute(query)), dtype=np.int64)


class ZoneIndex:
    """In-memory zone -> subscriber ids, for answering many alerts fast (see the module docstring).

    Compact at national scale (10,000,000 people, ``benchmarks/bench_national_match.py``): all ids live in
    one int32 array (int64 only if an id does not fit), sliced per leaf zone; and every catalogue group
    and broad bulletin name has its union precomputed the same way, so an alert for a leaf, a group or a
    broad name is answered by returning one read-only slice, without touching millions of ids. Other
    combinations (a bulletin naming several groups) are covered by as few precomputed sets as possible and merged
    through Roaring bitmaps of the same sets (``subscribers.id_bitmaps``: ~1.5 ms for a million ids at 10,000,000
    people, where a numpy union took 10-15 ms; about 2 bytes an id more).
    """

    def __init__(self, by_zone: dict[str, np.ndarray], built_in_s: float = 0.0) -> None:
        self.built_in_s = built_in_s
        arrays = {code: np.asarray(ids) for code, ids in by_zone.items() if len(ids)}
        self._max_id = max((int(a[-1]) for a in arrays.values()), default=0)
        self.id_dtype = np.dtype(np.int32 if self._max_id < 2**31 else np.int64)
        self._leaf_rows = sum(len(a) for a in arrays.values())
        self._by_zone = _pack(arrays, self.id_dtype)
        self._groups = self._precompute_groups()
        #: the same sets as Roaring bitmaps, for alerts whose answer is a union of several (int32 ids only)
        self._bitmaps: dict[Any, FrozenBitMap] = {}
        if self.id_dtype == np.int32:
            self._bitmaps = {code: bitmap_of(ids) for code, ids in self._by_zone.items()}
            self._bitmaps.update((leaves, bitmap_of(ids)) for leaves, ids in self._groups)

    @classmethod
    def build(cls, target: Session | Engine | Connection, *, statuses: Sequence[str] = ("active",)) -> ZoneIndex:
        """Read the zone subscriptions of people in ``statuses`` in chunks (never all rows as Python objects).

        Who is active is read first as a bitmap, then the zone rows without a join (a join costs the database a
        lookup per row: most of the build at 10,000,000 people). Rows of people missing from the bitmap (added
        after it was read) are left out, as are people whose status changed in between: the change log the
        live index checks lists all of them, so ``LiveZoneIndex`` still answers exactly.
        """
        started = perf_counter()
        sub = Subscription.__table__  # type: ignore[attr-defined]
        person = Subscriber.__table__  # type: ignore[attr-defined]
        active_query = select(person.c.id).where(person.c.status.in_(list(statuses)))
        rows_query = select(sub.c.zone_code, sub.c.subscriber_id).where(sub.c.kind == "zone")
        with borrow_connection(target) as conn:
            active = _bitmap(np.concatenate([_EMPTY, *raw_chunks(conn, active_query, lambda rows: np.fromiter(
                (sid for (sid,) in rows), np.int64, len(rows)))]))
            numbers: dict[str, int] = {}
            zone_parts: list[np.ndarray] = []
            id_parts: list[np.ndarray] = []
            for zi, ids in raw_chunks(conn, rows_query, lambda rows: (
                    np.fromiter((numbers.setdefault(code, len(numbers)) for code, _ in rows), np.int64, len(rows)),
                    np.fromiter((sid for _, sid in rows), np.int64, len(rows)))):
                keep = ids < len(active)
                keep[keep] = active[ids[keep]]
                zone_parts.append(zi[keep])
                id_parts.append(ids[keep])
        return cls(_split_by_zone(zone_parts, id_parts, numbers), perf_counter() - started)

    def lookup(self, zone_codes: Iterable[str]) -> np.ndarray:
        """Sorted unique subscriber ids for an alert's zone codes (read-only array of ``id_dtype``)."""
        leaves = {z for z in alert_leaves(zone_codes) if z in self._by_zone}
        if not leaves:
            return _EMPTY
        arrays: list[np.ndarray] = []
        keys: list[Any] = []
        for group_leaves, ids in self._groups:  # largest first: as few arrays as possible
            if group_leaves <= leaves:
                arrays.append(ids)
                keys.append(group_leaves)
                leaves -= group_leaves
                if not leaves:
                    break
        keys.extend(sorted(leaves))
        arrays.extend(self._by_zone[z] for z in sorted(leaves))
        if len(arrays) == 1:
            return arrays[0]
        if self._bitmaps:  # a bulletin of several groups: a new warning's first match waits for this union
            return union_ids([self._bitmaps[k] for k in keys], self.id_dtype)
        return _union(arrays, self._max_id)

    def bitmap(self, zone_codes: Iterable[str]) -> FrozenBitMap | None:
        """The bitmap holding exactly ``lookup(zone_codes)``'s ids when that answer is one kept set (a leaf, a
        group or broad name), for a membership test that never reads the ids one by one; None otherwise."""
        leaves = frozenset(z for z in alert_leaves(zone_codes) if z in self._by_zone)
        if not leaves or not self._bitmaps:
            return None
        if len(leaves) == 1:
            return self._bitmaps.get(next(iter(leaves)))
        return self._bitmaps.get(leaves)

    def zone_count(self) -> int:
        return len(self._by_zone)

    def subscription_count(self) -> int:
        return self._leaf_rows

    def nbytes(self) -> int:
        """Bytes held in id arrays (leaf slices and precomputed group unions) and in their bitmaps."""
        seen: dict[int, int] = {}
        for ids in [*self._by_zone.values(), *(ids for _, ids in self._groups)]:
            base = ids.base if ids.base is not None else ids
            seen[id(base)] = base.nbytes
        return sum(seen.values()) + self.bitmap_nbytes()

    def bitmap_nbytes(self) -> int:
        """Bytes held in the containers of the Roaring bitmaps."""
        return sum(bitmap_bytes(b) for b in self._bitmaps.values())

    def _precompute_groups(self) -> list[tuple[frozenset[str], np.ndarray]]:
        """The union of every catalogue group and broad name with people in two or more of its leaves."""
        catalogue = zone_catalogue.catalogue()
        names = [z.code for z in catalogue.zones.values() if catalogue.children.get(z.code)]
        names += list(catalogue.broad_names)
        sets: set[frozenset[str]] = set()
        for name in names:
            leaves = frozenset(z for z in _expand_one(name) if z in self._by_zone)
            if len(leaves) >= 2:
                sets.add(leaves)
        unions = {leaves: _union([self._by_zone[z] for z in sorted(leaves)], self._max_id) for leaves in sets}
        packed = _pack({",".join(sorted(k)): v for k, v in unions.items()}, self.id_dtype)
        groups = [(leaves, packed[",".join(sorted(leaves))]) for leaves in unions]
        groups.sort(key=lambda g: (-len(g[0]), sorted(g[0])))
        return groups


def _bitmap(ids: np.ndarray) -> np.ndarray:
    out = np.zeros(int(ids.max()) + 1 if len(ids) else 0, dtype=bool)
    out[ids] = True
    return out


def _split_by_zone(zone_parts: list[np.ndarray], id_parts: list[np.ndarray],
                   numbers: dict[str, int]) -> dict[str, np.ndarray]:
    """Zone code -> sorted ids, from (zone number, id) rows in any order: one sort of a combined int64 key."""
    if not zone_parts or sum(len(p) for p in zone_parts) == 0:
        return {}
    if max(int(i.max(initial=0)) for i in id_parts) >= 2**32:  # ids too large to share a key with the zone
        zi, ids = np.concatenate(zone_parts), np.concatenate(id_parts)
        order = np.lexsort((ids, zi))
        zi, ids = zi[order], ids[order]
        bounds = np.searchsorted(zi, np.arange(len(numbers) + 1))
    else:
        key = np.concatenate([(z << 32) | i for z, i in zip(zone_parts, id_parts, strict=True)])
        del zone_parts[:], id_parts[:]
        key.sort()
        bounds = np.searchsorted(key, np.arange(len(numbers) + 1, dtype=np.int64) << 32)
        ids = key & 0xFFFFFFFF
        del key
    return {code: ids[bounds[k]:bounds[k + 1]] for code, k in numbers.items()}


def _pack(arrays: dict[str, np.ndarray], dtype: np.dtype) -> dict[str, np.ndarray]:
    """Copy arrays into one read-only buffer of ``dtype`` and hand out slices of it (no per-array overhead)."""
    flat = np.empty(sum(len(a) for a in arrays.values()), dtype=dtype)
    spans: dict[str, tuple[int, int]] = {}
    start = 0
    for code, ids in arrays.items():
        flat[start:start + len(ids)] = ids
        spans[code] = (start, start + len(ids))
        start += len(ids)
    flat.flags.writeable = False  # before slicing: views inherit the flag only when they are made
    return {code: flat[a:b] for code, (a, b) in spans.items()}


def _union(arrays: list[np.ndarray], max_id: int) -> np.ndarray:
    """Sorted distinct ids of several sorted arrays: a sort for a few, one pass over a bitmap for many."""
    total = sum(len(a) for a in arrays)
    dtype = arrays[0].dtype
    if total * 64 < max_id:
        out = sorted_distinct(np.concatenate(arrays), runs=True)  # each array sorted: merged as runs
    else:
        seen = np.zeros(max_id + 1, dtype=bool)
        for array in arrays:
            seen[array] = True
        out = np.flatnonzero(seen).astype(dtype, copy=False)
    out.flags.writeable = False
    return out


def match_zones(
    session: Session | Engine | Connection,
    zone_codes: Iterable[str],
    *,
    severity: str,
    urgency: str,
    categories: Iterable[str] = (),
    hazards: Iterable[str] = (),
    at: datetime,
    index: ZoneIndex | None = None,
    include_skipped: bool = False,
) -> list[Recipient]:
    """Recipients of a zone-coded alert, one per person, sorted by subscriber id.

    Each carries the preference decision (SEND, or HOLD until quiet hours end); people the rules SKIP
    are left out unless ``include_skipped`` (for an audit of who was not told and why).
    """
    codes = list(zone_codes)
    ids = index.lookup(codes) if index is not None else matching_ids_sql(session, codes)
    return recipients_for_ids(session, ids, severity=severity, urgency=urgency, categories=categories,
                              hazards=hazards, at=at, include_skipped=include_skipped)


def recipients_for_ids(
    session: Session | Engine | Connection,
    subscriber_ids: Iterable[int] | np.ndarray,
    *,
    severity: str,
    urgency: str,
    categories: Iterable[str] = (),
    hazards: Iterable[str] = (),
    at: datetime,
    include_skipped: bool = False,
) -> list[Recipient]:
    """Recipients (one per id, sorted) with fresh status and preferences read from the database.

    For callers that found the people another way (polygons, vessels, points) and want the same rules.
    Ids that no longer exist are ignored; non-active people are SKIP (left out unless include_skipped).
    """
    ids = np.asarray(subscriber_ids if isinstance(subscriber_ids, np.ndarray) else list(subscriber_ids),
                     dtype=np.int64)
    if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):  # lookups are already sorted and unique
        ids = sorted_distinct(ids)  # not np.unique: numpy 2's hash-based one is several times slower
    if len(ids) == 0:
        return []
    wanted = list(categories)
    alert_hazards = list(hazards)
    person = Subscriber.__table__.c  # type: ignore[attr-defined]
    out: list[Recipient] = []
    # Most people share their preferences (the defaults): each distinct set is decided once per alert, and the
    # JSON lists are read as stored text and decoded once per distinct text (profiled on a 100,000-person
    # fan-out, decoding and deciding row by row was most of the matching's time).
    decisions: dict[tuple[Any, ...], Decision] = {}
    with borrow_connection(session) as conn:
        dialect = conn.dialect.name
        query = (
            select(
                person.id, person.phone, person.name, person.language, person.status,
                person.min_severity, type_coerce(person.categories, String), person.quiet_start_min,
                person.quiet_end_min, type_coerce(person.hazards, String),
            )
            .where(_ids_in(person.id, dialect))
            .order_by(person.id)
        )
        for start in range(0, len(ids), IN_BATCH):
            batch = ids[start : start + IN_BATCH].tolist()
            param = batch if dialect == "postgresql" else orjson.dumps(batch).decode()
            for sid, phone, name, language, *prefs in conn.execute(query, {"ids": param}).all():
                key = tuple(prefs) if dialect != "postgresql" else tuple(_hashable(v) for v in prefs)
                decision = decisions.get(key)
                if decision is None:
                    status, min_severity, cats, quiet_start, quiet_end, hazard_list = prefs
                    decision = decisions[key] = decide(
                        Preferences(status=status, min_severity=min_severity, categories=_strings(cats),
                                    quiet_start_min=quiet_start, quiet_end_min=quiet_end,
                                    hazards=_strings(hazard_list)),
                        severity=severity, urgency=urgency, categories=wanted, hazards=alert_hazards, at=at)
                if decision.action is Action.SKIP and not include_skipped:
                    continue
                out.append(Recipient(sid, phone, name, language, decision))
    return out


def _ids_in(column: Any, dialect: str) -> Any:
    """``column IN`` the ids bound as ONE parameter ``ids`` (a JSON array read by ``json_each`` on SQLite, an
    array on PostgreSQL): an expanding IN of 10,000 ids cost SQLAlchemy more to render than the query took."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", type_=ARRAY(Integer)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam("ids", type_=String))))


@lru_cache(maxsize=1024)
def _decoded(text: str) -> tuple[str, ...]:
    return tuple(orjson.loads(text) or ())


def _strings(value: Any) -> tuple[str, ...]:
    """A JSON list column as read by :func:`recipients_for_ids`: stored text (SQLite), or already a list."""
    if value is None:
        return ()
    if isinstance(value, str):
        return _decoded(value)
    return tuple(value)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
