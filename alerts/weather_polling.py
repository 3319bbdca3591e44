"""Polling that follows the weather: a feed with live warnings is polled at its shorter active interval.

During a storm the next 변경 or 해제 matters within minutes; on a quiet day a five-minute poll is plenty and
kinder to the source. A feed counts as active while a warning thread it opened is live — a 예비특보
(pre-warning) is such a thread too, so the feed speeds up before the warning itself is issued. After each
poll the job asks the database, and the scheduler carries on at the interval in force (``feeds status``
shows it). ``Retry-After`` and ``Cache-Control: max-age`` are honoured by the poller itself.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alerts.db import session_scope
from alerts.models import AlertThread
from feeds.poller import FeedSpec
from feeds.scheduler import FeedScheduler

log = logging.getLogger("alimcast.run")


def live_feeds(session: Session) -> set[str]:
    """Names of the feeds that opened a warning thread which is still live."""
    rows = session.exec(select(AlertThread.feed).where(AlertThread.state == "active",
                                                       col(AlertThread.feed).is_not(None)).distinct())
    return {name for name in rows if name}


class WeatherPolling:
    """Wraps the scheduler's per-feed job: poll as usual, then follow the feed's live warnings."""

    def __init__(self, engine: Engine, poll: Callable[[FeedSpec], None]) -> None:
        self.engine = engine
        self._poll = poll
        self.scheduler: FeedScheduler | None = None

    def poll(self, spec: FeedSpec) -> None:
        try:
            self._poll(spec)
        finally:
            self.follow(spec)

    def follow(self, spec: FeedSpec) -> None:
        if spec.active_interval_seconds is None or self.scheduler is None:
            return
        try:
            with session_scope(self.engine) as session:
                active = spec.name in live_feeds(session)
        except Exception:  # noqa: BLE001 - a database hiccup keeps the interval in force, never the poll
            log.warning("feed %s: cannot tell whether it has live warnings; interval unchanged", spec.name,
                        exc_info=True)
            return
        if active != spec.active:
            self.scheduler.follow(dataclasses.replace(spec, active=active))
