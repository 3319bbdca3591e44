"""Acknowledgements as the console shows them: counts per warning and version, rates per zone and vessel, and the
boats inside the warned zone (by their latest AIS fix) to call by radio.

The figures come from :mod:`alerts.public.ack_stats` (the same ones ``alimcast acks show`` prints); this module only
shapes them for a page: zone names, the age of each boat's fix, and the boats in the zone whose crews *did*
confirm, listed after the ones to call so an operator sees a boat move from one list to the other.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from alerts.config import Config
from alerts.models import AlertThread, Delivery
from alerts.public.ack_stats import (
    TOLD_STATUSES,
    AckRates,
    Rate,
    ack_rates,
    count_acks_by_alert,
    unconfirmed_vessels,
    warned_leaves,
)
from alerts.public.models import Acknowledgement
from alerts.web.basemap import Layer
from subscribers.geo_models import Vessel
from subscribers.models import Subscription
from subscribers.positions import current_zones, vessels_in_zones_now


def acknowledged_by(session: Session, column: Any, ids: list[int]) -> dict[int, int]:
    """People who confirmed, per thread (``Delivery.thread_id``) or per alert version (``Delivery.alert_id``:
    the confirmations of the warning that version belongs to)."""
    if not ids:
        return {}
    if column is Delivery.alert_id:
        return count_acks_by_alert(session, ids)
    return dict(session.exec(select(Acknowledgement.thread_id, func.count())
                             .where(col(Acknowledgement.thread_id).in_(ids))
                             .group_by(col(Acknowledgement.thread_id))).all())


@dataclass(frozen=True, slots=True)
class BoatRow:
    """One vessel inside the warned zone, as the operator reads it."""

    mmsi: int
    name: str
    lat: float | None
    lon: float | None
    fix_age: timedelta | None
    zones: tuple[str, ...]
    followers: int
    told: int
    confirmed: int

    @property
    def to_call(self) -> bool:
        return self.confirmed == 0


@dataclass(slots=True)
class AckView:
    rates: AckRates
    zone_rates: list[tuple[str, str, Rate]]
    vessel_rates: list[tuple[int, str, Rate]]
    boats: list[BoatRow]

    @property
    def to_call(self) -> list[BoatRow]:
        return [b for b in self.boats if b.to_call]


#: How long the rates per zone and vessel of a warning are reused while nobody new confirmed. ``ack_rates`` reads
#: every person the warning reached (a national warning: hundreds of thousands of rows), and the page asks again
#: every few seconds; a new confirmation is seen at once (it changes the key), a newly told person within this.
RATES_TTL = timedelta(seconds=15)
_rates_lock = threading.Lock()


def cached_ack_rates(session: Session, thread: AlertThread, names: tuple[str, ...], now: datetime,
                     cache: dict[tuple[int, int], tuple[datetime, AckRates]]) -> AckRates:
    """``ack_rates``, reused from ``cache`` (one per app: ``WebContext.extras``) while the warning's number of
    confirmations is unchanged and the figures are younger than :data:`RATES_TTL`."""
    acked = session.exec(select(func.count()).select_from(Acknowledgement)
                         .where(Acknowledgement.thread_id == thread.id)).one()
    key = (thread.id or 0, acked)
    with _rates_lock:
        hit = cache.get(key)
    if hit is not None and timedelta(0) <= now - hit[0] < RATES_TTL:
        return hit[1]
    rates = ack_rates(session, thread, names)
    with _rates_lock:
        for old in [k for k, (at, _) in cache.items() if k[0] == key[0] or now - at >= RATES_TTL]:
            del cache[old]
        cache[key] = (now, rates)
    return rates


def ack_view(session: Session, thread: AlertThread, config: Config, now: datetime, zone_name: Any,
             cache: dict[tuple[int, int], tuple[datetime, AckRates]] | None = None) -> AckView:
    """Everything the one-alert page shows about confirmations of ``thread`` at ``now`` (rates reused from
    ``cache`` when given; the boats to call are read afresh every time)."""
    names = config.zone_value_names
    stale = timedelta(hours=config.vessel_stale_after_hours)
    rates = ack_rates(session, thread, names) if cache is None else cached_ack_rates(session, thread, names, now,
                                                                                      cache)
    calls = unconfirmed_vessels(session, thread, now=now, value_names=names, stale_after=stale)
    boats = [BoatRow(mmsi=v.mmsi, name=v.name, lat=v.last_lat, lon=v.last_lon,
                     fix_age=now - v.last_fix_at if v.last_fix_at else None, zones=v.zones,
                     followers=v.followers, told=v.told, confirmed=0) for v in calls]
    leaves = warned_leaves(session, thread, names)
    confirmed = sorted(vessels_in_zones_now(session, leaves, at=now, stale_after=stale) - {v.mmsi for v in calls})
    boats += _confirmed_boats(session, thread, confirmed, set(leaves), now)
    followed = list(rates.by_vessel)
    vessel_names = dict(session.exec(select(Vessel.mmsi, Vessel.name)
                                     .where(col(Vessel.mmsi).in_(followed))).all()) if followed else {}
    return AckView(
        rates=rates,
        zone_rates=[(code, zone_name(code) or code, r) for code, r in sorted(rates.by_zone.items())],
        vessel_rates=[(mmsi, vessel_names.get(mmsi) or "", r) for mmsi, r in sorted(rates.by_vessel.items())],
        boats=boats)


def _confirmed_boats(session: Session, thread: AlertThread, mmsis: list[int], leaves: set[str],
                     now: datetime) -> list[BoatRow]:
    """The boats in the zone of whose followers at least one confirmed (``unconfirmed_vessels`` leaves them out)."""
    if not mmsis:
        return []
    followers: dict[int, set[int]] = defaultdict(set)
    for mmsi, sid in session.exec(select(Subscription.mmsi, Subscription.subscriber_id)
                                  .where(Subscription.kind == "vessel", col(Subscription.mmsi).in_(mmsis))):
        if mmsi is not None:
            followers[mmsi].add(sid)
    everyone = sorted({sid for people in followers.values() for sid in people})
    acked = set(session.exec(select(Acknowledgement.subscriber_id).where(
        Acknowledgement.thread_id == thread.id, col(Acknowledgement.subscriber_id).in_(everyone))).all())
    told = set(session.exec(select(Delivery.subscriber_id).where(
        Delivery.thread_id == thread.id, Delivery.reminder_seq == 0, col(Delivery.subscriber_id).in_(everyone),
        col(Delivery.status).in_(TOLD_STATUSES))).all())

    out = []
    for v in session.exec(select(Vessel).where(col(Vessel.mmsi).in_(mmsis)).order_by(col(Vessel.mmsi))):
        people = followers.get(v.mmsi, set())
        out.append(BoatRow(mmsi=v.mmsi, name=v.name, lat=v.last_lat, lon=v.last_lon,
                           fix_age=now - v.last_fix_at if v.last_fix_at else None,
                           zones=tuple(sorted(current_zones(session, v.mmsi) & leaves)), followers=len(people),
                           told=len(people & told), confirmed=len(people & acked)))
    return out


def age(delta: timedelta | None) -> str:
    """A fix's age as an operator says it: ``4 min``, ``2 h 05 min``."""
    if delta is None:
        return "—"
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def boats_map(layer: Layer, outlines: dict[str, Any], zone_codes: list[str], boats: list[BoatRow]) -> str:
    """The warned zone close up with every boat in it at its latest fix: red to call, green confirmed.

    Drawn with the console's own map (:func:`alerts.web.basemap.render_map`) zoomed to the zone's outlines and
    the boats; ``""`` when there is nothing to place (no outline imported and no boat)."""
    from alerts.web.basemap import SCALE, render_map, xy

    points = [xy(b.lat, b.lon) for b in boats if b.lat is not None and b.lon is not None]
    for code in zone_codes:
        geometry = outlines.get(code)
        if geometry is not None:
            lon0, lat0, lon1, lat1 = geometry.bounds
            points += [xy(lat0, lon0), xy(lat1, lon1)]
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    span = max(max(xs) - min(xs), (max(ys) - min(ys)) * 1.6, 0.4 * SCALE)  # a 16:10 view, ~40 km at least
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    width, height = span * 1.3, span * 1.3 / 1.6
    r = width / 90
    marks = []
    for b in boats:
        if b.lat is None or b.lon is None:
            continue
        x, y = xy(b.lat, b.lon)
        state = "to-call" if b.to_call else "confirmed"
        label = f"{b.name or b.mmsi} ({b.mmsi}): {'not confirmed' if b.to_call else 'confirmed'}"
        marks.append(f'<g class="boat {state}" data-mmsi="{b.mmsi}"><title>{escape(label)}</title>'
                     f'<circle cx="{x:.2f}" cy="{y:.2f}" r="{r:.2f}" stroke-width="{r / 3:.2f}"/>'
                     f'<text x="{x + r * 1.6:.2f}" y="{y + r * 0.6:.2f}" font-size="{r * 2.2:.2f}">'
                     f'{escape(b.name or str(b.mmsi))}</text></g>')
    return render_map([layer], css_class="map boats-map", overlay=f'<g class="boats">{"".join(marks)}</g>',
                      view=(cx - width / 2, cy - height / 2, width, height))
