"""Storing vessel fixes and keeping each vessel's zone visits (entered/left), so a 해제 reaches the right people.

Why visits and not just "where is it now": a warning is issued while a boat is in 서해중부앞바다, the boat
sails out, and the lift (해제) must still reach its owner. ``VesselZoneVisit`` rows say which vessels
were in a zone during a period (``vessels_in_zone_during``).

Rules
    * A vessel is in a zone when its fix is inside the zone outline or within the boundary buffer
      (default 1 NM, measured on the ground), so a vessel on a border is in both zones.
    * Fixes of one vessel are applied in time order; a fix older than the vessel's latest stored fix
      is kept in the history but changes nothing (AIS arrives out of order from several receivers).
    * Leaving is recorded at the first fix outside. A vessel whose latest fix is older than
      ``stale_after`` (default 6 h) is in no zone *now*: its open visits are closed at
      ``last fix + stale_after`` (the last moment it could still be assumed there). A gap longer than
      ``stale_after`` between two fixes closes the visits the same way before the new fix is applied.
    * Positions of unregistered MMSIs are skipped unless ``known_only=False`` (then a Vessel row is
      created): a coastal AIS feed hears thousands of ships nobody subscribed to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from subscribers.ais import Position
from subscribers.geo_models import Vessel, VesselPosition, VesselZoneVisit
from subscribers.geodesy import KM_PER_NM
from subscribers.geoindex import DEFAULT_BUFFER_NM, DEFAULT_STALE_AFTER, ZoneTree

_CHUNK = 5000


@dataclass
class IngestReport:
    positions: int = 0
    #: Rows added to the history (duplicates of (mmsi, time) are not stored twice).
    stored: int = 0
    #: Registered vessels that got at least one fix.
    vessels: int = 0
    #: Positions skipped because their MMSI is not a registered vessel.
    unknown: int = 0
    entered: int = 0
    left: int = 0
    #: Open visits closed because the vessel's latest fix became stale.
    expired: int = 0
    #: Vessels whose latest known position changed (the ones a live warning may now cover).
    moved: set[int] = field(default_factory=set)


def ingest_positions(session: Session, positions: Iterable[Position], *, buffer_nm: float = DEFAULT_BUFFER_NM,
                     stale_after: timedelta = DEFAULT_STALE_AFTER, now: datetime | None = None,
                     zones: ZoneTree | None = None, known_only: bool = True,
                     names: dict[int, str] | None = None) -> IngestReport:
    """Store the fixes (Core bulk insert), move each vessel's latest fix and update its zone visits."""
    now = now or datetime.now(UTC)
    fixes = list(positions)
    report = IngestReport(positions=len(fixes))
    vessels = _vessels(session, {p.mmsi for p in fixes})
    if not known_only:
        for mmsi in sorted({p.mmsi for p in fixes} - vessels.keys()):
            vessels[mmsi] = Vessel(mmsi=mmsi, name=(names or {}).get(mmsi, "")[:100])
            session.add(vessels[mmsi])
    for mmsi, name in (names or {}).items():
        if mmsi in vessels and not vessels[mmsi].name:
            vessels[mmsi].name = name[:100]
    known = [p for p in fixes if p.mmsi in vessels]
    report.unknown = len(fixes) - len(known)
    report.stored = _store_history(session, known)
    by_vessel: dict[int, list[Position]] = defaultdict(list)
    for p in known:
        by_vessel[p.mmsi].append(p)
    report.vessels = len(by_vessel)

    # Only fixes newer than what we already know move a vessel.
    fresh: list[Position] = []
    for mmsi, ps in by_vessel.items():
        last = vessels[mmsi].last_fix_at
        ps.sort(key=lambda p: p.at)
        fresh.extend(p for p in ps if last is None or p.at > last)
    tree = zones if zones is not None else ZoneTree.from_session(session)
    zone_sets = _zone_sets(tree, fresh, buffer_nm * KM_PER_NM)
    open_visits = _open_visits(session, list(by_vessel))
    for p, inside in zip(fresh, zone_sets, strict=True):
        vessel = vessels[p.mmsi]
        current = open_visits[p.mmsi]
        if vessel.last_fix_at is not None and p.at - vessel.last_fix_at > stale_after:
            report.expired += _close_all(current, vessel.last_fix_at + stale_after)
        for code in list(current):
            if code not in inside:
                current.pop(code).left_at = p.at
                report.left += 1
        for code in sorted(inside - current.keys()):
            visit = VesselZoneVisit(mmsi=p.mmsi, zone_code=code, entered_at=p.at)
            session.add(visit)
            current[code] = visit
            report.entered += 1
        vessel.last_lat, vessel.last_lon, vessel.last_fix_at = p.lat, p.lon, p.at
        session.add(vessel)
        report.moved.add(p.mmsi)
    session.flush()
    report.expired += expire_stale_visits(session, now=now, stale_after=stale_after)
    return report


def expire_stale_visits(session: Session, *, now: datetime | None = None,
                        stale_after: timedelta = DEFAULT_STALE_AFTER) -> int:
    """Close the open visits of vessels not heard for ``stale_after``; run it before trusting "now"."""
    cutoff = (now or datetime.now(UTC)) - stale_after
    rows = session.exec(
        select(VesselZoneVisit, Vessel.last_fix_at)
        .join(Vessel, Vessel.mmsi == VesselZoneVisit.mmsi)  # type: ignore[arg-type]
        .where(VesselZoneVisit.left_at.is_(None), or_(Vessel.last_fix_at.is_(None),  # type: ignore[union-attr]
                                                      Vessel.last_fix_at < cutoff))  # type: ignore[operator]
    ).all()
    for visit, last in rows:
        visit.left_at = max((last or visit.entered_at) + stale_after, visit.entered_at)
        session.add(visit)
    session.flush()
    return len(rows)


def vessels_in_zone_during(session: Session, zone_code: str, since: datetime,
                           until: datetime | None = None) -> set[int]:
    """MMSIs of vessels that were in ``zone_code`` at any moment between ``since`` and ``until`` (default now)."""
    stmt = select(VesselZoneVisit.mmsi).where(
        VesselZoneVisit.zone_code == zone_code,
        or_(VesselZoneVisit.left_at.is_(None), VesselZoneVisit.left_at >= since),  # type: ignore[union-attr,operator]
    )
    if until is not None:
        stmt = stmt.where(VesselZoneVisit.entered_at <= until)  # type: ignore[operator]
    return set(session.exec(stmt).all())


def vessels_in_zones_now(session: Session, zone_codes: Iterable[str], *, at: datetime | None = None,
                         stale_after: timedelta = DEFAULT_STALE_AFTER) -> set[int]:
    """MMSIs with an open visit in any of ``zone_codes`` and a fix no older than ``stale_after`` at ``at``."""
    codes = list(zone_codes)
    if not codes:
        return set()
    cutoff = (at or datetime.now(UTC)) - stale_after
    stmt = (select(VesselZoneVisit.mmsi)
            .join(Vessel, Vessel.mmsi == VesselZoneVisit.mmsi)  # type: ignore[arg-type]
            .where(VesselZoneVisit.zone_code.in_(codes), VesselZoneVisit.left_at.is_(None),  # type: ignore[attr-defined,union-attr]
                   Vessel.last_fix_at >= cutoff))  # type: ignore[operator]
    return set(session.exec(stmt).all())


def current_zones(session: Session, mmsi: int) -> set[str]:
    stmt = select(VesselZoneVisit.zone_code).where(VesselZoneVisit.mmsi == mmsi,
                                                   VesselZoneVisit.left_at.is_(None))  # type: ignore[union-attr]
    return set(session.exec(stmt).all())


def _vessels(session: Session, mmsis: set[int]) -> dict[int, Vessel]:
    out: dict[int, Vessel] = {}
    ordered = sorted(mmsis)
    for i in range(0, len(ordered), _CHUNK):
        chunk = ordered[i:i + _CHUNK]
        for v in session.exec(select(Vessel).where(Vessel.mmsi.in_(chunk))).all():  # type: ignore[attr-defined]
            out[v.mmsi] = v
    return out


def _open_visits(session: Session, mmsis: Sequence[int]) -> dict[int, dict[str, VesselZoneVisit]]:
    out: dict[int, dict[str, VesselZoneVisit]] = defaultdict(dict)
    ordered = sorted(mmsis)
    for i in range(0, len(ordered), _CHUNK):
        stmt = select(VesselZoneVisit).where(VesselZoneVisit.mmsi.in_(ordered[i:i + _CHUNK]),  # type: ignore[attr-defined]
                                             VesselZoneVisit.left_at.is_(None))  # type: ignore[union-attr]
        for v in session.exec(stmt).all():
            out[v.mmsi][v.zone_code] = v
    return out


def _close_all(current: dict[str, VesselZoneVisit], at: datetime) -> int:
    n = len(current)
    for visit in current.values():
        visit.left_at = max(at, visit.entered_at)
    current.clear()
    return n


def _zone_sets(tree: ZoneTree, fixes: list[Position], buffer_km: float) -> list[set[str]]:
    sets: list[set[str]] = [set() for _ in fixes]
    if not fixes or len(tree) == 0:
        return sets
    lon = np.array([p.lon for p in fixes], dtype=float)
    lat = np.array([p.lat for p in fixes], dtype=float)
    pi, zi = tree.containing(lon, lat, buffer_km)
    for i, z in zip(pi.tolist(), zi.tolist(), strict=True):
        sets[i].add(str(tree.codes[z]))
    return sets


def _store_history(session: Session, fixes: list[Position]) -> int:
    if not fixes:
        return 0
    rows: list[dict[str, Any]] = [
        {"mmsi": p.mmsi, "lat": p.lat, "lon": p.lon, "at": p.at, "source": p.source[:64]} for p in fixes
    ]
    dialect = session.get_bind().dialect.name
    table = VesselPosition.__table__  # type: ignore[attr-defined]
    if dialect == "sqlite":
        stmt: Any = sqlite.insert(table).on_conflict_do_nothing()
    elif dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    else:
        stmt = insert(table)
    if dialect in ("sqlite", "postgresql"):
        # RETURNING counts exactly the rows inserted (executemany rowcount is unreliable on psycopg).
        stmt = stmt.returning(table.c.id)
    stored = 0
    for i in range(0, len(rows), _CHUNK):
        result = session.execute(stmt, rows[i:i + _CHUNK])
        stored += len(result.all()) if dialect in ("sqlite", "postgresql") else len(rows[i:i + _CHUNK])
    return stored
