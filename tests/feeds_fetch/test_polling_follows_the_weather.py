"""Polling that follows the weather, on the feeds side: the interval in force, Cache-Control: max-age, and
the scheduler carrying a feed on at a new interval. Time is given to poll_feed, never waited for."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from feedfetch_server import FeedServer, cap_doc, static

from feeds.fetch import Fetcher, parse_max_age
from feeds.poller import FeedSpec, RetryPolicy, poll_feed
from feeds.scheduler import FeedScheduler
from feeds.state import MemoryFeedStateStore

FAST = RetryPolicy(attempts=1, initial_seconds=0.01, max_seconds=0.05, jitter_seconds=0.01)
T0 = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    f = Fetcher(deadline_seconds=10)
    yield f
    f.close()


@pytest.mark.parametrize(("header", "seconds"), [
    ("max-age=120", 120.0), ("public, max-age=600, must-revalidate", 600.0), ('max-age="30"', 30.0),
    ("no-cache, max-age=600", None), ("no-store", None), ("s-maxage=100", None), ("max-age=soon", None),
    (None, None), ("", None),
])
def test_max_age_is_read_from_cache_control(header: str | None, seconds: float | None) -> None:
    assert parse_max_age(header) == seconds


def test_the_interval_in_force_follows_live_warnings() -> None:
    quiet = FeedSpec(name="kma", kind="cap", url="x", interval_seconds=300, active_interval_seconds=30)
    assert quiet.interval_in_force == 300
    assert dataclasses.replace(quiet, active=True).interval_in_force == 30
    plain = FeedSpec(name="usgs", kind="cap", url="x", interval_seconds=300)
    assert dataclasses.replace(plain, active=True).interval_in_force == 300  # no active interval configured


@pytest.mark.parametrize(("max_age", "active", "wait"), [
    (None, False, 300), (None, True, 30),
    ("120", True, 120),     # the server says it will not change sooner than the active interval: honoured
    ("10", True, 30),       # a shorter max-age never makes us poll faster than the interval in force
    ("86400", False, 300),  # a careless day-long max-age cannot silence a warning feed
])
def test_next_poll_honours_max_age_within_the_ordinary_interval(
        server: FeedServer, fetcher: Fetcher, max_age: str | None, active: bool, wait: int) -> None:
    headers = {"Cache-Control": f"max-age={max_age}"} if max_age else None
    server.routes["/cap"] = static(cap_doc("W-1"), headers=headers)
    spec = FeedSpec(name="kma", kind="cap", url=server.url("/cap"), interval_seconds=300,
                    active_interval_seconds=30, active=active)
    store = MemoryFeedStateStore()
    outcome = poll_feed(spec, fetcher, store, now=T0, retry=FAST)
    assert not outcome.errors and [a.identifier for a in outcome.alerts] == ["W-1"]
    assert store.get("kma").next_poll_at == T0 + timedelta(seconds=wait)
    # a scheduled poll before then is not due yet; one at that time goes to the server again
    assert poll_feed(spec, fetcher, store, now=T0 + timedelta(seconds=wait * 0.5), retry=FAST).skipped
    assert not poll_feed(spec, fetcher, store, now=T0 + timedelta(seconds=wait), retry=FAST).skipped
    assert len(server.hits("/cap")) == 2


def test_the_scheduler_follows_a_feed_to_its_interval_in_force() -> None:
    spec = FeedSpec(name="kma", kind="cap", url="http://127.0.0.1:9/x", interval_seconds=300,
                    active_interval_seconds=30)
    sched = FeedScheduler([spec], lambda _spec: None, run_immediately=False)
    sched.start()
    try:
        assert sched.interval_of("kma") == 300
        assert sched.follow(dataclasses.replace(spec, active=True))
        job = sched.get_job("feed:kma")
        assert job is not None and sched.interval_of("kma") == 30 and job.args[0].active
        # the next poll is one new interval from now, not the old hour-long wait
        assert job.next_run_time <= datetime.now(UTC) + timedelta(seconds=30 + 3 + 1)
        assert not sched.follow(dataclasses.replace(spec, active=True))  # unchanged
        assert sched.follow(spec) and sched.interval_of("kma") == 300
        assert sched.interval_of("nope") is None
    finally:
        sched.shutdown(wait=False)
