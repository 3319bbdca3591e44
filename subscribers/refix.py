"""Re-place vessels on their stored fix after zone outlines change.

Why: without outlines a vessel is in no zone. When ``alimcast zones import`` then loads them, a boat whose
last fix (already stored) lies in a warned zone must not wait for its next AIS report, which may be hours
away for a boat at anchor: its stored fix is checked against the new outlines at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from subscribers.geo_models import Vessel, VesselZoneVisit
from subscribers.geodesy import KM_PER_NM
from subscribers.geoindex import DEFAULT_BUFFER_NM, DEFAULT_STALE_AFTER, ZoneTree
from subscribers.positions import IngestReport, _open_visits, _zone_sets


def recheck_stored_fixes(session: Session, *, buffer_nm: float = DEFAULT_BUFFER_NM,
                         stale_after: timedelta = DEFAULT_STALE_AFTER, now: datetime | None = None) -> IngestReport:
    """Open and close zone visits of every vessel with a fresh stored fix as the current outlines say.

    ``moved`` holds the vessels that entered a zone, so the caller can send them the live warnings there.
    """
    now = now or datetime.now(UTC)
    report = IngestReport()
    vessels = list(session.exec(select(Vessel).where(col(Vessel.last_fix_at).is_not(None),
                                                      col(Vessel.last_fix_at) >= now - stale_after)))
    if not vessels:
        return report
    from subscribers.ais import Position

    fixes = [Position(mmsi=v.mmsi, lat=v.last_lat or 0.0, lon=v.last_lon or 0.0, at=v.last_fix_at or now)
             for v in vessels]
    zone_sets = _zone_sets(ZoneTree.from_session(session), fixes, buffer_nm * KM_PER_NM)
    open_visits = _open_visits(session, [v.mmsi for v in vessels])
    for fix, inside in zip(fixes, zone_sets, strict=True):
        current = open_visits[fix.mmsi]
        for code in list(current):
            if code not in inside:
                current.pop(code).left_at = now
                report.left += 1
        for code in sorted(inside - current.keys()):
            session.add(VesselZoneVisit(mmsi=fix.mmsi, zone_code=code, entered_at=fix.at))
            report.entered += 1
            report.moved.add(fix.mmsi)
    report.vessels = len(vessels)
    session.flush()
    return report
