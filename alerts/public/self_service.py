"""What a person may do with their own manage link: change their choices or end the subscription.

Ending it takes effect at once: the person is marked unsubscribed (kept, with the time, for the consent
record) and anything still queued for them is withdrawn, so not even a message already matched goes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from alerts.models import Delivery
from subscribers import zones as zone_catalogue
from subscribers.models import Subscriber, Subscription
from subscribers.preferences import check_language, check_severity, parse_quiet_hours
from subscribers.store import add_subscriber


@dataclass(frozen=True, slots=True)
class NewChoices:
    zones: list[str]
    land_region: str = ""
    min_severity: str = "Unknown"
    language: str = "ko"
    quiet_hours: str = ""


def unsubscribe_now(session: Session, person: Subscriber, *, now: datetime) -> int:
    """Unsubscribe and withdraw what is queued; returns how many queued messages were withdrawn."""
    if person.status != "unsubscribed":
        person.status = "unsubscribed"
        person.unsubscribed_at = now
        person.updated_at = now
        session.add(person)
    result = session.execute(update(Delivery).where(Delivery.subscriber_id == person.id, Delivery.status == "queued")
                             .values(status="suppressed", last_error="unsubscribed before it was sent",
                                     finished_at=now))
    session.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def change_choices(session: Session, person: Subscriber, choices: NewChoices, *, now: datetime) -> Subscriber:
    """Replace the person's zones and preferences (vessels and fixed points are kept). ValueError names a bad
    choice; nothing is written then."""
    if person.status == "unsubscribed":
        raise ValueError("unsubscribed: subscribe again on the subscription page")
    wanted = [z for z in [*choices.zones, choices.land_region] if z and z.strip()]
    if not wanted:
        raise ValueError("choose at least one sea zone or region / 해역이나 지역을 하나 이상 골라 주세요")
    leaves = zone_catalogue.expand_many(wanted)
    severity, language = check_severity(choices.min_severity), check_language(choices.language)
    quiet = parse_quiet_hours(choices.quiet_hours)
    session.execute(delete(Subscription).where(Subscription.subscriber_id == person.id, Subscription.kind == "zone"))
    session.flush()
    person = add_subscriber(session, person.phone, leaves, min_severity=severity, language=language,
                            quiet_hours=choices.quiet_hours)
    person.quiet_start_min, person.quiet_end_min = quiet
    person.updated_at = now
    session.add(person)
    session.flush()
    return person


def vessels_of(session: Session, subscriber_id: int) -> list[int]:
    return [m for m in session.exec(select(Subscription.mmsi).where(
        Subscription.subscriber_id == subscriber_id, Subscription.kind == "vessel")
        .order_by(col(Subscription.mmsi))).all() if m is not None]
