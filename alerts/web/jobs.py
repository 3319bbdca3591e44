"""What the console asks of the engine directly: poll a feed now, match pending alerts now.

Both go through :class:`alerts.pipeline.Pipeline` (the same code ``alimcast run`` runs), created lazily
once per app; sending stays with the running job (``alimcast run`` dispatches every few seconds), so the
console never becomes a second sender. Matching here is safe beside a running job: on PostgreSQL workers
take turns under a lock, and an outbox row is unique per (alert, person) whoever matches.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from alerts.config import Config

log = logging.getLogger("alimcast.web")


@dataclass
class PollResult:
    feed: str
    parsed: int = 0
    new: int = 0
    errors: list[str] = field(default_factory=list)


class ConsoleJobs:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._pipeline = None
        self._lock = threading.Lock()

    def pipeline(self):  # noqa: ANN201 - alerts.pipeline.Pipeline, imported lazily (it builds indexes)
        from alerts.pipeline import Pipeline

        with self._lock:
            if self._pipeline is None:
                self._pipeline = Pipeline(self.config, migrate=False)
            return self._pipeline

    def poll_now(self, feed_name: str) -> PollResult:
        from alerts.pipeline import RunSummary, feed_spec

        feed = next((f for f in self.config.feeds if f.name == feed_name), None)
        if feed is None:
            raise KeyError(feed_name)
        summary = RunSummary()
        self.pipeline().poll(feed_spec(feed), summary, force=True)
        result = PollResult(feed=feed_name, parsed=summary.alerts_parsed, new=summary.alerts_new,
                            errors=list(summary.feed_errors))
        if result.new:
            self.match_now()
        return result

    def match_now(self) -> int:
        """Match pending alerts now (the job would at its next tick); returns messages queued, -1 on error."""
        try:
            return self.pipeline().match().queued
        except Exception:  # noqa: BLE001 - the running job matches at its next tick anyway
            log.warning("matching from the console failed; the running job will match", exc_info=True)
            return -1

    def close(self) -> None:
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None


def jobs_of(extras: dict, config: Config) -> ConsoleJobs:
    jobs = extras.get("jobs")
    if jobs is None:
        jobs = extras["jobs"] = ConsoleJobs(config)
    return jobs
