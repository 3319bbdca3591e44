"""Runs one interval job per feed (and a few housekeeping jobs) on APScheduler 3.11.

APScheduler 3.x is the stable line (4.0 is an alpha). Its job store is kept in memory on purpose: a
3.x job store cannot be shared between processes, and everything that must survive a restart or a
takeover (ETags, health) lives in our own tables through :class:`feeds.state.FeedStateStore`.

A ``BackgroundScheduler`` is used, with :meth:`FeedScheduler.run_forever` as the foreground loop:
the main thread only waits for SIGINT/SIGTERM and then shuts down cleanly, letting running polls
finish, which is simpler to reason about (and to test) than a ``BlockingScheduler`` stopped from
inside a signal handler.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from feeds.poller import FeedSpec

log = logging.getLogger(__name__)

#: Jitter is about 10 % of the interval, never more than this, so feeds sharing a host spread out
#: without polls drifting far from their stated rate.
MAX_JITTER_SECONDS = 30.0
#: A run late by more than this (or half an interval, if shorter) is dropped: the next one is soon.
MAX_MISFIRE_GRACE_SECONDS = 300


def _feed_trigger(seconds: float) -> IntervalTrigger:
    jitter = min(seconds * 0.1, MAX_JITTER_SECONDS)
    return IntervalTrigger(seconds=seconds, jitter=jitter or None, timezone=UTC)


def _misfire_grace(seconds: float) -> int:
    # APScheduler 3 wants a positive int here.
    return max(1, min(MAX_MISFIRE_GRACE_SECONDS, int(seconds / 2)))


class FeedScheduler:
    """One interval job per feed calling ``on_poll(spec)``, plus named periodic jobs.

    ``on_poll`` is the caller's (alerts passes "poll, ingest, dispatch"). An exception escaping it is
    logged with the feed name and the job stays scheduled: one bad feed never stops the others.
    """

    def __init__(
        self,
        specs: Iterable[FeedSpec],
        on_poll: Callable[[FeedSpec], None],
        *,
        max_workers: int = 10,
        run_immediately: bool = True,
    ) -> None:
        self._on_poll = on_poll
        self._run_immediately = run_immediately
        self._scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self._stop = threading.Event()
        for spec in specs:
            self.add_feed(spec)

    # -- jobs ---------------------------------------------------------------------------------

    def add_feed(self, spec: FeedSpec) -> None:
        """Schedule (or reschedule) ``spec``; its name is its job id, so names must be unique."""
        if spec.interval_seconds <= 0:
            raise ValueError(f"feed {spec.name}: interval_seconds must be positive, "
                             f"not {spec.interval_seconds}")
        self._scheduler.add_job(
            self._run_feed,
            trigger=_feed_trigger(spec.interval_in_force),
            args=[spec],
            id=f"feed:{spec.name}",
            name=f"feed {spec.name}",
            replace_existing=True,
            misfire_grace_time=_misfire_grace(spec.interval_in_force),
            **self._first_run(),
        )

    def follow(self, spec: FeedSpec) -> bool:
        """Carry on polling ``spec`` at its interval in force (the weather changed: warnings became live or
        ended); the next poll is one new interval from now. Returns whether the interval changed."""
        job = self._scheduler.get_job(f"feed:{spec.name}")
        if job is None:
            return False
        job.modify(args=[spec])
        if job.trigger.interval.total_seconds() == spec.interval_in_force:
            return False
        job.modify(misfire_grace_time=_misfire_grace(spec.interval_in_force))
        job.reschedule(trigger=_feed_trigger(spec.interval_in_force))
        log.info("feed %s: polled every %gs from now (%s)", spec.name, spec.interval_in_force,
                 "live warnings" if spec.active else "no live warnings")
        return True

    def interval_of(self, name: str) -> float | None:
        """The interval the feed is polled at now (None for an unknown feed)."""
        job = self._scheduler.get_job(f"feed:{name}")
        return None if job is None else job.trigger.interval.total_seconds()

    def add_periodic(self, name: str, seconds: float, func: Callable[[], None]) -> None:
        """A housekeeping job (dispatch, delivery results) every ``seconds``; errors are logged, not fatal."""
        if seconds <= 0:
            raise ValueError(f"periodic job {name}: seconds must be positive, not {seconds}")
        self._scheduler.add_job(
            self._run_periodic,
            trigger=IntervalTrigger(seconds=seconds, timezone=UTC),
            args=[name, func],
            id=f"periodic:{name}",
            name=name,
            replace_existing=True,
            misfire_grace_time=_misfire_grace(seconds),
            **self._first_run(),
        )

    def get_job(self, job_id: str) -> Job | None:
        """The APScheduler job (``feed:<name>`` or ``periodic:<name>``), for status pages and tests."""
        return self._scheduler.get_job(job_id)

    def job_ids(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]

    def _first_run(self) -> dict[str, datetime]:
        # Without this the first poll waits a whole interval after start-up.
        if self._run_immediately:
            return {"next_run_time": datetime.now(UTC) + timedelta(milliseconds=10)}
        return {}

    def _run_feed(self, spec: FeedSpec) -> None:
        try:
            self._on_poll(spec)
        except Exception:
            log.exception("poll of feed %s failed", spec.name)

    @staticmethod
    def _run_periodic(name: str, func: Callable[[], None]) -> None:
        try:
            func()
        except Exception:
            log.exception("periodic job %s failed", name)

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self, wait: bool = True) -> None:
        """Stop scheduling; with ``wait`` the polls already running finish first."""
        self._stop.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    def request_stop(self) -> None:
        """Make :meth:`run_forever` return (safe from signal handlers and other threads)."""
        self._stop.set()

    def run_forever(self, *, handle_signals: bool = True) -> None:
        """Foreground loop for ``alimcast run``: start, wait for Ctrl-C/SIGTERM, shut down cleanly."""
        previous: dict[int, object] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            self.start()
            while not self._stop.wait(1.0):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]
            self.shutdown(wait=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping after running polls finish", signal.Signals(signum).name)
        self._stop.set()
