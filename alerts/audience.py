"""Who an alert reaches: one answer from every way a person can be "in" a warning.

* subscribers of the KMA zones the alert names (group codes expand to their leaves);
* subscribers of zones whose imported outline intersects the alert's polygons or circles;
* people whose fixed point (a port, a sea farm) or followed vessel is inside the alert's geometry;
* people whose fixed point is inside the outline of a zone the alert names;
* people following a vessel whose current position is inside a zone the alert names — the warning
  follows the boat.

Quiet hours hold a message until morning only on land: a warning for a sea zone, or one that reaches a
person through their vessel, goes out at once.

All of it is merged into one set of subscriber ids before preferences are applied, so a person found
three ways still gets one message. Points and vessels come from a live geometry index
(``subscribers.live_geoindex``: a snapshot rebuilt in the background every ``ttl`` seconds, corrected by the change
logs), zone subscribers from a live zone index (``subscribers.live_zone_index``): both exact at every call, and
neither makes a warning wait for a rebuild after the first build.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alerts.render import split_event
from feeds.model import Alert
from subscribers.geo_models import VesselPosition, ZonePolygon
from subscribers.geoindex import GeoIndex
from subscribers.id_parts import IdParts
from subscribers.live_geoindex import LiveGeoIndex
from subscribers.live_zone_index import LiveZoneIndex
from subscribers.matching import Recipient, alert_leaves, recipients_for_ids
from subscribers.models import Subscription
from subscribers.positions import vessels_in_zones_now
from subscribers.preference_groups import RecipientGroup, recipient_groups
from subscribers.preferences import SEND, Action
from subscribers.sorted_ids import sorted_distinct
from subscribers.vessels import subscribers_for_vessels
from subscribers.zone_answer import ZoneAnswer


class Audience:
    def __init__(self, engine: Engine, *, buffer_nm: float, stale_after: timedelta, ttl_seconds: float = 60.0) -> None:
        self.engine = engine
        self.buffer_nm = buffer_nm
        self.stale_after = stale_after
        self.ttl_seconds = ttl_seconds
        self._built_at = 0.0
        self._has_geometry: bool | None = None
        # a rebuild (25-45 s at 10,000,000 people) never holds up a warning: the old snapshot answers meanwhile
        self.zones = LiveZoneIndex(background_rebuild=True)
        # likewise the geometry index (10-18 s for a million points), rebuilt every ttl_seconds in the background
        self.geo = LiveGeoIndex(buffer_nm=buffer_nm, stale_after=stale_after, max_age_s=ttl_seconds,
                                background_rebuild=True)

    @property
    def _index(self) -> GeoIndex | None:
        """The geometry snapshot answering now (None before the first build or without any geometry)."""
        return self.geo.snapshot

    def invalidate(self) -> None:
        """Call after zone outlines changed in bulk (points and vessels are followed through the change logs)."""
        self.geo.invalidate()
        self._has_geometry = None

    def _geometry_exists(self, session: Session) -> bool:
        """Cheap check so that a zone-only deployment never pays for building a geometry index."""
        zones = session.exec(select(func.count()).select_from(ZonePolygon)).one()
        points = session.exec(select(func.count()).select_from(Subscription)
                              .where(col(Subscription.kind).in_(("point", "vessel")))).one()
        return bool(zones or points)

    def geo_index(self, session: Session) -> LiveGeoIndex | None:
        """The live geometry index, its first snapshot built now if needed; None while there is no geometry at all
        (looked at again every ``ttl_seconds``; once there is a snapshot, the change logs follow every change)."""
        if self.geo.snapshot is not None:
            return self.geo
        if self._has_geometry is None or time.monotonic() - self._built_at >= self.ttl_seconds:
            self._has_geometry = self._geometry_exists(session)
            self._built_at = time.monotonic()
        if not self._has_geometry:
            return None
        self.geo.ensure_built(session)
        return self.geo

    def subscriber_ids(self, session: Session, alert: Alert, value_names: Sequence[str], *, at: datetime) -> list[int]:
        return self._find(session, alert, value_names, at=at).id_array().tolist()

    def _find(self, session: Session, alert: Alert, value_names: Sequence[str], *, at: datetime) -> _Found:
        codes = alert.zone_codes(tuple(value_names))
        zone = self.zones.answer(session, codes) if codes else None
        found = _Found(ids=[zone.ids] if zone is not None else [], zone=zone,
                       at_sea=any(code.startswith("S") for code in codes) or _navigational(alert))
        ids, aboard = found.ids, found.aboard
        polygons, circles = _shapes(alert)
        index = self.geo_index(session) if (polygons or circles or codes) else None
        if index is None:
            return found
        if polygons or circles:
            affected = index.affected(session, polygons, circles, at=at)
            ids.append(affected.subscriber_ids)
            if affected.zone_codes:
                ids.append(self.zones.ids(session, sorted(affected.zone_codes)))
                found.at_sea = found.at_sea or any(code.startswith("S") for code in affected.zone_codes)
            if len(affected.mmsis):
                aboard.update(subscribers_for_vessels(session, affected.mmsis.tolist()))
        if codes:
            # fixed points (a sea farm, a port) inside the stored outline of a warned zone, and boats the
            # index places there: a zone-coded warning covers them as a polygon warning would
            inside = index.affected_by_zones(session, alert_leaves(codes), at=at)
            ids.append(inside.subscriber_ids)
            if len(inside.mmsis):
                aboard.update(subscribers_for_vessels(session, inside.mmsis.tolist()))
        if codes and self._has_positions(session):
            mmsis = vessels_in_zones_now(session, alert_leaves(codes), at=at, stale_after=self.stale_after)
            if mmsis:
                aboard.update(subscribers_for_vessels(session, mmsis))
        return found

    def _has_positions(self, session: Session) -> bool:
        return session.exec(select(VesselPosition.id).limit(1)).first() is not None

    def recipients(self, session: Session, alert: Alert, value_names: Sequence[str], *,
                   at: datetime) -> list[Recipient]:
        where = self._find(session, alert, value_names, at=at)
        found = _with_preferences(session, alert, where.id_array().tolist(), at=at, include_skipped=True)
        return [_never_hold_at_sea(r) if (where.at_sea or r.subscriber_id in where.aboard) else r for r in found]

    def recipient_groups(self, session: Session, alert: Alert, value_names: Sequence[str], *,
                         at: datetime, only: np.ndarray | None = None) -> list[RecipientGroup]:
        """:meth:`recipients` grouped by decision and language (skipped people included), for a fan-out that
        writes the outbox a group at a time: the same people, the same decisions. ``only``: just these of them
        (a catch-up of people added since the warning was matched)."""
        where = self._find(session, alert, value_names, at=at)
        categories = sorted({c for info in alert.infos for c in info.category})
        ids = where.id_parts()
        if only is not None:
            ids = ids.only(only)
        groups = recipient_groups(session, ids,
                                  severity=alert.max_severity(), urgency=alert.max_urgency(), categories=categories,
                                  hazards=alert_hazards(alert), at=at, include_skipped=True)
        return _never_hold_groups_at_sea(groups, where)

    def boats(self, session: Session, mmsis: Collection[int]) -> GeoIndex:
        """The latest fixes of just these vessels, for :meth:`vessel_followers` (built once per batch of fixes,
        however many live warnings they are checked against)."""
        return GeoIndex.from_session(session, buffer_nm=self.buffer_nm, stale_after=self.stale_after,
                                     vessels_only=sorted(mmsis))

    def vessel_followers(self, session: Session, alert: Alert, value_names: Sequence[str], mmsis: Collection[int],
                         *, boats: GeoIndex, at: datetime) -> list[Recipient]:
        """People following any of these vessels whose vessel is in the alert's area now (never held).

        For a warning already sent when a boat sails into it: only the boats that just moved are looked at,
        against the warning's zones (their open visits) and its polygons and circles (their latest fix, in
        ``boats`` = :meth:`boats` of the same vessels).
        """
        inside: set[int] = set()
        codes = alert.zone_codes(tuple(value_names))
        if codes:
            inside |= set(mmsis) & vessels_in_zones_now(session, alert_leaves(codes), at=at,
                                                        stale_after=self.stale_after)
        polygons, circles = _shapes(alert)
        if polygons or circles:
            inside |= set(boats.affected(polygons, circles, at=at).mmsis.tolist())
        if not inside:
            return []
        found = _with_preferences(session, alert, subscribers_for_vessels(session, inside), at=at)
        return [_never_hold_at_sea(r) for r in found]


def _shapes(alert: Alert) -> tuple[list[list[tuple[float, float]]], list[tuple[float, float, float]]]:
    """The alert's polygons and its circles as (lat, lon, radius_km), over every info and area."""
    polygons = [ring for info in alert.infos for area in info.areas for ring in area.polygons]
    circles = [(c.lat, c.lon, c.radius_km) for info in alert.infos for area in info.areas for c in area.circles]
    return polygons, circles


def _with_preferences(session: Session, alert: Alert, ids: Collection[int], *, at: datetime,
                      include_skipped: bool = False) -> list[Recipient]:
    """These people with each one's preference decision for this alert, read fresh from the database."""
    categories = sorted({c for info in alert.infos for c in info.category})
    return recipients_for_ids(session, sorted(ids), severity=alert.max_severity(), urgency=alert.max_urgency(),
                              categories=categories, hazards=alert_hazards(alert), at=at,
                              include_skipped=include_skipped)


@dataclass(slots=True)
class _Found:
    """Everyone an alert reaches, those reached through their vessel, and whether the warning is for the sea
    (a sea zone code, an area touching a sea zone's outline, or a navigational warning): quiet hours never
    hold a warning at sea."""

    #: sorted id arrays, one per way of being reached: merged once, in numpy (at national scale a warning reaches
    #: millions: a set of Python ints cost more than the whole match)
    ids: list[np.ndarray]
    at_sea: bool
    aboard: set[int] = field(default_factory=set)
    #: the warned zones' subscribers as the zone index answered them (``ids`` holds its ``ids``): tells the others'
    #: ids not among them without a binary search in a million
    zone: ZoneAnswer | None = None

    def id_parts(self) -> IdParts:
        """Everyone found (those reached through their vessel included) as disjoint sorted arrays: the largest (a
        province's zone subscribers: a million ids, the zone index's own array) untouched, and the others' ids not in
        it as one more (:meth:`subscribers.id_parts.IdParts.union`). The fan-out reads them a chunk at a time: one
        merged array would copy the million first."""
        parts = list(self.ids)
        if self.aboard:
            parts.append(sorted_distinct(np.fromiter(self.aboard, dtype=np.int64, count=len(self.aboard))))
        return IdParts.union(parts, known=(self.zone.ids, self.zone.lacking) if self.zone is not None else None)

    def id_array(self) -> np.ndarray:
        """Everyone found as one sorted, distinct int64 array (:meth:`id_parts` merged)."""
        return self.id_parts().merged()


def _navigational(alert: Alert) -> bool:
    """NGA/NAVAREA broadcast warnings are for mariners by definition, wherever their polygon lies."""
    return any("NGA_NAVAREA" in info.parameters for info in alert.infos)


def alert_hazards(alert: Alert) -> list[str]:
    """The hazard words an alert is about: KMA's hazard (풍랑 of 풍랑주의보, or the KMA_HAZARD parameter the
    KMA parsers set), else the event name as the feed wrote it (Gale Warning)."""
    words: dict[str, None] = {}
    for info in alert.infos:
        for value in info.parameters.get("KMA_HAZARD", []):
            words[value] = None
        hazard, level = split_event(info.event)
        words[hazard] = None
        if level is not None:
            words[info.event.strip()] = None
    return [w for w in words if w]


def _never_hold_groups_at_sea(groups: list[RecipientGroup], where: _Found) -> list[RecipientGroup]:
    """:func:`_never_hold_at_sea` for groups: a held group is sent at once when the warning is for the sea, and
    its members reached through their boat are split off and sent at once otherwise."""
    aboard = np.fromiter(where.aboard, dtype=np.int64, count=len(where.aboard)) if where.aboard else None
    out: list[RecipientGroup] = []
    for group in groups:
        if group.decision.action is not Action.HOLD:
            out.append(group)
        elif where.at_sea:
            out.append(RecipientGroup(SEND, group.language, group.ids))
        elif aboard is None:
            out.append(group)
        else:
            on_board = np.isin(group.ids, aboard)
            out.extend(RecipientGroup(decision, group.language, ids) for decision, ids in
                       ((SEND, group.ids[on_board]), (group.decision, group.ids[~on_board])) if len(ids))
    return out


def _never_hold_at_sea(recipient: Recipient) -> Recipient:
    """Quiet hours never hold back a warning for the sea, or one reaching a person through their boat:
    the person may be out there now."""
    if recipient.decision.action is not Action.HOLD:
        return recipient
    return replace(recipient, decision=SEND)
