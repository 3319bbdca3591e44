"""Who confirmed a warning: rates per warning, per zone and per vessel, and the boats to call by radio.

For the console and the CLI. Everything is counted over the people the warning *reached* (a warning row
accepted or beyond; 해제 and reminders are not "told" again), so a rate is confirmed / told.

:func:`unconfirmed_vessels` lists the vessels whose latest AIS fix places them inside a warned zone now
(the same open zone visits and staleness rule matching uses) and of whose followers nobody confirmed:
the boats a coast-guard operator should call. A vessel in the zone that nobody follows is listed too
(``followers == 0``): nobody on it was told at all.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from alerts.models import AlertRecord, AlertThread, Delivery
from alerts.public.models import Acknowledgement
from feeds.model import Alert
from subscribers.geo_models import Vessel
from subscribers.geoindex import DEFAULT_STALE_AFTER
from subscribers.matching import alert_leaves
from subscribers.models import Subscription
from subscribers.positions import current_zones, vessels_in_zones_now

TOLD_STATUSES = ("accepted", "delivered", "fallback_sent", "uncertain")


@dataclass(slots=True)
class Rate:
    told: int = 0
    acked: int = 0

    @property
    def ratio(self) -> float | None:
        return None if self.told == 0 else self.acked / self.told

    def to_json(self) -> dict[str, float | int | None]:
        ratio = self.ratio
        return {"told": self.told, "acked": self.acked, "ratio": None if ratio is None else round(ratio, 4)}


@dataclass(slots=True)
class AckRates:
    thread_id: int
    total: Rate = field(default_factory=Rate)
    by_zone: dict[str, Rate] = field(default_factory=dict)
    by_vessel: dict[int, Rate] = field(default_factory=dict)
    #: How many reminders went out (accepted or beyond), by reminder number.
    reminders: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"thread_id": self.thread_id, "total": self.total.to_json(),
                "by_zone": {k: v.to_json() for k, v in sorted(self.by_zone.items())},
                "by_vessel": {str(k): v.to_json() for k, v in sorted(self.by_vessel.items())},
                "reminders": {str(k): v for k, v in sorted(self.reminders.items())}}


def thread_of(session: Session, alert_or_thread: int, *, is_thread: bool = False) -> AlertThread | None:
    if is_thread:
        return session.get(AlertThread, alert_or_thread)
    record = session.get(AlertRecord, alert_or_thread)
    return session.get(AlertThread, record.thread_id) if record is not None and record.thread_id else None


def warned_leaves(session: Session, thread: AlertThread, value_names: tuple[str, ...]) -> list[str]:
    """The leaf zones of the thread's current version (for a 해제, of the versions it lifted)."""
    records = session.exec(select(AlertRecord).where(AlertRecord.thread_id == thread.id)
                           .order_by(col(AlertRecord.sent).desc())).all()
    for record in records:
        codes = Alert.from_json(record.body).zone_codes(value_names)
        if codes:
            return alert_leaves(codes)
    return []


def ack_rates(session: Session, thread: AlertThread, value_names: tuple[str, ...] = ("KMA_ZONE",)) -> AckRates:
    rates = AckRates(thread_id=thread.id or 0)
    rows = session.exec(select(Delivery.subscriber_id, Delivery.reminder_seq, Delivery.kind)
                        .where(Delivery.thread_id == thread.id, col(Delivery.status).in_(TOLD_STATUSES))).all()
    told: set[int] = set()
    for sid, seq, kind in rows:
        if seq:
            rates.reminders[seq] = rates.reminders.get(seq, 0) + 1
        elif kind != "cancel":
            told.add(sid)
    acked = set(session.exec(select(Acknowledgement.subscriber_id)
                             .where(Acknowledgement.thread_id == thread.id)).all()) & told
    rates.total = Rate(len(told), len(acked))
    if not told:
        return rates
    leaves = set(warned_leaves(session, thread, value_names))
    ids = sorted(told)
    zone_people: dict[str, set[int]] = defaultdict(set)
    vessel_people: dict[int, set[int]] = defaultdict(set)
    for start in range(0, len(ids), 500):
        subs = session.exec(select(Subscription.subscriber_id, Subscription.kind, Subscription.zone_code,
                                   Subscription.mmsi)
                            .where(col(Subscription.subscriber_id).in_(ids[start:start + 500]),
                                   col(Subscription.kind).in_(("zone", "vessel")))).all()
        for sid, kind, code, mmsi in subs:
            if kind == "zone" and code in leaves:
                zone_people[code].add(sid)
            elif kind == "vessel" and mmsi is not None:
                vessel_people[mmsi].add(sid)
    rates.by_zone = {code: Rate(len(people), len(people & acked)) for code, people in zone_people.items()}
    rates.by_vessel = {mmsi: Rate(len(people), len(people & acked)) for mmsi, people in vessel_people.items()}
    return rates


@dataclass(frozen=True, slots=True)
class VesselToCall:
    mmsi: int
    name: str
    last_lat: float | None
    last_lon: float | None
    last_fix_at: datetime | None
    zones: tuple[str, ...]
    followers: int
    told: int


def unconfirmed_vessels(session: Session, thread: AlertThread, *, now: datetime,
                        value_names: tuple[str, ...] = ("KMA_ZONE",),
                        stale_after: timedelta = DEFAULT_STALE_AFTER) -> list[VesselToCall]:
    leaves = warned_leaves(session, thread, value_names)
    inside = vessels_in_zones_now(session, leaves, at=now, stale_after=stale_after)
    if not inside:
        return []
    mmsis = sorted(inside)
    followers: dict[int, set[int]] = defaultdict(set)
    for mmsi, sid in session.exec(select(Subscription.mmsi, Subscription.subscriber_id)
                                  .where(Subscription.kind == "vessel", col(Subscription.mmsi).in_(mmsis))).all():
        if mmsi is not None:
            followers[mmsi].add(sid)
    everyone = sorted({sid for people in followers.values() for sid in people})
    acked = set(session.exec(select(Acknowledgement.subscriber_id).where(
        Acknowledgement.thread_id == thread.id, col(Acknowledgement.subscriber_id).in_(everyone))).all()) if everyone \
        else set()
    told = set(session.exec(select(Delivery.subscriber_id).where(
        Delivery.thread_id == thread.id, Delivery.reminder_seq == 0, col(Delivery.status).in_(TOLD_STATUSES),
        col(Delivery.subscriber_id).in_(everyone))).all()) if everyone else set()
    vessels = {v.mmsi: v for v in session.exec(select(Vessel).where(col(Vessel.mmsi).in_(mmsis))).all()}
    wanted = set(leaves)
    out: list[VesselToCall] = []
    for mmsi in mmsis:
        people = followers.get(mmsi, set())
        if people & acked:
            continue
        v = vessels.get(mmsi)
        out.append(VesselToCall(mmsi=mmsi, name=v.name if v else "", last_lat=v.last_lat if v else None,
                                last_lon=v.last_lon if v else None, last_fix_at=v.last_fix_at if v else None,
                                zones=tuple(sorted(current_zones(session, mmsi) & wanted)),
                                followers=len(people), told=len(people & told)))
    return out


def count_acks_by_alert(session: Session, alert_ids: list[int] | tuple[int, ...]) -> dict[int, int]:
    """People who confirmed the warning each alert version belongs to (per alert id; acknowledgements are
    per warning thread). Shaped for ``alerts show``'s acknowledgement counter hook."""
    ids = list(alert_ids)
    if not ids:
        return {}
    threads = dict(session.exec(select(AlertRecord.id, AlertRecord.thread_id)
                                .where(col(AlertRecord.id).in_(ids))).all())
    wanted = sorted({t for t in threads.values() if t is not None})
    per_thread: dict[int, int] = {}
    if wanted:
        per_thread = dict(session.exec(select(Acknowledgement.thread_id, func.count())
                                       .where(col(Acknowledgement.thread_id).in_(wanted))
                                       .group_by(col(Acknowledgement.thread_id))).all())
    return {aid: per_thread.get(tid, 0) if tid is not None else 0 for aid, tid in threads.items()}
