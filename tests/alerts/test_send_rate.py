"""The provider's per-second limit, counted where it matters: on the provider's side, per rolling second.

The loopback NHN server is given the account's limit (``account_limit_per_second``): a request that would
make any rolling second exceed it is refused with 429, and the server reports the worst rolling second of
what it admitted. Zero 429s at every configured rate, also when the limit equals the configured rate exactly,
also with the old default ``batch_size = 1000`` above the rate, also for a process started right after
another one sent a full second.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alimcast_testkit import TEMPLATES, cap_xml, config_text
from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.delivery.dispatch import ANSWER_WAIT, batch_size_for
from alerts.delivery.rate import SendWindow
from alerts.models import Delivery
from alerts.pipeline import Pipeline, feed_spec
from alerts.testing.nhn_server import NhnTestServer
from subscribers.csv_import import import_csv

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def nhn_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_APP_KEY", "test-appkey")
    monkeypatch.setenv("T_SECRET_KEY", "test-secret")
    monkeypatch.setenv("T_SENDER_KEY", "s" * 40)


def limited_server(limit: int) -> NhnTestServer:
    return NhnTestServer(templates={code: text for code, text in TEMPLATES.values()},
                         account_limit_per_second=limit)


def pipeline_for(tmp_path: Path, srv: NhnTestServer, rate: float, *, batch_size: int = 1000,
                 db: str = "a.db") -> Pipeline:
    feed = tmp_path / "feed.xml"
    text = config_text(f"sqlite:///{tmp_path / db}", [("kma", "cap", str(feed))], provider="nhn",
                       base_url=srv.base_url).replace("rate_per_second = 1000",
                                                      f"rate_per_second = {rate}\nbatch_size = {batch_size}")
    cfg = tmp_path / "config.toml"
    cfg.write_text(text, encoding="utf-8")
    config = load_config(cfg)
    config.provider.settings["retry_attempts"] = 1  # a 429 must show, not be retried away inside the adapter
    return Pipeline(config)


def queue_people(pipeline: Pipeline, tmp_path: Path, count: int, identifier: str, first: int = 0) -> None:
    csv = tmp_path / f"people-{identifier}.csv"
    with csv.open("w", encoding="utf-8") as out:
        out.write("phone,name,zones,min_severity\n")
        for i in range(first, first + count):
            out.write(f"0105{i:07d},p{i},S1251100,\n")
    assert import_csv(pipeline.engine, csv).inserted == count
    (tmp_path / "feed.xml").write_bytes(cap_xml(identifier, sent=NOW, zones=["S1251100"]))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    assert pipeline.match().queued >= count


def accepted(pipeline: Pipeline) -> int:
    with session_scope(pipeline.engine) as s:
        return sum(1 for d in s.exec(select(Delivery)) if d.status == "accepted")


@pytest.mark.parametrize("rate", [200, 500, 1000])
def test_never_more_than_the_account_allows_in_any_second(tmp_path: Path, nhn_keys: None, rate: int) -> None:
    """The account's limit equals the configured rate, the default batch_size (1000) is at or above it: every
    recipient is accepted exactly once, with zero 429s, and no rolling second at the server exceeds the rate."""
    people = rate * 3 // 2
    with limited_server(rate) as srv:
        pipeline = pipeline_for(tmp_path, srv, rate)
        queue_people(pipeline, tmp_path, people, f"RATE-{rate}")
        report = pipeline.dispatch()
        assert srv.rate_refusals == 0 and report.requeued == 0
        assert report.accepted == people == accepted(pipeline)
        assert srv.max_recipients_per_second() <= rate
        assert len({m.recipient_no for m in srv.messages}) == len(srv.messages) == people
        # no request carries more than one second of the rate
        assert max(n for _, n in srv.arrivals()) <= rate
        pipeline.close()


def test_a_starting_process_does_not_assume_the_previous_one_was_idle(tmp_path: Path, nhn_keys: None) -> None:
    """One process sends a whole second of the rate and stops; another starts at once on the same outbox
    with more queued: the account never sees more than the rate in a second (the newcomer reads what was
    sent in the last second from the outbox instead of starting with a full allowance)."""
    rate = 400
    with limited_server(rate) as srv:
        first = pipeline_for(tmp_path, srv, rate)
        queue_people(first, tmp_path, 2 * rate, "BOTH")
        step = first.dispatcher.dispatch_due(max_batches=8)  # eight eighth-second batches: one whole second
        assert step.accepted == rate
        first.close()
        second = pipeline_for(tmp_path, srv, rate)
        assert second.dispatch().accepted == rate
        assert srv.rate_refusals == 0
        assert srv.max_recipients_per_second() <= rate
        second.close()


def test_a_fractional_rate_sends_one_at_a_time(tmp_path: Path, nhn_keys: None) -> None:
    """Below one recipient per second there is still progress: one recipient per 1/rate seconds."""
    window = SendWindow(0.5)
    assert window.capacity == 1 and window.span == 2.0
    assert batch_size_for(1000, 1000, window.capacity) == 1


def test_batches_are_an_eighth_of_a_second_of_the_rate() -> None:
    assert batch_size_for(1000, 1000, 1000) == 125
    assert batch_size_for(1000, 1000, 2000) == 250
    assert batch_size_for(100, 1000, 1000) == 100
    assert batch_size_for(1000, 1000, 3) == 1


@pytest.mark.parametrize(("capacity", "size"), [(500, 50), (100, 10), (300, 30), (997, 83)])
def test_a_second_of_the_rate_is_filled_by_whole_requests(capacity: int, size: int) -> None:
    """An eighth of 500/s is 62 recipients, and eight requests of 62 fill only 496 of a second's 500: the rest
    of every second would go unused. Ten requests of 50 fill it."""
    assert batch_size_for(1000, 1000, capacity) == size


def test_batch_sizes_stay_within_every_limit_and_fill_the_second() -> None:
    for capacity in range(1, 5001):
        for configured in (1000, 300, 7):
            size = batch_size_for(configured, 1000, capacity)
            largest = max(1, min(configured, int(capacity * 0.125) or 1))
            assert largest >= size >= max(1, largest // 2)  # never more than about twice the requests
            filled = (capacity // size) * size
            # whole requests fill the second to within a thousandth, or as well as the largest size would
            assert filled >= min(capacity - capacity // 1000, (capacity // largest) * largest)


def test_the_wait_for_an_answer_follows_the_provider_s_answer_times(tmp_path: Path, nhn_keys: None) -> None:
    """While the rate holds its next batch back anyway, the dispatcher waits for a request's answer before its
    next claim (Dispatcher._quiet_until_answered). How long it waits follows how long recent requests held their
    place, from taking it to their answer's first bytes: twice the longest, within ANSWER_WAIT. Answers held
    30 ms by the provider give a wait of at least 60 ms; answers held 300 ms give ANSWER_WAIT, no more."""
    rate = 400  # batches of 50
    with limited_server(rate) as srv:
        pipeline = pipeline_for(tmp_path, srv, rate)
        dispatcher = pipeline.dispatcher
        assert dispatcher._answer_wait() == ANSWER_WAIT  # nothing measured yet
        queue_people(pipeline, tmp_path, 200, "SLOW")
        srv.delay_next(4, 0.03)
        assert dispatcher.dispatch_due(max_batches=4).accepted == 200
        assert len(dispatcher._flights) == 4 and min(dispatcher._flights) >= 0.03
        assert 0.06 <= dispatcher._answer_wait() <= ANSWER_WAIT
        queue_people(pipeline, tmp_path, 100, "SLOWER", first=200)
        srv.delay_next(2, 0.3)
        assert dispatcher.dispatch_due(max_batches=2).accepted == 100
        assert max(dispatcher._flights) >= 0.3 and dispatcher._answer_wait() == ANSWER_WAIT
        assert srv.rate_refusals == 0 and srv.max_recipients_per_second() <= rate
        pipeline.close()


def test_the_window_rule_holds_for_any_arrival_instant() -> None:
    """The docstring's proof, checked on random schedules: requests start only when the rule allows, each
    arrives at a random instant between its start and its end, and no rolling second holds more than the rate."""
    rng = random.Random(7)
    for _ in range(30):
        clock = [0.0]
        rate = rng.choice([5, 50, 500])
        window = SendWindow(rate, clock=lambda c=clock: c[0])
        flying: list[tuple[float, float, int, object]] = []  # (end, arrival, n, ticket)
        arrivals: list[tuple[float, int]] = []
        for _ in range(200):
            n = rng.randint(1, rate)
            # advance time, ending requests, until this one may start
            while window.used() + n > window.capacity:
                flying.sort(key=lambda f: f[0])
                if flying:
                    end, arrival, m, ticket = flying.pop(0)
                    clock[0] = max(clock[0], end)
                    window.finish(ticket)  # type: ignore[arg-type]
                    arrivals.append((arrival, m))
                else:
                    clock[0] += 0.05
            ticket = window.acquire(n)
            assert ticket is not None
            latency = rng.choice([0.001, 0.05, 0.4, 1.5])
            flying.append((clock[0] + latency, clock[0] + rng.random() * latency, n, ticket))
            clock[0] += rng.random() * 0.1
        arrivals.extend((arrival, m) for _, arrival, m, _ in flying)
        arrivals.sort()
        for i, (t, _) in enumerate(arrivals):
            in_second = sum(m for u, m in arrivals[i:] if u < t + 1.0)
            assert in_second <= rate


def _worst_second(rng: random.Random, rate: int, counted_from: str) -> int:
    """Random schedules under the rule, each request ``start <= arrival <= answer <= end`` (the answer begins
    at ``answer``; we finish reading it at ``end``), the window told ``finish(ago=end - <counted_from>)``:
    the most recipients that arrived in any rolling second."""
    clock = [0.0]
    window = SendWindow(rate, clock=lambda: clock[0])
    flying: list[tuple[float, float, float, float, int, object]] = []  # (end, start, arrival, answer, n, ticket)
    arrivals: list[tuple[float, int]] = []
    for _ in range(200):
        n = rng.randint(1, rate)
        while window.used() + n > window.capacity:
            flying.sort(key=lambda f: f[0])
            if flying:
                end, start, arrival, answer, m, ticket = flying.pop(0)
                clock[0] = max(clock[0], end)
                told = {"answer": answer, "start": start}[counted_from]
                window.finish(ticket, ago=clock[0] - told)  # type: ignore[arg-type]
                arrivals.append((arrival, m))
            else:
                clock[0] += 0.05
        ticket = window.acquire(n)
        assert ticket is not None
        wire = rng.choice([0.001, 0.05, 0.4, 1.5])  # start -> answer
        reading = rng.choice([0.0, 0.01, 0.3])       # answer -> end (our reading of the answer's body)
        start = clock[0]
        answer = start + wire
        flying.append((answer + reading, start, start + rng.random() * wire, answer, n, ticket))
        clock[0] += rng.random() * 0.1
    arrivals.extend((arrival, m) for _, _, arrival, _, m, _ in flying)
    arrivals.sort()
    return max(sum(m for u, m in arrivals[i:] if u < t + 1.0) for i, (t, _) in enumerate(arrivals))


def test_counting_until_the_answer_begins_holds_for_any_arrival_instant() -> None:
    """The window stops counting a request as in flight when its answer *began* to arrive, not when we had
    read it (alerts/delivery/providers/base.py, PreparedSend): still no rolling second over the rate, whatever
    the arrival instant between the start and the answer, and however long the reading after it."""
    rng = random.Random(11)
    for _ in range(30):
        rate = rng.choice([5, 50, 500])
        assert _worst_second(rng, rate, "answer") <= rate


def test_the_checker_catches_a_rule_counted_from_the_start() -> None:
    """The control of the test above: the same schedules with each request counted from its *start* (the
    relaxation a sender must not make) put more than the rate in some rolling second."""
    rng = random.Random(11)
    worst = [(_worst_second(rng, rate, "start"), rate) for rate in [rng.choice([5, 50, 500]) for _ in range(30)]]
    assert any(seen > rate for seen, rate in worst)


def test_jittery_answers_never_exceed_the_rate(tmp_path: Path, nhn_keys: None) -> None:
    """Counted at the server: requests held before they arrive (stalls) and answers held after they arrived
    (delays), at random; the dispatcher counts each request until its answer begins (not until it parsed it):
    zero 429s, never more than the rate in a rolling second, each recipient accepted once."""
    rate, people = 400, 1000
    rng = random.Random(3)
    with limited_server(rate) as srv:
        for _ in range(people // 100):
            srv.stall_next(1, rng.choice([0.0, 0.05, 0.3]))
            srv.delay_next(1, rng.choice([0.0, 0.05, 0.3]))
        pipeline = pipeline_for(tmp_path, srv, rate)
        queue_people(pipeline, tmp_path, people, "JITTER")
        report = pipeline.dispatch()
        assert srv.rate_refusals == 0 and report.requeued == 0
        assert report.accepted == people == accepted(pipeline)
        assert srv.max_recipients_per_second() <= rate
        assert len({m.recipient_no for m in srv.messages}) == people
        pipeline.close()


def test_room_within_is_a_look_that_takes_nothing() -> None:
    """The dispatcher's look before it decides to wait for an answer: what is in flight counts for any lead,
    an answered request until a second after its answer, and the look takes no place."""
    clock = [0.0]
    window = SendWindow(10, clock=lambda: clock[0])
    ticket = window.acquire(10)
    assert ticket is not None
    assert not window.room_within(1, 5.0)  # in flight: no room within any lead
    clock[0] = 0.4
    window.finish(ticket, ago=0.2)  # its answer began at 0.2: its place frees at 1.2
    assert not window.room_within(1, 0.7)
    assert window.room_within(10, 0.8)
    assert window.used() == 10  # nothing taken, nothing freed early
