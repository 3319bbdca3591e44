"""Subscriber records: add (an upsert by phone), pause, resume, remove, preferences, export.

Decisions worth knowing:
- One person is one row, keyed by the normalised phone; adding the same number again merges into it
  (zones are added, never silently dropped; name/severity/language take the new values when given).
- Zones are stored as leaf codes (see ``subscribers.zones``), validated all together before anything is
  written, so a typo in the third zone does not leave a half-added person.
- ``remove`` keeps the row as ``unsubscribed`` with the time: consent records must outlive the
  subscription. Adding the person again is a new consent (new consent fields) and replaces their old
  zones with the newly given ones.
- ``export`` writes the import header (re-importable) and leaves unsubscribed people out, so an export
  fed back to ``import`` can never re-subscribe someone who left.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlmodel import Session

from subscribers import zones as zone_catalogue
from subscribers.models import Subscriber, Subscription
from subscribers.phone import mask, normalize
from subscribers.preferences import (
    check_language,
    check_severity,
    format_quiet_hours,
    parse_categories,
    parse_hazards,
    parse_quiet_hours,
)
from subscribers.sqltypes import utcnow

CSV_HEADER = ("phone", "name", "zones", "min_severity", "language", "categories", "quiet_hours", "hazards")
STATUSES_SETTABLE = ("active", "paused")


class SubscriberNotFound(LookupError):
    """No subscriber with that phone; the message masks it."""


def add_subscriber(
    session: Session,
    phone: str,
    zones: Iterable[str],
    name: str | None = None,
    min_severity: str | None = None,
    language: str | None = None,
    consent_source: str = "cli",
    consent_text: str = "",
    consent_at: datetime | None = None,
    *,
    categories: Iterable[str] | str | None = None,
    quiet_hours: str | None = None,
    points: Iterable[tuple[float, float, float]] = (),
    hazards: Iterable[str] | str | None = None,
) -> Subscriber:
    """Create or update the person with this phone and add the zones and fixed points (lat, lon,
    radius_km). Raises PhoneError, ZoneError, PreferenceError (all ValueError) before writing anything."""
    number = normalize(phone)
    leaves = zone_catalogue.expand_many(zones)
    spots = [check_point(*p) for p in points]
    if not leaves and not spots:
        raise ValueError(f"subscriber {mask(number)}: at least one zone or point is required")
    severity = check_severity(min_severity) if min_severity is not None else None
    lang = check_language(language) if language is not None else None
    cats = parse_categories(categories) if categories is not None else None
    wanted_hazards = parse_hazards(hazards) if hazards is not None else None
    quiet = parse_quiet_hours(quiet_hours) if quiet_hours is not None else None
    now = utcnow()

    subscriber = get_by_phone(session, number)
    if subscriber is None:
        subscriber = Subscriber(
            phone=number,
            name=name or "",
            consent_at=consent_at or now,
            consent_source=consent_source,
            consent_text=consent_text,
        )
        session.add(subscriber)
    elif subscriber.status == "unsubscribed":
        # A new consent: forget the old choice of zones, record the new consent.
        session.execute(
            delete(Subscription).where(
                Subscription.subscriber_id == subscriber.id, Subscription.kind == "zone"
            )
        )
        subscriber.status = "active"
        subscriber.unsubscribed_at = None
        subscriber.consent_at = consent_at or now
        subscriber.consent_source = consent_source
        subscriber.consent_text = consent_text
    if name is not None and name != "":
        subscriber.name = name
    if severity is not None:
        subscriber.min_severity = severity
    if lang is not None:
        subscriber.language = lang
    if cats is not None:
        subscriber.categories = cats
    if wanted_hazards is not None:
        subscriber.hazards = wanted_hazards
    if quiet is not None:
        subscriber.quiet_start_min, subscriber.quiet_end_min = quiet
    subscriber.updated_at = now
    session.flush()

    assert subscriber.id is not None
    have = set(zone_codes_of(session, subscriber.id))
    for code in leaves:
        if code not in have:
            session.add(Subscription(subscriber_id=subscriber.id, kind="zone", zone_code=code))
    for lat, lon, radius in spots:
        _add_point(session, subscriber.id, lat, lon, radius)
    session.flush()
    return subscriber


def check_point(lat: float, lon: float, radius_km: float) -> tuple[float, float, float]:
    """A fixed place on the water (port, sea farm) and the distance around it that counts, in km."""
    if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 180.0:
        raise ValueError(f"point {lat},{lon}: latitude must be -90..90 and longitude -180..180")
    if not 0.0 <= radius_km <= 500.0:
        raise ValueError(f"point {lat},{lon}: radius {radius_km} km must be 0..500")
    return float(lat), float(lon), float(radius_km)


def _add_point(session: Session, subscriber_id: int, lat: float, lon: float, radius_km: float) -> None:
    """Idempotent: the same place again only updates its radius (NULLs defeat the unique constraint)."""
    existing = session.execute(select(Subscription).where(
        Subscription.subscriber_id == subscriber_id, Subscription.kind == "point",
        Subscription.lat == lat, Subscription.lon == lon)).scalars().first()
    if existing is None:
        session.add(Subscription(subscriber_id=subscriber_id, kind="point", lat=lat, lon=lon, radius_km=radius_km))
    else:
        existing.radius_km = radius_km
        session.add(existing)


def get_by_phone(session: Session, phone: str) -> Subscriber | None:
    number = normalize(phone)
    return session.execute(select(Subscriber).where(Subscriber.phone == number)).scalar_one_or_none()


def require(session: Session, phone: str) -> Subscriber:
    subscriber = get_by_phone(session, phone)
    if subscriber is None:
        raise SubscriberNotFound(f"subscriber {mask(phone)}: not found")
    return subscriber


def zone_codes_of(session: Session, subscriber_id: int) -> list[str]:
    rows = session.execute(
        select(Subscription.zone_code)
        .where(Subscription.subscriber_id == subscriber_id, Subscription.kind == "zone")
        .order_by(Subscription.zone_code)
    )
    return [code for (code,) in rows if code]


def list_subscribers(session: Session, *, status: str | None = None) -> list[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.id)
    if status is not None:
        query = query.where(Subscriber.status == status)
    return list(session.execute(query).scalars())


def zones_by_subscriber(session: Session, ids: Sequence[int] | None = None) -> dict[int, list[str]]:
    query = select(Subscription.subscriber_id, Subscription.zone_code).where(Subscription.kind == "zone")
    if ids is not None:
        query = query.where(Subscription.subscriber_id.in_(list(ids)))
    out: dict[int, list[str]] = {}
    for sid, code in session.execute(query.order_by(Subscription.subscriber_id, Subscription.zone_code)):
        out.setdefault(sid, []).append(code)
    return out


def count(session: Session) -> dict[str, int]:
    rows = session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status))
    return {status: n for status, n in rows}


def set_status(session: Session, phone: str, status: str) -> Subscriber:
    """Pause or resume. An unsubscribed person cannot be resumed: that needs a new consent (add)."""
    if status not in STATUSES_SETTABLE:
        raise ValueError(f"status {status!r}: must be one of {', '.join(STATUSES_SETTABLE)}")
    subscriber = require(session, phone)
    if subscriber.status == "unsubscribed":
        raise ValueError(
            f"subscriber {mask(subscriber.phone)}: unsubscribed; add them again to record a new consent"
        )
    subscriber.status = status
    subscriber.updated_at = utcnow()
    session.flush()
    return subscriber


def remove(session: Session, phone: str) -> Subscriber:
    subscriber = require(session, phone)
    if subscriber.status != "unsubscribed":
        now = utcnow()
        subscriber.status = "unsubscribed"
        subscriber.unsubscribed_at = now
        subscriber.updated_at = now
        session.flush()
    return subscriber


def set_preferences(
    session: Session,
    phone: str,
    *,
    name: str | None = None,
    min_severity: str | None = None,
    language: str | None = None,
    categories: Iterable[str] | str | None = None,
    quiet_hours: str | None = None,
    hazards: Iterable[str] | str | None = None,
) -> Subscriber:
    """Change only what is given; ``quiet_hours=""`` clears quiet hours, ``categories=[]`` and
    ``hazards=[]`` mean all."""
    subscriber = require(session, phone)
    if name is not None:
        subscriber.name = name
    if min_severity is not None:
        subscriber.min_severity = check_severity(min_severity)
    if language is not None:
        subscriber.language = check_language(language)
    if categories is not None:
        subscriber.categories = parse_categories(categories)
    if hazards is not None:
        subscriber.hazards = parse_hazards(hazards)
    if quiet_hours is not None:
        subscriber.quiet_start_min, subscriber.quiet_end_min = parse_quiet_hours(quiet_hours)
    subscriber.updated_at = utcnow()
    session.flush()
    return subscriber


def export(session: Session, path: str | Path) -> int:
    """Write active and paused subscribers as an importable CSV; returns the number of rows."""
    target = Path(path)
    zones = zones_by_subscriber(session)
    written = 0
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        query = select(Subscriber).where(Subscriber.status != "unsubscribed").order_by(Subscriber.id)
        for subscriber in session.execute(query).scalars():
            writer.writerow(
                (
                    subscriber.phone,
                    subscriber.name,
                    " ".join(zones.get(subscriber.id or 0, [])),
                    subscriber.min_severity,
                    subscriber.language,
                    " ".join(subscriber.categories or []),
                    format_quiet_hours(subscriber.quiet_start_min, subscriber.quiet_end_min),
                    " ".join(subscriber.hazards or []),
                )
            )
            written += 1
    return written
