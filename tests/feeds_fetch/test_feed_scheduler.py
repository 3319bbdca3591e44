"""FeedScheduler on a real APScheduler, asserted on events and on the jobs' settings, never on how quickly a
loaded machine ran them: every wait is for something to happen (with a generous bound), not for time to pass."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from feeds.poller import FeedSpec
from feeds.scheduler import FeedScheduler


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class Recorder:
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[str, float]] = []
        self.delay = delay
        self.fail = fail
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, spec: FeedSpec) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append((spec.name, time.monotonic()))
        try:
            time.sleep(self.delay)
            if self.fail:
                raise RuntimeError(f"poll of {spec.name} blew up")
        finally:
            with self._lock:
                self.active -= 1

    def times(self, name: str) -> list[float]:
        with self._lock:
            return [t for n, t in self.calls if n == name]


@pytest.fixture
def schedulers() -> Iterator[list[FeedScheduler]]:
    made: list[FeedScheduler] = []
    yield made
    for sched in made:
        sched.shutdown(wait=False)


def spec(name: str, interval: float) -> FeedSpec:
    return FeedSpec(name=name, kind="cap", url=f"http://127.0.0.1:9/{name}", interval_seconds=interval)


def test_feed_jobs_run_on_their_interval_and_stop_on_shutdown(schedulers: list[FeedScheduler]) -> None:
    recorder = Recorder()
    sched = FeedScheduler([spec("fast", 0.2), spec("hourly", 3600)], recorder)
    schedulers.append(sched)
    fast, hourly = sched.get_job("feed:fast"), sched.get_job("feed:hourly")
    assert fast is not None and hourly is not None
    assert fast.trigger.interval.total_seconds() == 0.2 and hourly.trigger.interval.total_seconds() == 3600
    sched.start()
    # the hourly feed is polled at start-up, not an hour later; the fast one keeps polling on its interval
    assert wait_until(lambda: len(recorder.times("hourly")) == 1 and len(recorder.times("fast")) >= 3)
    assert len(recorder.times("hourly")) == 1

    sched.shutdown(wait=True)
    assert not sched.running and recorder.active == 0  # shutdown waited for any poll under way


def test_job_options(schedulers: list[FeedScheduler]) -> None:
    sched = FeedScheduler([spec("a", 0.2), spec("b", 3600)], Recorder(), run_immediately=False)
    schedulers.append(sched)
    sched.add_periodic("dispatch", 5, lambda: None)
    sched.start()
    a, b, periodic = sched.get_job("feed:a"), sched.get_job("feed:b"), sched.get_job("periodic:dispatch")
    assert a is not None and b is not None and periodic is not None
    assert (a.max_instances, a.coalesce, a.misfire_grace_time) == (1, True, 1)
    assert a.trigger.jitter == pytest.approx(0.02)
    assert b.trigger.jitter == 30 and b.misfire_grace_time == 300  # both capped
    assert periodic.trigger.interval.total_seconds() == 5 and periodic.trigger.jitter is None
    assert sorted(sched.job_ids()) == ["feed:a", "feed:b", "periodic:dispatch"]
    with pytest.raises(ValueError, match="interval_seconds must be positive"):
        sched.add_feed(spec("zero", 0))


def test_a_failing_poll_is_logged_and_the_job_keeps_running(schedulers: list[FeedScheduler],
                                                            caplog: pytest.LogCaptureFixture) -> None:
    failing, fine = Recorder(fail=True), Recorder()
    sched = FeedScheduler([spec("bad", 0.2)], failing)
    schedulers.append(sched)
    sched.add_periodic("collect", 0.2, lambda: fine(spec("collect", 1)))
    with caplog.at_level(logging.ERROR, logger="feeds.scheduler"):
        sched.start()
        assert wait_until(lambda: len(failing.calls) >= 3 and len(fine.calls) >= 3)
    assert any("poll of feed bad failed" in r.getMessage() for r in caplog.records)


def test_slow_poll_never_overlaps_itself(schedulers: list[FeedScheduler]) -> None:
    """A poll still running when its next run is due makes APScheduler skip that run, not start a second."""
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES

    release, skipped = threading.Event(), threading.Event()
    recorder = Recorder()

    def poll(feed: FeedSpec) -> None:
        recorder(feed)
        if len(recorder.calls) == 1:
            release.wait(30)

    sched = FeedScheduler([spec("slow", 0.1)], poll)
    schedulers.append(sched)
    sched._scheduler.add_listener(lambda _event: skipped.set(), EVENT_JOB_MAX_INSTANCES)
    sched.start()
    assert skipped.wait(30)  # a run came due while the first poll was still going, and was skipped
    assert len(recorder.calls) == 1
    release.set()
    assert wait_until(lambda: len(recorder.calls) >= 2)
    assert recorder.max_active == 1


def test_shutdown_waits_for_running_polls(schedulers: list[FeedScheduler]) -> None:
    started, finished = threading.Event(), threading.Event()

    def poll(_: FeedSpec) -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    sched = FeedScheduler([spec("one", 60)], poll)
    schedulers.append(sched)
    sched.start()
    assert started.wait(30)  # the immediate first run is under way
    sched.shutdown(wait=True)
    assert finished.is_set()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_forever_stops_cleanly_on_signal(signum: int) -> None:
    """The second poll sends the signal; run_forever must return by itself (a hang fails by timeout below)."""
    recorder = Recorder()

    def poll(feed: FeedSpec) -> None:
        recorder(feed)
        if len(recorder.calls) == 2:
            os.kill(os.getpid(), signum)

    sched = FeedScheduler([spec("fg", 0.2)], poll)
    before = signal.getsignal(signum)
    watchdog = threading.Timer(60, sched.request_stop)  # only so that a broken run_forever cannot hang the suite
    watchdog.start()
    try:
        sched.run_forever()
    finally:
        stopped_by_watchdog = not watchdog.is_alive()
        watchdog.cancel()
    assert not stopped_by_watchdog
    assert not sched.running and len(recorder.calls) >= 2
    assert signal.getsignal(signum) is before
