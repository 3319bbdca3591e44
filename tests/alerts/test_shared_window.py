"""The send window shared through PostgreSQL, in one process with two windows standing for two workers.

The rule is the one of alerts/delivery/rate.py, counted over both: a place is refused while the other's
request is in flight or answered less than a second ago; a dead worker's place counts until its request can
no longer arrive; SQLite keeps the in-process window. Also the worker registry's states.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import text

from alerts.db import make_engine, upgrade
from alerts.delivery.rate import SendWindow
from alerts.delivery.shared_rate import SharedSendWindow, window_for
from alerts.workers import STALE_AFTER, Heartbeat, fleet_status


def test_two_workers_count_each_others_requests(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    a = SharedSendWindow(engine, 10, attempt_seconds=2, worker="a")
    b = SharedSendWindow(engine, 10, attempt_seconds=2, worker="b")
    try:
        ticket = a.acquire(6)
        assert ticket is not None and b.used() == 6 and a.in_flight() == 6
        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        assert b.acquire(6, stop) is None  # a's request is in flight: no room for 6 more
        assert b.acquire(4) is not None  # but room for 4
        a.finish(ticket)
        ended = time.monotonic()
        other = b.acquire(6)  # a's 6 count one more second after their answer
        assert other is not None and time.monotonic() - ended >= 0.9
    finally:
        engine.dispose()


def test_a_dead_workers_place_counts_until_its_request_cannot_arrive(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    try:
        dead = SharedSendWindow(engine, 10, attempt_seconds=1, worker="dead")
        assert dead.acquire(10) is not None  # never finished: the process "died"
        with engine.begin() as conn:
            left = conn.execute(text("SELECT extract(epoch FROM counts_until - clock_timestamp()) "
                                     "FROM send_reservation")).scalar_one()
        assert 1.5 < float(left) <= 3.1  # one attempt (at least two renewals) plus the window's second
        live = SharedSendWindow(engine, 10, worker="live")
        assert not live.wait_for_room(1, _set_after(0.2))
    finally:
        engine.dispose()


def test_sqlite_keeps_the_in_process_window(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(window_for(engine, 100), SendWindow)


def test_workers_status_shows_alive_dead_stopped_and_the_poller(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    try:
        polling = Heartbeat(engine, polls=lambda: True, in_flight=lambda: 25, sent=lambda: 100)
        polling.beat()
        quiet = Heartbeat(engine, polls=lambda: False, in_flight=lambda: 0, sent=lambda: 0)
        quiet.id += "-2"
        quiet.beat()
        fleet = fleet_status(engine)
        assert [w.state for w in fleet.workers] == ["alive", "alive"]
        assert fleet.poller == polling.id and fleet.workers[0].in_flight == 25
        later = fleet_status(engine, now=polling.started + STALE_AFTER + timedelta(seconds=5))
        assert {w.state for w in later.workers} == {"dead"} and later.poller is None
        quiet.stop()
        assert {w.id: w.state for w in fleet_status(engine).workers}[quiet.id] == "stopped"
        assert quiet.id not in {w.id for w in fleet_status(engine, include_stopped=False).workers}
    finally:
        engine.dispose()


def _set_after(seconds: float) -> threading.Event:
    event = threading.Event()
    threading.Timer(seconds, event.set).start()
    return event


def test_room_within_a_lead_is_only_a_hint(pg_url: str) -> None:
    """``wait_for_room(lead=...)`` says yes when an ended request's place frees within the lead (the batch is
    claimed meanwhile), never while one is in flight; ``acquire`` still waits for the place itself."""
    engine = make_engine(pg_url)
    upgrade(engine)
    try:
        a = SharedSendWindow(engine, 10, attempt_seconds=2, worker="a")
        b = SharedSendWindow(engine, 10, attempt_seconds=2, worker="b")
        ticket = a.acquire(10)
        assert ticket is not None
        assert not b.wait_for_room(5, _set_after(0.3), lead=5.0)  # in flight: no room within any lead
        a.finish(ticket)
        ended = time.monotonic()
        assert b.wait_for_room(5, lead=5.0) and time.monotonic() - ended < 0.9  # frees within the lead
        assert b.acquire(5) is not None and time.monotonic() - ended >= 0.9  # the place itself: after its second
    finally:
        engine.dispose()


def test_the_in_process_window_takes_the_same_lead() -> None:
    clock = [0.0]
    window = SendWindow(10, clock=lambda: clock[0])
    ticket = window.acquire(10)
    assert ticket is not None
    assert not window.wait_for_room(1, _set_after(0.2), lead=5.0)  # in flight
    window.finish(ticket)
    clock[0] = 0.5
    assert window.wait_for_room(10, lead=0.6)  # its place frees at 1.0, within 0.5 + 0.6
    assert not window.wait_for_room(10, _set_after(0.2), lead=0.4)
    assert window.used() == 10  # nothing taken, and it still counts


def test_a_claimed_batch_waiting_for_room_keeps_its_lease(pg_url: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With several workers a claimed batch may wait for room while others take it first; meanwhile its lease
    is renewed, so no other worker takes it over as orphaned (and sends it under its key at the same time)."""
    from datetime import UTC, datetime

    from alimcast_testkit import cap_xml, config_text

    from alerts.config import load_config
    from alerts.delivery import dispatch
    from alerts.delivery.dispatch import DispatchReport
    from alerts.pipeline import Pipeline, feed_spec
    from subscribers.csv_import import import_csv

    monkeypatch.setattr(dispatch, "LEASE", timedelta(seconds=3))
    monkeypatch.setattr(dispatch, "RENEW_EVERY", 0.25)
    feed = tmp_path / "w.cap.xml"
    feed.write_bytes(cap_xml("KMA-WAIT-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    path = tmp_path / "wait.toml"
    path.write_text(config_text(pg_url, [("kma", "cap", str(feed))]), encoding="utf-8")
    people = tmp_path / "people.csv"
    people.write_text("phone,name,zones\n" + "".join(f"0105{i:07d},p{i},S1251100\n" for i in range(10)),
                      encoding="utf-8")
    pipeline = Pipeline(load_config(path))
    other_worker = Pipeline(load_config(path), migrate=False)
    try:
        import_csv(pipeline.engine, people)
        pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
        assert pipeline.match().queued == 10
        busy = SharedSendWindow(pipeline.engine, 1000, attempt_seconds=2, worker="busy")
        ticket = busy.acquire(1000)  # another worker's request fills the account's second
        assert ticket is not None
        claim = pipeline.dispatcher._claim()
        report = DispatchReport()
        dispatcher = pipeline.dispatcher
        sender = threading.Thread(target=lambda: dispatcher._finish(dispatcher._start(claim.rows, claim.key, False,
                                                                                      report), report), daemon=True)
        sender.start()
        time.sleep(4.0)  # longer than the lease: the batch still waits for room
        assert sender.is_alive()
        assert other_worker.dispatcher._claim().rows == []  # not taken over: its lease was renewed
        busy.finish(ticket)
        sender.join(30)
        assert report.accepted == 10
    finally:
        other_worker.close()
        pipeline.close()


def test_a_waiting_worker_takes_the_room_when_it_frees_and_not_before(pg_url: str) -> None:
    """b waits while a's request is in flight (looking now and then), learns of a's answer (back-dated to when
    it began to arrive: ``ago``), sleeps until a's place frees and takes it then: never before (on the
    database's clock), and without a polling interval's delay after (generous bound for a loaded CI)."""
    engine = make_engine(pg_url)
    upgrade(engine)
    a = SharedSendWindow(engine, 10, attempt_seconds=2, worker="a")
    b = SharedSendWindow(engine, 10, attempt_seconds=2, worker="b")
    try:
        ticket = a.acquire(10)
        assert ticket is not None
        taken: list[object] = []
        waiter = threading.Thread(target=lambda: taken.append(b.acquire(10)))
        waiter.start()
        time.sleep(0.3)  # b is waiting (no room), not racing: it may look as often as it likes
        assert not taken
        a.finish(ticket, ago=0.25)
        frees = time.monotonic() + 0.75
        waiter.join(10)
        assert taken and taken[0] is not None
        late = time.monotonic() - frees
        with engine.begin() as conn:
            a_until, b_started = conn.execute(text(
                "SELECT (SELECT counts_until FROM send_reservation WHERE worker = 'a'), "
                "       (SELECT started_at FROM send_reservation WHERE worker = 'b')")).one()
        assert b_started >= a_until  # never before a's place freed
        assert late < 0.5, late  # woken at the moment it freed (a 0.2 s look while in flight, then exact)
    finally:
        engine.dispose()
