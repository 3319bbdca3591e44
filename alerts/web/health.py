"""What ``/healthz`` reports: the database answers, the job is alive, the feeds are healthy.

The console has no line to ``alimcast run``'s process; the job's pulse is the feed state it writes on every
poll (success or failure). The job counts as alive when some enabled feed was polled within three of its
intervals (at least two minutes). A feed is healthy while its last poll succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from alerts.config import Config
from alerts.feedstate import DbFeedStateStore

ALIVE_INTERVALS = 3
ALIVE_MINIMUM = timedelta(minutes=2)


@dataclass(slots=True)
class Health:
    database: bool = False
    job_alive: bool = False
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None

    @property
    def feeds_healthy(self) -> bool:
        return all(f["healthy"] for f in self.feeds.values())

    @property
    def ok(self) -> bool:
        return self.database and self.job_alive and self.feeds_healthy

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unhealthy", "database": self.database, "job_alive": self.job_alive,
                "feeds_healthy": self.feeds_healthy, "feeds": self.feeds,
                **({"error": self.error} if self.error else {})}


def check(config: Config, engine: Engine, now: datetime) -> Health:
    health = Health()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        health.database = True
        states = {s.name: s for s in DbFeedStateStore(engine).all()}
    except Exception as exc:  # noqa: BLE001 - the answer is "unhealthy", with the reason
        health.error = f"database: {exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"
        return health
    enabled = [f for f in config.feeds if f.enabled]
    if not enabled:
        health.job_alive = True  # nothing to poll: nothing to prove
    for feed in enabled:
        state = states.get(feed.name)
        last = max((t for t in (state.last_success_at, state.last_error_at) if t), default=None) if state else None
        window = max(ALIVE_MINIMUM, timedelta(seconds=feed.interval_seconds * ALIVE_INTERVALS))
        if last is not None and now - last <= window:
            health.job_alive = True
        health.feeds[feed.name] = {
            "healthy": state is not None and state.last_success_at is not None and state.consecutive_failures == 0,
            "last_poll": last.isoformat() if last else None,
            "consecutive_failures": state.consecutive_failures if state else 0,
            "last_error": state.last_error if state else None,
        }
    return health
