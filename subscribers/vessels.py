"""Registered vessels and the people who follow them (Subscription kind="vessel").

A vessel is registered by MMSI (the 9-digit AIS identity); an owner, skipper or family member
subscribes to it by phone, and from then on gets the warnings of whatever zone the vessel is in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from subscribers.ais import MAX_MMSI
from subscribers.geo_models import Vessel, VesselZoneVisit
from subscribers.models import Subscriber, Subscription
from subscribers.phone import PhoneError, mask, normalize

_CHUNK = 5000


class VesselError(ValueError):
    """Bad vessel input; the message names it (phones masked)."""


def check_mmsi(mmsi: int | str) -> int:
    try:
        value = int(str(mmsi).strip())
    except ValueError:
        raise VesselError(f"mmsi {mmsi!r}: not a number") from None
    if not 0 < value <= MAX_MMSI:
        raise VesselError(f"mmsi {mmsi!r}: must be 1 to 9 digits")
    return value


def add_vessel(session: Session, mmsi: int | str, name: str = "",
               subscribers: Iterable[str | int] = ()) -> Vessel:
    """Register (or rename) a vessel and subscribe people to it: a str is a phone, an int a subscriber id.

    Idempotent: an existing link is not duplicated. Raises VesselError naming the first unknown person,
    before anything is written.
    """
    value = check_mmsi(mmsi)
    ids = [_subscriber_id(session, s) for s in subscribers]
    vessel = session.exec(select(Vessel).where(Vessel.mmsi == value)).first()
    if vessel is None:
        vessel = Vessel(mmsi=value, name=name.strip()[:100])
    elif name.strip():
        vessel.name = name.strip()[:100]
    session.add(vessel)
    linked = set(session.exec(select(Subscription.subscriber_id).where(
        Subscription.kind == "vessel", Subscription.mmsi == value)).all())
    for sid in dict.fromkeys(ids):
        if sid not in linked:
            session.add(Subscription(subscriber_id=sid, kind="vessel", mmsi=value))
    session.flush()
    return vessel


def _subscriber_id(session: Session, who: str | int) -> int:
    if isinstance(who, int):
        if session.get(Subscriber, who) is None:
            raise VesselError(f"subscriber id {who}: not found")
        return who
    try:
        phone = normalize(who)
    except PhoneError as exc:
        raise VesselError(str(exc)) from None
    sid = session.exec(select(Subscriber.id).where(Subscriber.phone == phone)).first()
    if sid is None:
        raise VesselError(f"phone {mask(phone)}: no such subscriber (add the person first)")
    return sid


def subscribers_for_vessels(session: Session, mmsis: Iterable[int],
                            statuses: Sequence[str] | None = ("active",)) -> set[int]:
    """Subscriber ids following any of ``mmsis``; ``statuses=None`` ignores the person's status."""
    ordered = sorted(set(mmsis))
    out: set[int] = set()
    for i in range(0, len(ordered), _CHUNK):
        stmt = (select(Subscription.subscriber_id)
                .where(Subscription.kind == "vessel", Subscription.mmsi.in_(ordered[i:i + _CHUNK])))  # type: ignore[union-attr]
        if statuses is not None:
            stmt = stmt.join(Subscriber, Subscriber.id == Subscription.subscriber_id).where(  # type: ignore[arg-type]
                Subscriber.status.in_(list(statuses)))  # type: ignore[attr-defined]
        out.update(session.exec(stmt).all())
    return out


@dataclass(frozen=True)
class VesselInfo:
    mmsi: int
    name: str
    subscribers: int
    last_lat: float | None
    last_lon: float | None
    last_fix_at: datetime | None
    zones: tuple[str, ...]


def list_vessels(session: Session) -> list[VesselInfo]:
    counts = dict(session.exec(
        select(Subscription.mmsi, func.count()).where(Subscription.kind == "vessel")
        .group_by(Subscription.mmsi)).all())
    zones: dict[int, list[str]] = {}
    for mmsi, code in session.exec(select(VesselZoneVisit.mmsi, VesselZoneVisit.zone_code)
                                   .where(VesselZoneVisit.left_at.is_(None))):  # type: ignore[union-attr]
        zones.setdefault(mmsi, []).append(code)
    return [VesselInfo(v.mmsi, v.name, int(counts.get(v.mmsi, 0)), v.last_lat, v.last_lon, v.last_fix_at,
                       tuple(sorted(zones.get(v.mmsi, []))))
            for v in session.exec(select(Vessel).order_by(Vessel.mmsi)).all()]
