"""Counting events in a sliding window, in the database (so every worker of ``alimcast serve`` shares it).

Keys name what is counted and for whom, never in clear: ``send:phone:<hash>``, ``fail:client:<hash>``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from alerts.public.models import PublicThrottleEvent

WINDOW = timedelta(hours=1)


def digest(kind: str, value: str) -> str:
    """A short stable hash of a phone or a client address for a throttle key (not a secret: a key only)."""
    return hashlib.sha256(f"alimcast-{kind}:{value}".encode()).hexdigest()[:40]


def count(session: Session, key: str, *, now: datetime, window: timedelta = WINDOW) -> int:
    return int(session.exec(select(func.count()).select_from(PublicThrottleEvent)
                            .where(PublicThrottleEvent.key == key, col(PublicThrottleEvent.at) > now - window)).one())


def add(session: Session, *keys: str, now: datetime) -> None:
    for key in keys:
        session.add(PublicThrottleEvent(key=key[:100], at=now))
    session.flush()


def prune(session: Session, *, now: datetime, keep: timedelta = timedelta(days=2)) -> int:
    result = session.execute(delete(PublicThrottleEvent).where(col(PublicThrottleEvent.at) < now - keep))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
