"""Acknowledgements: a person confirms a Severe or Extreme warning (the 확인 button of ``/a/<token>``).

Only an explicit confirmation writes; reading the page does not. Confirming twice is one
acknowledgement (the first time is kept). Confirming also withdraws any reminder for that warning still
waiting in the outbox, so nobody is reminded of what they just confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, select

from alerts.models import Delivery
from alerts.public.links import resolve_ack
from alerts.public.models import ACK_HOWS, Acknowledgement
from alerts.sqlutil import insert_ignore


@dataclass(frozen=True, slots=True)
class AckOutcome:
    #: False: the link is unknown or its warning is over (nothing recorded).
    ok: bool
    acked_at: datetime | None = None
    #: True when this call recorded it (False: it had been confirmed before).
    new: bool = False


def acknowledge_link(session: Session, token: str, *, now: datetime) -> AckOutcome:
    target = resolve_ack(session, token, now)
    if target is None:
        return AckOutcome(ok=False)
    return record_ack(session, target.thread.id, target.subscriber.id, target.record.id,  # type: ignore[arg-type]
                      now=now, how="link")


def record_ack(session: Session, thread_id: int, subscriber_id: int, alert_id: int | None, *, now: datetime,
               how: str = "link") -> AckOutcome:
    if how not in ACK_HOWS:
        raise ValueError(f"acknowledgement how {how!r}: must be one of {', '.join(ACK_HOWS)}")
    new = insert_ignore(session, Acknowledgement, [{"thread_id": thread_id, "subscriber_id": subscriber_id,
                                                    "alert_id": alert_id, "acked_at": now, "how": how}],
                        conflict=("thread_id", "subscriber_id")) > 0
    session.execute(update(Delivery).where(Delivery.thread_id == thread_id, Delivery.subscriber_id == subscriber_id,
                                           Delivery.kind == "reminder", Delivery.status == "queued")
                    .values(status="suppressed", last_error="acknowledged before the reminder went out",
                            finished_at=now))
    return AckOutcome(ok=True, acked_at=acked_at(session, thread_id, subscriber_id), new=new)


def acked_at(session: Session, thread_id: int, subscriber_id: int) -> datetime | None:
    return session.exec(select(Acknowledgement.acked_at).where(Acknowledgement.thread_id == thread_id,
                                                               Acknowledgement.subscriber_id == subscriber_id)).first()
