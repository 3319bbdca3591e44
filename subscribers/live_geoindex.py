"""The geometry index kept exact without making a warning wait for it: a snapshot plus the changes since.

``GeoIndex`` answers a polygon warning in milliseconds, but building it reads every fixed point and subscribed
vessel: 10-18 s for a million points. Rebuilt inside the match that asked for it (as it used to be, every
60 s), a tsunami warning could wait that long. Here a snapshot answers at once, corrected by two change logs
that database triggers fill (so every writer is seen):

* ``subscription_change``: people whose subscriptions or status changed (a new point, a moved one, a paused
  person, a vessel followed or dropped);
* ``vessel_change``: vessels whose latest fix changed (migration 0021).

The snapshot's rows of those people and vessels are left out of its answer, and their rows as the database
holds them now are read (a few hundred rows, by person and by MMSI) and asked the same question; the union is
the answer a freshly built index would give. The watermarks are taken before the snapshot is read (the rules of
``subscribers.live_zone_index``: the log id on SQLite, the oldest running transaction on PostgreSQL), so a
change committed during a build is rechecked, never missed.

A snapshot older than ``max_age_s`` or behind more than ``reread_vessels_after`` changed people and vessels is
rebuilt on a thread of its own with its own session, one at a time, while the old one goes on answering. Only the first
snapshot is built while the caller waits (the pipeline builds it at start-up), and one older than
``hard_max_age_s`` (background rebuilds failing for half an hour: the vessel log may soon be pruned under it).

Zone outlines are part of the snapshot, not of the logs: an outline import is picked up by the next rebuild
(within ``max_age_s``), or at once through :meth:`invalidate`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from subscribers.background_rebuild import BackgroundRebuild
from subscribers.geoindex import (
    DEFAULT_BUFFER_NM,
    DEFAULT_STALE_AFTER,
    AffectedSet,
    CircleSpec,
    GeoIndex,
    LatLon,
    LeaveOut,
)
from subscribers.sorted_ids import sorted_distinct

log = logging.getLogger("alimcast.subscribers.live_geoindex")

#: ``vessel_change`` rows older than this are pruned at each build (a fix per vessel every few seconds adds up).
VESSEL_PRUNE_AFTER_S = 3600.0


@dataclass(frozen=True)
class _Snapshot:
    index: GeoIndex
    #: watermarks of ``subscription_change`` and ``vessel_change`` taken before the index was read
    people_mark: int
    vessel_mark: int
    built_at: float


class LiveGeoIndex:
    """:class:`GeoIndex` answers that are always current: a snapshot corrected by the change logs."""

    def __init__(self, *, buffer_nm: float = DEFAULT_BUFFER_NM, stale_after: timedelta = DEFAULT_STALE_AFTER,
                 max_age_s: float = 60.0, rebuild_after: int = 5_000, background_rebuild: bool = True,
                 hard_max_age_s: float = 1800.0, reread_vessels_after: int = 2_000) -> None:
        if not max_age_s <= hard_max_age_s < VESSEL_PRUNE_AFTER_S:
            raise ValueError("need max_age_s <= hard_max_age_s < the vessel change log's retention")
        self.buffer_nm = buffer_nm
        self.stale_after = stale_after
        self.max_age_s = max_age_s
        #: changed people above which the snapshot is rebuilt before answering (an import: rechecking that many
        #: people by id costs about a build)
        self.rebuild_after = rebuild_after
        #: changed people and vessels above which a background rebuild starts (before ``max_age_s``), and moved
        #: vessels above which every vessel row is read again rather than these by MMSI (AIS moves many)
        self.reread_vessels_after = reread_vessels_after
        self.background_rebuild = background_rebuild
        self.hard_max_age_s = hard_max_age_s
        self._state: _Snapshot | None = None
        self._asked_at = float("-inf")  # when a rebuild was last started (not asked again for max_age_s); never yet
        self.builds = 0
        self._rebuilding = BackgroundRebuild("geo-index-rebuild")
        #: Called by every build once its watermarks are taken, before it reads (tests hold a build there to ask
        #: questions and write changes while it runs).
        self.after_watermark: Callable[[], None] | None = None

    @property
    def snapshot(self) -> GeoIndex | None:
        """The index answering now (without the change logs' corrections)."""
        return self._state.index if self._state is not None else None

    def invalidate(self) -> None:
        """Forget the snapshot: the next answer builds a new one (after a bulk change of zone outlines)."""
        self._state = None

    def wait_for_rebuild(self, timeout: float) -> bool:
        """Wait for a background rebuild in progress (if any) to end; False if it is still running."""
        return self._rebuilding.wait(timeout)

    def ensure_built(self, session: Session) -> GeoIndex:
        """The snapshot, built now if there is none (start-up) or it is past ``hard_max_age_s``."""
        state = self._state
        if state is None or time.monotonic() - state.built_at > self.hard_max_age_s:
            self._build(session)
            assert self._state is not None
            state = self._state
        return state.index

    def affected(self, session: Session, polygons: Sequence[Sequence[LatLon]] = (),
                 circles: Sequence[CircleSpec] = (), *, at: datetime | None = None) -> AffectedSet:
        """``GeoIndex.affected`` as an index built from the database now would answer it."""
        return self._answer(session, lambda index, leave_out: index.affected(polygons, circles, at=at,
                                                                             leave_out=leave_out))

    def affected_by_zones(self, session: Session, codes: Sequence[str], *, at: datetime | None = None) -> AffectedSet:
        """``GeoIndex.affected_by_zones`` as an index built from the database now would answer it."""
        return self._answer(session, lambda index, leave_out: index.affected_by_zones(codes, at=at,
                                                                                      leave_out=leave_out))

    def _answer(self, session: Session,
                ask: Callable[[GeoIndex, LeaveOut | None], AffectedSet]) -> AffectedSet:
        self.ensure_built(session)
        state = self._state
        assert state is not None
        conn = session.connection()
        people = _changed_since(conn, "subscription_change", "subscriber_id", state.people_mark)
        vessels = _changed_since(conn, "vessel_change", "mmsi", state.vessel_mark)
        now = time.monotonic()
        if (now - state.built_at > self.max_age_s or len(people) + len(vessels) > self.reread_vessels_after) \
                and now - self._asked_at >= self.max_age_s:
            self._rebuild(session, state)
            if self._state is not state:  # rebuilt here (no background): answer from the new one
                return self._answer(session, ask)
        if len(people) == 0 and len(vessels) == 0:
            return ask(state.index, None)
        if len(people) > self.rebuild_after:
            # a bulk change (an import): rechecking so many people by id costs about what a build does; exact
            log.info("geometry index: %d people changed since the snapshot; building a new one now", len(people))
            self._build(session)
            return self._answer(session, ask)
        every_vessel = len(vessels) > self.reread_vessels_after
        old = ask(state.index, LeaveOut(people, vessels, every_vessel=every_vessel))
        fresh = GeoIndex.from_session(session, buffer_nm=self.buffer_nm, stale_after=self.stale_after,
                                      vessels_only=[] if every_vessel else vessels.tolist(), people=people.tolist(),
                                      every_vessel=every_vessel)
        fresh.zones = state.index.zones  # outlines are the snapshot's; only their rows are new
        new = ask(fresh, None)
        return AffectedSet(subscriber_ids=_merged(old.subscriber_ids, new.subscriber_ids),
                           zone_codes=old.zone_codes | new.zone_codes, mmsis=_merged(old.mmsis, new.mmsis))

    def _rebuild(self, session: Session, seen: _Snapshot) -> None:
        """A new snapshot in place of ``seen``: here, or (``background_rebuild``) on a thread of its own, one at a
        time, and none if ``seen`` was replaced already."""
        self._asked_at = time.monotonic()
        if not self.background_rebuild:
            self._build(session)
            return
        engine = session.get_bind()
        assert isinstance(engine, Engine)
        self._rebuilding.start(lambda: self._build_in_background(engine), replaced=lambda: self._state is not seen)

    def _build_in_background(self, engine: Engine) -> None:
        try:
            with Session(engine) as session:
                self._build(session)
                session.commit()  # the pruning of the vessel log
        except Exception:  # noqa: BLE001 - the old snapshot goes on answering exactly; tried again later
            log.exception("geometry index: background rebuild failed; the current snapshot goes on answering")

    def _build(self, session: Session) -> None:
        started = time.monotonic()
        conn = session.connection()
        if conn.dialect.name == "postgresql":
            mark = int(conn.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")).scalar_one())
            people_mark = vessel_mark = mark
        else:
            people_mark = int(conn.execute(text("SELECT coalesce(max(id), 0) FROM subscription_change")).scalar_one())
            vessel_mark = int(conn.execute(text("SELECT coalesce(max(id), 0) FROM vessel_change")).scalar_one())
        _prune_vessel_log(conn)
        if self.after_watermark is not None:
            self.after_watermark()
        index = GeoIndex.from_session(session, buffer_nm=self.buffer_nm, stale_after=self.stale_after)
        self._state = _Snapshot(index, people_mark, vessel_mark, started)  # swapped whole
        self.builds += 1
        log.debug("geometry index built: %d points, %d vessel rows in %.2f s", len(index.points),
                  len(index.vessels), time.monotonic() - started)


def _merged(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted distinct union of two sorted id arrays (sort-based: numpy 2's hashed ``union1d`` is slower here)."""
    if len(b) == 0:
        return a
    return sorted_distinct(np.concatenate([a, b]), runs=True)  # two sorted runs: merged, not sorted again


def _changed_since(conn: Connection, table: str, column: str, mark: int) -> np.ndarray:
    """Sorted distinct ``column`` values logged in ``table`` after the watermark ``mark``."""
    where = "txn >=" if conn.dialect.name == "postgresql" else "id >"
    rows = conn.execute(text(f"SELECT DISTINCT {column} FROM {table} WHERE {where} :mark"), {"mark": mark})
    return np.unique(np.fromiter((value for (value,) in rows), dtype=np.int64))


def _prune_vessel_log(conn: Connection) -> None:
    """Drop vessel log rows older than any snapshot may be; the newest stays, so SQLite never reuses an id at or
    below a live snapshot's watermark. Looked at first: a DELETE would take SQLite's write lock."""
    cutoff = time.time() - VESSEL_PRUNE_AFTER_S
    oldest = conn.execute(text("SELECT changed_at FROM vessel_change ORDER BY id LIMIT 1")).scalar()
    if oldest is not None and oldest < cutoff:
        conn.execute(text("DELETE FROM vessel_change WHERE changed_at < :cutoff "
                          "AND id < (SELECT max(id) FROM vessel_change)"), {"cutoff": cutoff})
