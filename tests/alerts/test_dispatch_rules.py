"""Dispatcher rules against the loopback NHN server: throttled and retried, never lost, never twice,
never after the warning was lifted — on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import TEMPLATES, cap_xml, config_text
from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.delivery.dispatch import STALE_CHECK_EVERY, Dispatcher, backoff
from alerts.delivery.providers.registry import create_provider
from alerts.models import AlertRecord, CostEntry, Delivery
from alerts.pipeline import Pipeline, feed_spec
from alerts.testing.nhn_server import NhnTestServer, RecipientBehaviour
from subscribers import store
from subscribers.store import add_subscriber

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def server() -> Iterator[NhnTestServer]:
    with NhnTestServer(templates={code: text for code, text in TEMPLATES.values()}) as srv:
        yield srv


def make_pipeline(db_url: str, tmp_path: Path, srv: NhnTestServer, monkeypatch: pytest.MonkeyPatch,
                  extra: str = "") -> Pipeline:
    monkeypatch.setenv("T_APP_KEY", srv.app_key)
    monkeypatch.setenv("T_SECRET_KEY", srv.secret_key)
    monkeypatch.setenv("T_SENDER_KEY", srv.sender_key)
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(db_url, [("kma", "cap", str(tmp_path / "feed.xml"))], provider="nhn",
                               base_url=srv.base_url, extra=extra), encoding="utf-8")
    config = load_config(cfg)
    config.provider.settings["retry_attempts"] = 1  # let the outbox, not the adapter, do the retrying here
    return Pipeline(config)


def subscribe(pipeline: Pipeline, count: int, zone: str = "S1251100") -> None:
    with session_scope(pipeline.engine) as s:
        for i in range(count):
            add_subscriber(s, f"0103{i:07d}", [zone])


def deliveries(pipeline: Pipeline) -> list[Delivery]:
    with session_scope(pipeline.engine) as s:
        return list(s.exec(select(Delivery).order_by(Delivery.id)))


def expire_leases(pipeline: Pipeline, lease_until: datetime, *, key_used_at: datetime | None = None) -> None:
    """Time passes for the batches in flight: their leases run out (and their keys date from ``key_used_at``)."""
    with session_scope(pipeline.engine) as s:
        for row in s.exec(select(Delivery).where(Delivery.status == "sending")):
            row.lease_until = lease_until
            if key_used_at is not None:
                row.key_used_at = key_used_at
            s.add(row)


def feed(tmp_path: Path, body: bytes) -> None:
    (tmp_path / "feed.xml").write_bytes(body)


def queue(pipeline: Pipeline, tmp_path: Path, body: bytes) -> None:
    """Publish a document, poll it and match it: its messages wait in the outbox."""
    feed(tmp_path, body)
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    pipeline.match()


def test_server_error_requeues_then_sends_once(db_url: str, tmp_path: Path, server: NhnTestServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(db_url, tmp_path, server, monkeypatch)
    subscribe(pipeline, 3)
    queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    server.fail_next(1, status=503)
    frozen = datetime.now(UTC)
    pipeline.dispatcher.clock = lambda: frozen  # a loaded machine must not make the backoff look over
    report = pipeline.dispatch()
    assert report.requeued == 3 and report.accepted == 0
    rows = deliveries(pipeline)
    assert {r.status for r in rows} == {"queued"}
    assert all(r.next_attempt_at == frozen + timedelta(seconds=5) for r in rows)
    # Not due yet: nothing is sent early.
    assert pipeline.dispatch().requests == 0
    pipeline.dispatcher.clock = lambda: datetime.now(UTC)
    with session_scope(pipeline.engine) as s:
        for row in s.exec(select(Delivery)):
            row.next_attempt_at = NOW - timedelta(seconds=1)
            s.add(row)
    assert pipeline.dispatch().accepted == 3
    assert sorted(server.sends_to(f"0103{i:07d}") for i in range(3)) == [1, 1, 1]
    pipeline.close()


def test_retry_queue_never_sends_a_cancelled_warning(db_url: str, tmp_path: Path, server: NhnTestServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(db_url, tmp_path, server, monkeypatch)
    subscribe(pipeline, 2)
    spec = feed_spec(pipeline.config.feeds[0])
    feed(tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    pipeline.poll(spec, force=True)
    pipeline.match()
    server.fail_next(1, status=429, retry_after=0)
    pipeline.dispatch()
    assert {d.status for d in deliveries(pipeline)} == {"queued"}
    feed(tmp_path, cap_xml("W1C", sent=NOW + timedelta(minutes=1), zones=["S1251100"], msg_type="Cancel",
                           references=[("W1", NOW)]))
    pipeline.poll(spec, force=True)
    pipeline.match()
    with session_scope(pipeline.engine) as s:
        for row in s.exec(select(Delivery)):
            row.next_attempt_at = None
            s.add(row)
    pipeline.dispatch()
    assert server.send_requests() == [] or all(r.http_status != 200 for r in server.send_requests())
    assert {d.status for d in deliveries(pipeline)} == {"suppressed"}
    pipeline.close()


def test_configuration_error_keeps_messages_queued(db_url: str, tmp_path: Path, server: NhnTestServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(db_url, tmp_path, server, monkeypatch)
    server.secret_key = "rotated"  # our key is now wrong: NHN answers -1001
    subscribe(pipeline, 2)
    queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    report = pipeline.dispatch()
    assert report.errors and report.accepted == 0
    rows = deliveries(pipeline)
    assert {r.status for r in rows} == {"queued"}, "a config error must not lose messages"
    assert all(r.next_attempt_at and r.next_attempt_at >= NOW + timedelta(minutes=4) for r in rows)
    pipeline.close()


def test_most_severe_goes_first(db_url: str, tmp_path: Path, server: NhnTestServer,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(db_url, tmp_path, server, monkeypatch)
    subscribe(pipeline, 1, "S1251100")
    with session_scope(pipeline.engine) as s:
        add_subscriber(s, "01040000001", ["S1251200"])
    spec = feed_spec(pipeline.config.feeds[0])
    feed(tmp_path, cap_xml("MINOR", sent=NOW, zones=["S1251100"], severity="Minor", event="건조주의보"))
    pipeline.poll(spec, force=True)
    feed(tmp_path, cap_xml("EXTREME", sent=NOW + timedelta(seconds=1), zones=["S1251200"], severity="Extreme",
                           urgency="Immediate", event="태풍경보"))
    pipeline.poll(spec, force=True)
    pipeline.match()
    pipeline.dispatch()
    order = [x["recipientNo"] for r in server.send_requests() for x in r.body["recipientList"]]
    assert order == ["01040000001", "01030000000"]
    pipeline.close()


def test_two_workers_never_send_twice_on_postgres(pg_url: str, tmp_path: Path, server: NhnTestServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Several dispatchers on one PostgreSQL outbox (SKIP LOCKED claims): each message goes once."""
    pipeline = make_pipeline(pg_url, tmp_path, server, monkeypatch)
    subscribe(pipeline, 1200)
    queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    pipeline.config.provider.batch_size = 100
    workers = [Dispatcher(pipeline.engine, pipeline.config,
                          create_provider("nhn", pipeline.config.provider.settings)) for _ in range(3)]
    threads = [threading.Thread(target=w.dispatch_due) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    counts = [server.sends_to(f"0103{i:07d}") for i in range(1200)]
    assert counts == [1] * 1200
    assert {d.status for d in deliveries(pipeline)} == {"accepted"}
    pipeline.close()


@pytest.mark.parametrize(("attempts", "retry_after", "expected"), [
    (1, None, 5), (2, None, 10), (4, None, 40), (20, None, 600), (1, 30.0, 30), (8, 1.0, 600),
])
def test_backoff_table(attempts: int, retry_after: float | None, expected: float) -> None:
    assert backoff(attempts, retry_after).total_seconds() == expected


@pytest.mark.parametrize("reached_provider", [True, False])
def test_orphaned_batch_after_a_long_outage_is_not_sent_twice(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reached_provider: bool) -> None:
    """The sender died mid-request and came back after NHN forgot the idempotency key: look first."""
    templates = {code: text for code, text in TEMPLATES.values()}
    with NhnTestServer(templates=templates, idempotency_window_seconds=0.2) as srv:
        pipeline = make_pipeline(db_url, tmp_path, srv, monkeypatch)
        subscribe(pipeline, 3)
        queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
        dispatcher = pipeline.dispatcher
        claim = dispatcher._claim()  # what a worker commits just before its request
        if reached_provider:
            phones = dispatcher._phones([r.subscriber_id for r in claim.rows])
            pipeline.provider.send([dispatcher._message(r, phones[r.subscriber_id]) for r in claim.rows],
                                   idempotency_key=claim.key)
        # ... and then it died; it comes back 13 minutes later, long after NHN forgot the key.
        expire_leases(pipeline, NOW - timedelta(minutes=11), key_used_at=NOW - timedelta(minutes=13))
        time.sleep(0.3)
        pipeline.dispatch()
        assert [srv.sends_to(f"0103{i:07d}") for i in range(3)] == [1, 1, 1]
        assert {d.status for d in deliveries(pipeline)} == {"accepted"}
        pipeline.close()


def test_provider_outage_never_drops_a_live_warning(db_url: str, tmp_path: Path, server: NhnTestServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(db_url, tmp_path, server, monkeypatch, extra="[dispatch]\nmax_attempts = 2\n")
    subscribe(pipeline, 2)
    queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    server.fail_next(5, status=503)
    for _ in range(5):  # five failed rounds, more than max_attempts
        pipeline.dispatch()
        with session_scope(pipeline.engine) as s:
            for row in s.exec(select(Delivery)):
                row.next_attempt_at = None
                s.add(row)
    rows = deliveries(pipeline)
    assert {r.status for r in rows} == {"queued"} and all(r.attempts == 5 for r in rows)
    assert pipeline.dispatch().accepted == 2  # the provider is back
    pipeline.close()


def test_two_workers_poll_once_and_match_once_on_postgres(pg_url: str, tmp_path: Path, server: NhnTestServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ``alimcast run`` on one database, each doing its scheduled job at the same moment: only the lease
    holder polls, both match and dispatch, and every subscriber gets the warning once."""
    first = make_pipeline(pg_url, tmp_path, server, monkeypatch)
    second = make_pipeline(pg_url, tmp_path, server, monkeypatch)
    subscribe(first, 300)
    feed(tmp_path, cap_xml("W2", sent=NOW, zones=["S1251100"]))
    spec = feed_spec(first.config.feeds[0])
    polled: list[str] = []
    for name, pipeline in (("first", first), ("second", second)):
        original = pipeline.poll
        pipeline.poll = lambda s, *a, _o=original, _n=name, **k: (polled.append(_n), _o(s, *a, **k))[1]  # type: ignore[method-assign]
    assert first.lease.held()  # the first to ask holds the lease
    errors: list[BaseException] = []

    def job(pipeline: Pipeline) -> None:
        try:
            pipeline.poll_and_process(spec)
            pipeline.tick()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(p,)) for p in (second, first)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and polled == ["first"]
    assert [server.sends_to(f"0103{i:07d}") for i in range(300)] == [1] * 300
    assert len(deliveries(first)) == 300
    second.close()
    first.close()


def test_matching_takes_turns_on_postgres(pg_url: str, tmp_path: Path, server: NhnTestServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """While one worker is matching (it holds the matching lock), another waits instead of matching the
    same alerts from the same snapshot; it then sees them matched and queues nothing more."""
    from sqlalchemy import text

    from alerts.leader import MATCH_LOCK_KEY

    pipeline = make_pipeline(pg_url, tmp_path, server, monkeypatch)
    subscribe(pipeline, 20)
    feed(tmp_path, cap_xml("W3", sent=NOW, zones=["S1251100"]))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    reports = []
    with pipeline.engine.connect() as other:
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MATCH_LOCK_KEY})  # "another worker"
        waiting = threading.Thread(target=lambda: reports.append(pipeline.match()))
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive() and deliveries(pipeline) == []
        other.commit()
    waiting.join(timeout=30)
    assert reports[0].queued == 20 and len(deliveries(pipeline)) == 20
    assert pipeline.match().queued == 0
    pipeline.close()


def test_a_timeout_after_the_provider_accepted_is_not_sent_twice(db_url: str, tmp_path: Path, server: NhnTestServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """NHN accepts the request but answers after our client gave up: the outcome is unknown, so the batch is
    only ever repeated under its own key, which NHN refuses (-1005) and reconciles."""
    pipeline = make_pipeline(db_url, tmp_path, server, monkeypatch)
    pipeline.config.provider.settings.update(timeout_seconds=0.3, retry_attempts=1, retry_max_seconds=2)
    pipeline.dispatcher.provider = create_provider("nhn", pipeline.config.provider.settings)
    subscribe(pipeline, 2)
    queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    server.delay_next(1, 1.0)
    first = pipeline.dispatch()
    assert first.requeued == 2 and first.accepted == 0
    rows = deliveries(pipeline)
    assert {r.status for r in rows} == {"sending"} and len({r.idempotency_key for r in rows}) == 1
    expire_leases(pipeline, NOW - timedelta(seconds=1))  # the backoff has passed
    time.sleep(1.0)  # the delayed answer of the first request has been given by now
    pipeline.dispatch()
    assert [server.sends_to(f"0103{i:07d}") for i in range(2)] == [1, 1]
    keys = {r.headers["x-nc-api-idempotency-key"] for r in server.send_requests()}
    assert len(keys) == 1 and {d.status for d in deliveries(pipeline)} == {"accepted"}
    pipeline.close()


def test_a_batch_recovered_after_a_crash_is_checked_again(db_url: str, tmp_path: Path, server: NhnTestServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker died after claiming; the 해제 came meanwhile: the warning must not go out after it."""
    pipeline = make_pipeline(db_url, tmp_path, server, monkeypatch)
    subscribe(pipeline, 2)
    queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    pipeline.dispatcher._claim()  # committed "sending", and the worker died before its request left
    queue(pipeline, tmp_path, cap_xml("W1-END", sent=NOW + timedelta(minutes=1), zones=["S1251100"],
                                      msg_type="Cancel", references=[("W1", NOW)]))
    expire_leases(pipeline, NOW - timedelta(seconds=1))
    report = pipeline.dispatch()
    assert report.suppressed == 2
    # they may have been told (the claim was committed), so they get the 해제; the warning never follows it,
    # and its record says what we know: it may have gone out (uncertain, costed as sent), not "never sent"
    assert [r.body["templateCode"] for r in server.send_requests()] == ["ALIMCAST_CANCEL_01"]
    assert {(d.kind, d.status) for d in deliveries(pipeline)} == {("alert", "uncertain"), ("cancel", "accepted")}
    with session_scope(pipeline.engine) as s:
        uncertain = {d.id for d in s.exec(select(Delivery).where(Delivery.status == "uncertain"))}
        costed = {c.delivery_id for c in s.exec(select(CostEntry))}
    assert uncertain <= costed
    pipeline.close()


def test_a_page_of_dead_rows_does_not_hold_back_a_live_warning(db_url: str, tmp_path: Path, server: NhnTestServer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(db_url, tmp_path, server, monkeypatch)
    pipeline.config.provider.batch_size = 10
    pipeline.dispatcher.batch_size = 10
    subscribe(pipeline, 60)
    queue(pipeline, tmp_path, cap_xml("OLD", sent=NOW - timedelta(hours=2), zones=["S1251100"], severity="Severe",
                                      expires=NOW + timedelta(minutes=30)))
    with session_scope(pipeline.engine) as s:  # it expired while its 60 messages waited (an outage)
        for record in s.exec(select(AlertRecord)):
            record.end_time = NOW - timedelta(minutes=1)
            s.add(record)
    with session_scope(pipeline.engine) as s:
        add_subscriber(s, "01099990000", ["S1251200"])
    queue(pipeline, tmp_path, cap_xml("LIVE", sent=NOW, zones=["S1251200"], severity="Moderate"))
    report = pipeline.dispatch()
    assert report.suppressed == 60 and server.sends_to("01099990000") == 1
    pipeline.close()


def test_an_urgent_warning_is_not_stuck_behind_a_bulk_send(tmp_path: Path) -> None:
    """While 500 routine messages go out at 100/s, a tsunami warning from another feed is polled, matched
    and sent between two batches, long before the bulk send ends."""
    from alimcast_testkit import config_text

    feeds = [("a", "cap", str(tmp_path / "a.xml")), ("b", "cap", str(tmp_path / "b.xml"))]
    text = config_text(f"sqlite:///{tmp_path / 'a.db'}", feeds).replace("rate_per_second = 1000",
                                                                         "rate_per_second = 100\nbatch_size = 20")
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    pipeline = Pipeline(load_config(tmp_path / "config.toml"))
    with session_scope(pipeline.engine) as s:
        for i in range(500):
            add_subscriber(s, f"0103{i:07d}", ["S1251100"])
        add_subscriber(s, "01099999999", ["S1131100"])
    (tmp_path / "a.xml").write_bytes(cap_xml("W1", sent=NOW, zones=["S1251100"]))
    (tmp_path / "b.xml").write_bytes(cap_xml("TSU", sent=NOW, zones=["S1131100"], severity="Extreme",
                                             urgency="Immediate"))
    routine, urgent = (feed_spec(f) for f in pipeline.config.feeds)
    pipeline.poll(routine, force=True)
    pipeline.match()
    bulk = threading.Thread(target=pipeline.dispatch)
    bulk.start()
    time.sleep(0.2)
    pipeline.poll(urgent, force=True)
    pipeline.match()
    assert bulk.is_alive()  # polled and matched between two batches, not after the ~4 s bulk send
    bulk.join(timeout=30)
    sent = {d.subscriber_id: d.sent_at for d in deliveries(pipeline)}
    with session_scope(pipeline.engine) as s:
        tsunami_reader = store.require(s, "01099999999").id
    assert sent[tsunami_reader] is not None and sent[tsunami_reader] < max(t for t in sent.values() if t)
    pipeline.close()


def test_an_orphaned_batch_whose_lookup_fails_keeps_its_key(db_url: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Past NHN's key memory we must ask what arrived; if NHN cannot answer yet, the batch must not be
    re-keyed (a fresh key would send it again if the first request had arrived)."""
    templates = {code: text for code, text in TEMPLATES.values()}
    with NhnTestServer(templates=templates) as srv:
        pipeline = make_pipeline(db_url, tmp_path, srv, monkeypatch)
        subscribe(pipeline, 2)
        queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
        claim = pipeline.dispatcher._claim()  # committed "sending"; the worker died
    # NHN is unreachable now (the server is gone); the batch is 13 minutes old
    expire_leases(pipeline, NOW - timedelta(minutes=11), key_used_at=NOW - timedelta(minutes=13))
    pipeline.dispatch()
    rows = deliveries(pipeline)
    assert {(r.status, r.idempotency_key) for r in rows} == {("sending", claim.key)}
    assert all(r.lease_until is not None and r.lease_until > NOW for r in rows)  # asked again after a backoff
    pipeline.close()


def test_a_minus_1005_whose_list_lags_keeps_the_key(db_url: str, tmp_path: Path, server: NhnTestServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The first attempt arrived but its answer was lost; the adapter's retry got -1005 and NHN's message list
    did not show the message yet. The outcome is unknown: the batch keeps its key and is reconciled later."""
    pipeline = make_pipeline(db_url, tmp_path, server, monkeypatch)
    pipeline.config.provider.settings.update(timeout_seconds=0.3, retry_attempts=2, retry_max_seconds=5,
                                             retry_initial_seconds=0.9)
    pipeline.dispatcher.provider = create_provider("nhn", pipeline.config.provider.settings)
    subscribe(pipeline, 2)
    queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    server.delay_next(1, 0.6)
    server.lag_lists(5)
    pipeline.dispatch()
    assert {(r.status, r.idempotency_key is not None) for r in deliveries(pipeline)} == {("sending", True)}
    expire_leases(pipeline, NOW - timedelta(seconds=1))
    server.lag_lists(0)  # the list has caught up
    pipeline.dispatch()
    assert [server.sends_to(f"0103{i:07d}") for i in range(2)] == [1, 1]
    assert len({r.headers["x-nc-api-idempotency-key"] for r in server.send_requests()}) == 1
    assert {d.status for d in deliveries(pipeline)} == {"accepted"}
    pipeline.close()


def test_a_retryable_refusal_of_one_recipient_is_retried_past_max_attempts(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NHN refuses one number with its retryable system error three times, more than max_attempts (2): the
    warning still reaches that person once, and the others once."""
    behaviours = {"01030000001": RecipientBehaviour(refuse_times=3)}
    templates = {code: text for code, text in TEMPLATES.values()}
    with NhnTestServer(templates=templates, behaviours=behaviours) as srv:
        pipeline = make_pipeline(db_url, tmp_path, srv, monkeypatch, extra="[dispatch]\nmax_attempts = 2\n")
        subscribe(pipeline, 3)
        queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
        for _ in range(4):
            pipeline.dispatch()
            with session_scope(pipeline.engine) as s:  # the backoff has passed
                for row in s.exec(select(Delivery).where(Delivery.status == "queued")):
                    row.next_attempt_at = None
                    s.add(row)
        assert [srv.sends_to(f"0103{i:07d}") for i in range(3)] == [1, 1, 1]
        assert {d.status for d in deliveries(pipeline)} == {"accepted"}
        pipeline.close()


def test_a_dead_senders_batch_is_taken_over_within_the_check_interval(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch whose sender died is taken over within a second of its lease running out, also in the middle
    of a round: on SQLite the claims look for such batches at a round's first claim and then every
    ``STALE_CHECK_EVERY`` (not at every claim); on PostgreSQL, where workers take over each other's batches,
    at every claim."""
    with NhnTestServer() as server:
        pipeline = make_pipeline(db_url, tmp_path, server, monkeypatch)
        try:
            subscribe(pipeline, 3)
            queue(pipeline, tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
            dispatcher = pipeline.dispatcher
            now = [NOW + timedelta(minutes=1)]
            dispatcher.clock = lambda: now[0]
            dispatcher.batch_size = 1
            dispatcher._stale_check_at = None  # as at the start of a round (dispatch_due)
            orphan = dispatcher._claim()  # committed "sending"; its sender then dies
            assert len(orphan.rows) == 1 and orphan.stale_since is None
            expire_leases(pipeline, now[0] - timedelta(seconds=1))

            following = dispatcher._claim()  # the same instant of the same round
            if pipeline.engine.dialect.name == "sqlite":
                # not looked for yet: a fresh row goes first
                assert following.stale_since is None and following.rows[0].id != orphan.rows[0].id
                now[0] += STALE_CHECK_EVERY
                following = dispatcher._claim()
            assert following.stale_since is not None  # taken over, under the key it was first sent with
            assert following.key == orphan.key and [r.id for r in following.rows] == [r.id for r in orphan.rows]
        finally:
            pipeline.close()
