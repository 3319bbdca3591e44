"""Zone matching at index speed that is never stale: a ZoneIndex snapshot plus the change log since it.

``ZoneIndex`` answers a zone-coded alert in well under a millisecond but is a snapshot; the SQL query is
always current but takes a few hundred milliseconds for a large group at a million subscribers. This
keeps both promises: the snapshot answers for everyone, and the people the database's triggers logged
in ``subscription_change`` since the snapshot (new, removed, moved or paused subscriptions, from any
writer) are dropped from that answer and asked of SQL again, exactly. The result always equals
``matching_ids_sql`` (a contract test checks it on both engines, with writers committing mid-build).

The snapshot's watermark is taken before the index is read, so a change committed while it is being
built is rechecked rather than missed: on SQLite the log id (one writer at a time, so ids follow commits),
on PostgreSQL the oldest transaction still running (``pg_snapshot_xmin``): every transaction whose rows a
later snapshot cannot see has an id at or above it.

After a bulk change (an import) the log since the snapshot grows large; past ``rebuild_after`` people the
index is rebuilt (two seconds for a million) instead of rechecking them one query batch at a time.

With ``background_rebuild`` (the running pipeline) a snapshot that is too old or behind a large change log is
rebuilt on a thread of its own while the old one goes on answering, exactly, through the change log. Measured at
10,000,000 subscribers a build takes 25-45 s: a warning must not wait for it. Only the very first snapshot is
built while the caller waits (the pipeline builds it at start-up, before the first warning).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine

from subscribers.background_rebuild import BackgroundRebuild
from subscribers.matching import IN_BATCH, ZoneIndex, alert_leaves, borrow_connection
from subscribers.models import Subscriber, Subscription
from subscribers.sorted_ids import positions as _positions
from subscribers.zone_answer import ZoneAnswer

log = logging.getLogger("alimcast.subscribers.live_zone_index")

#: Change-log rows older than this are pruned; an index is never used longer than ``max_age_s`` < this.
PRUNE_AFTER_S = 24 * 3600.0
_EMPTY = np.zeros(0, dtype=np.int64)


class LiveZoneIndex:
    """Zone -> active subscriber ids, answered from an in-memory snapshot corrected by the change log."""

    def __init__(self, *, max_age_s: float = 3600.0, rebuild_after: int = 20_000,
                 min_rebuild_interval_s: float = 60.0, background_rebuild: bool = False) -> None:
        if max_age_s >= PRUNE_AFTER_S:
            raise ValueError("max_age_s must be shorter than the change log's retention")
        self.max_age_s = max_age_s
        self.rebuild_after = rebuild_after
        #: A transaction left open on PostgreSQL holds the watermark back, so a big change log can outlive a
        #: rebuild: rebuild at most this often, recheck in SQL otherwise (slower, still exact).
        self.min_rebuild_interval_s = min_rebuild_interval_s
        self.background_rebuild = background_rebuild
        #: (snapshot, its change-log watermark): read together, swapped together by a rebuild
        self._state: tuple[ZoneIndex, int] | None = None
        self._built_at = 0.0
        self.builds = 0
        self._rebuilding = BackgroundRebuild("zone-index-rebuild")
        #: answers of the current snapshot by leaf set (``_lookup``), and the snapshot they belong to
        self._lookups: dict[Any, Any] = {}
        self._lookups_lock = threading.Lock()

    def invalidate(self) -> None:
        self._state = None

    @property
    def snapshot(self) -> ZoneIndex | None:
        """The snapshot answering now (without the change log's corrections)."""
        return self._state[0] if self._state is not None else None

    def wait_for_rebuild(self, timeout: float) -> bool:
        """Wait for a background rebuild in progress (if any) to end; False if it is still running."""
        return self._rebuilding.wait(timeout)

    def ensure_built(self, target: Any) -> None:
        """Build the snapshot now if there is none or it is too old (start-up: before the first warning)."""
        with _transaction(target) as conn:
            self._ensure_built(conn)

    def _ensure_built(self, conn: Connection) -> None:
        if self._state is None:
            self._build(conn)
        elif time.monotonic() - self._built_at > self.max_age_s:
            self._rebuild(conn, self._state)

    def ids(self, target: Any, zone_codes: Iterable[str]) -> np.ndarray:
        """Sorted unique ids of active subscribers of the codes' leaf zones: ``matching_ids_sql``'s answer."""
        return self.answer(target, zone_codes).ids

    def answer(self, target: Any, zone_codes: Iterable[str]) -> ZoneAnswer:
        """:meth:`ids`, with what tells other ids apart from them fast (``ZoneAnswer.lacking``)."""
        leaves = alert_leaves(zone_codes)
        if not leaves:
            return ZoneAnswer(_EMPTY)
        with _transaction(target) as conn:
            self._ensure_built(conn)
            assert self._state is not None
            seen = self._state
            index, watermark = seen
            changed = self._changed_since(conn, watermark)
            if len(changed) > self.rebuild_after and time.monotonic() - self._built_at >= self.min_rebuild_interval_s:
                log.info("zone index: %d people changed since it was built; rebuilding", len(changed))
                self._rebuild(conn, seen)
                assert self._state is not None
                index, watermark = self._state  # the new one when built here; the old one meanwhile otherwise
                changed = self._changed_since(conn, watermark)
            found = self._lookup(index, leaves)
            bitmap = index.bitmap(leaves)  # exactly ``found``, from the same snapshot
            if len(changed) == 0:
                return ZoneAnswer(found, bitmap)
            # Both sorted: find the changed people the snapshot holds by binary search (np.isin would pass over
            # millions of ids once per changed person, or sort them all).
            pos = _positions(found, changed)
            held = pos < len(found)
            held[held] = found[pos[held]] == changed[held]
            drop = pos[held]
            rechecked = _exact_ids(conn, leaves, changed)
            if np.array_equal(found[drop], rechecked):
                # the usual case: whoever changed, this alert's answer did not
                return ZoneAnswer(found, bitmap, changed, rechecked)
            return ZoneAnswer(_patched(found, drop, rechecked), bitmap, changed, rechecked)

    def _lookup(self, index: ZoneIndex, leaves: list[str]) -> np.ndarray:
        """``index.lookup(leaves)``, kept for the snapshot's life: a bulletin naming several groups is a union of
        millions of ids (10-15 ms at 10,000,000 people), and the same warning is matched again by the fan-out, the
        catch-up and the notices. Exact: the snapshot never changes, and the change log corrects it as before."""
        key = frozenset(leaves)
        with self._lookups_lock:
            cache = self._lookups
            if cache.get("index") is not index:
                cache.clear()
                cache["index"] = index
            found = cache.get(key)
        if found is not None:
            return found
        found = index.lookup(leaves)
        with self._lookups_lock:
            if cache.get("index") is index and found.nbytes <= _LOOKUPS_BYTES:
                kept = sum(a.nbytes for k, a in cache.items() if k != "index")
                while kept + found.nbytes > _LOOKUPS_BYTES:
                    kept -= cache.pop(next(k for k in cache if k != "index")).nbytes
                cache[key] = found
        return found

    def _rebuild(self, conn: Connection, seen: tuple[ZoneIndex, int] | None) -> None:
        """A new snapshot in place of ``seen``: here, or (``background_rebuild``) on a thread of its own with its
        own connection, the current one answering meanwhile. One background rebuild at a time, and none when
        ``seen`` was replaced already (a rebuild that ended while the caller looked at the change log)."""
        if not self.background_rebuild:
            self._build(conn)
            return
        engine = conn.engine

        def asked() -> None:
            self._built_at = time.monotonic()  # not asked again for min_rebuild_interval_s / max_age_s

        self._rebuilding.start(lambda: self._build_in_background(engine), replaced=lambda: self._state is not seen,
                               on_start=asked)

    def _build_in_background(self, engine: Engine) -> None:
        try:
            with engine.begin() as conn:
                self._build(conn)
        except Exception:  # noqa: BLE001 - the old snapshot goes on answering exactly; tried again later
            log.exception("zone index: background rebuild failed; the current snapshot goes on answering")

    def _build(self, conn: Connection) -> None:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            watermark = conn.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")).scalar_one()
        else:
            watermark = conn.execute(text("SELECT coalesce(max(id), 0) FROM subscription_change")).scalar_one()
        self._prune(conn)
        index = ZoneIndex.build(conn)
        self._state = (index, int(watermark))  # the snapshot and its watermark swap together
        self._built_at = time.monotonic()
        self.builds += 1
        log.debug("zone index built: %d zones, %d subscriptions in %.2f s", index.zone_count(),
                  index.subscription_count(), index.built_in_s)

    @staticmethod
    def _prune(conn: Connection) -> None:
        """Drop log rows older than any index may be. Looked at first: a DELETE would take SQLite's write
        lock (and wait for an import's transaction) even when nothing is old enough."""
        cutoff = time.time() - PRUNE_AFTER_S
        oldest = conn.execute(text("SELECT changed_at FROM subscription_change ORDER BY id LIMIT 1")).scalar()
        if oldest is not None and oldest < cutoff:
            # the newest row stays: SQLite then never reuses an id at or below a live index's watermark
            conn.execute(text("DELETE FROM subscription_change WHERE changed_at < :cutoff "
                              "AND id < (SELECT max(id) FROM subscription_change)"), {"cutoff": cutoff})

    @staticmethod
    def _changed_since(conn: Connection, watermark: int) -> np.ndarray:
        column = "txn >=" if conn.dialect.name == "postgresql" else "id >"
        rows = conn.execute(text(f"SELECT DISTINCT subscriber_id FROM subscription_change WHERE {column} :mark"),
                            {"mark": watermark})
        return np.unique(np.fromiter((sid for (sid,) in rows), dtype=np.int64))


def _patched(found: np.ndarray, drop: np.ndarray, add: np.ndarray) -> np.ndarray:
    """``found`` (sorted) without the elements at positions ``drop`` (sorted) and with the values ``add`` (sorted,
    none of them kept in ``found``), in one copy: slices between the few changes are copied whole, so millions of
    ids cost one memcpy, not a pass of np.delete and another of np.insert."""
    if len(drop) + len(add) > _PATCH_BY_SLICES:
        kept = np.delete(found, drop)
        return np.insert(kept, _positions(kept, add), add)
    out = np.empty(len(found) - len(drop) + len(add), dtype=found.dtype)
    at = _positions(found, add).tolist()
    drops, values = drop.tolist(), add.tolist()
    src = dst = i = j = 0
    end = len(found) + 1
    while i < len(drops) or j < len(values):
        next_drop = drops[i] if i < len(drops) else end
        next_add = at[j] if j < len(values) else end
        cut = min(next_drop, next_add)
        out[dst:dst + cut - src] = found[src:cut]
        dst += cut - src
        src = cut
        if next_add <= next_drop:  # a value equal to a dropped one goes in first, then the old copy goes
            out[dst] = values[j]
            dst += 1
            j += 1
        else:
            src += 1
            i += 1
    out[dst:] = found[src:]
    return out


#: Bytes of id arrays kept by ``LiveZoneIndex._lookup`` (all land at 10,000,000 people is ~30 MB).
_LOOKUPS_BYTES = 128 * 2**20

#: Above this many changes in one answer, np.delete + np.insert beat copying slice by slice.
_PATCH_BY_SLICES = 2_000


def _transaction(target: Any) -> Any:
    """An Engine gets its own transaction, committed, so that pruning the change log sticks; a Session or
    Connection is used as it is (the caller commits)."""
    return target.begin() if isinstance(target, Engine) else borrow_connection(target)


def _exact_ids(conn: Connection, leaves: list[str], subscriber_ids: np.ndarray) -> np.ndarray:
    """Of these people, the active subscribers of these leaf zones, as the database says now.

    Asked by person (their few zone rows, through the subscriber index) and filtered here: asked by zone,
    the planner may walk every row of a province's zones to find the handful of people wanted.
    """
    sub = Subscription.__table__.c  # type: ignore[attr-defined]
    person = Subscriber.__table__.c  # type: ignore[attr-defined]
    wanted = set(leaves)
    found: set[int] = set()
    for start in range(0, len(subscriber_ids), IN_BATCH):
        batch = subscriber_ids[start:start + IN_BATCH].tolist()
        query = (
            select(sub.subscriber_id, sub.zone_code)
            .join_from(Subscription.__table__, Subscriber.__table__, person.id == sub.subscriber_id)  # type: ignore[attr-defined]
            .where(sub.subscriber_id.in_(batch), sub.kind == "zone", person.status == "active")
        )
        found.update(sid for sid, zone in conn.execute(query) if zone in wanted)
    return np.array(sorted(found), dtype=np.int64)
