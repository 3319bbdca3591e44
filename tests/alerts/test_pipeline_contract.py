"""The pipeline's promises, run against SQLite and a real PostgreSQL server alike.

Each test drives the real Pipeline (poll a CAP file, ingest, thread, match, queue, dispatch through
the dry-run provider, collect) and reads the outcome from the database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import cap_xml
from sqlmodel import Session, select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.models import AlertRecord, AlertThread, CostEntry, Delivery
from alerts.pipeline import Pipeline
from subscribers.models import Subscriber
from subscribers.store import add_subscriber

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def setup(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> Callable[[], Pipeline]:
    feed = tmp_path / "feed.xml"

    def make() -> Pipeline:
        path = write_config(db_url, [("kma", "cap", str(feed))])
        return Pipeline(load_config(path))

    return make


def publish(tmp_path: Path, body: bytes) -> None:
    """Replace the feed file (with a new mtime, so the poller sees a change)."""
    path = tmp_path / "feed.xml"
    path.write_bytes(body)
    stamp = datetime.now().timestamp() + len(body) % 7 + publish.counter  # type: ignore[attr-defined]
    publish.counter += 10  # type: ignore[attr-defined]
    import os

    os.utime(path, (stamp, stamp))


publish.counter = 0  # type: ignore[attr-defined]


def people(pipeline: Pipeline) -> dict[str, int]:
    with session_scope(pipeline.engine) as s:
        a = add_subscriber(s, "010-2000-0001", ["S1251100"], name="A")
        b = add_subscriber(s, "010-2000-0002", ["S1251100", "S1251200", "서해중부먼바다"], name="B")
        c = add_subscriber(s, "010-2000-0003", ["S1251400"], name="C")
        d = add_subscriber(s, "010-2000-0004", ["S1251200"], name="D", min_severity="Severe")
        return {"A": a.id, "B": b.id, "C": c.id, "D": d.id}  # type: ignore[dict-item]


def deliveries(session: Session) -> list[Delivery]:
    return list(session.exec(select(Delivery).order_by(Delivery.id)))


def by_person(pipeline: Pipeline, ids: dict[str, int]) -> dict[str, list[tuple[str, str]]]:
    names = {v: k for k, v in ids.items()}
    out: dict[str, list[tuple[str, str]]] = {}
    with session_scope(pipeline.engine) as s:
        for d in deliveries(s):
            out.setdefault(names[d.subscriber_id], []).append((d.kind, d.status))
    return out


def test_one_message_per_person_and_never_twice(setup: Callable[[], Pipeline], tmp_path: Path) -> None:
    pipeline = setup()
    ids = people(pipeline)
    publish(tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100", "S1251200", "S1252010"]))
    first = pipeline.run_once()
    assert first.alerts_new == 1
    # A via one zone, B via three named zones: one message each; C elsewhere; D below min severity.
    assert by_person(pipeline, ids) == {"A": [("alert", "delivered")], "B": [("alert", "delivered")]}
    # Polling the same document again, and the same alert from a second copy, changes nothing.
    publish(tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100", "S1251200", "S1252010"]))
    again = pipeline.run_once()
    assert again.alerts_new == 0 and again.duplicates == 1
    assert by_person(pipeline, ids) == {"A": [("alert", "delivered")], "B": [("alert", "delivered")]}
    with session_scope(pipeline.engine) as s:
        costs = list(s.exec(select(CostEntry)))
        assert len(costs) == 2 and all(c.dry_run and c.channel == "alimtalk" for c in costs)
    pipeline.close()


def test_update_then_cancel_follow_the_thread(setup: Callable[[], Pipeline], tmp_path: Path) -> None:
    pipeline = setup()
    ids = people(pipeline)
    publish(tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    pipeline.run_once()
    # The update widens the area to S1251200 (B already told, D is now Severe-worthy).
    publish(tmp_path, cap_xml("W2", sent=NOW + timedelta(minutes=30), zones=["S1251100", "S1251200"],
                              msg_type="Update", event="풍랑경보", severity="Severe", references=[("W1", NOW)]))
    pipeline.run_once()
    publish(tmp_path, cap_xml("W3", sent=NOW + timedelta(hours=1), zones=["S1251100", "S1251200"],
                              msg_type="Cancel", references=[("W1", NOW), ("W2", NOW + timedelta(minutes=30))]))
    pipeline.run_once()
    got = by_person(pipeline, ids)
    assert got["A"] == [("alert", "delivered"), ("update", "delivered"), ("cancel", "delivered")]
    assert got["B"] == [("alert", "delivered"), ("update", "delivered"), ("cancel", "delivered")]
    assert got["D"] == [("alert", "delivered"), ("cancel", "delivered")]  # first told by the update
    assert "C" not in got
    with session_scope(pipeline.engine) as s:
        threads = list(s.exec(select(AlertThread)))
        assert len(threads) == 1 and threads[0].state == "cancelled"
        texts = [d.text for d in deliveries(s) if d.kind == "update"]
        assert all("풍랑 경보" in t or "[풍랑 경보]" in t for t in texts)
    pipeline.close()


def test_test_and_exercise_are_stored_never_sent(setup: Callable[[], Pipeline], tmp_path: Path) -> None:
    pipeline = setup()
    people(pipeline)
    publish(tmp_path, cap_xml("T1", sent=NOW, zones=["S1251100"], status="Test"))
    pipeline.run_once()
    with session_scope(pipeline.engine) as s:
        record = s.exec(select(AlertRecord)).one()
        assert record.skip_reason and record.skip_reason.startswith("status Test")
        assert deliveries(s) == []
    pipeline.close()


def test_expired_alert_is_never_sent(setup: Callable[[], Pipeline], tmp_path: Path) -> None:
    pipeline = setup()
    people(pipeline)
    publish(tmp_path, cap_xml("OLD", sent=NOW - timedelta(hours=5), zones=["S1251100"],
                              expires=NOW - timedelta(hours=1)))
    pipeline.run_once()
    with session_scope(pipeline.engine) as s:
        assert deliveries(s) == []
        assert s.exec(select(AlertThread)).one().state == "expired"
    pipeline.close()


def test_cancel_before_sending_suppresses_and_tells_nobody(setup: Callable[[], Pipeline], tmp_path: Path) -> None:
    pipeline = setup()
    ids = people(pipeline)
    publish(tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    pipeline.poll(pipeline_spec(pipeline))
    pipeline.match()  # queued, not yet dispatched
    publish(tmp_path, cap_xml("W1C", sent=NOW + timedelta(minutes=5), zones=["S1251100"], msg_type="Cancel",
                              references=[("W1", NOW)]))
    pipeline.run_once()
    assert by_person(pipeline, ids) == {"A": [("alert", "suppressed")], "B": [("alert", "suppressed")]}
    pipeline.close()


def test_late_older_version_is_stored_but_not_sent(setup: Callable[[], Pipeline], tmp_path: Path) -> None:
    pipeline = setup()
    ids = people(pipeline)
    publish(tmp_path, cap_xml("W2", sent=NOW + timedelta(minutes=30), zones=["S1251100"], msg_type="Update",
                              references=[("W1", NOW)]))
    pipeline.run_once()
    publish(tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    pipeline.run_once()
    got = by_person(pipeline, ids)
    assert got == {"A": [("alert", "delivered")], "B": [("alert", "delivered")]}
    with session_scope(pipeline.engine) as s:
        assert len(list(s.exec(select(AlertThread)))) == 1
        w1 = s.exec(select(AlertRecord).where(AlertRecord.identifier == "W1")).one()
        assert w1.skip_reason and w1.skip_reason.startswith("superseded")
    pipeline.close()


def test_unsubscribed_person_gets_nothing(setup: Callable[[], Pipeline], tmp_path: Path) -> None:
    pipeline = setup()
    ids = people(pipeline)
    with session_scope(pipeline.engine) as s:
        person = s.get(Subscriber, ids["A"])
        assert person is not None
        person.status = "unsubscribed"
        s.add(person)
    publish(tmp_path, cap_xml("W1", sent=NOW, zones=["S1251100"]))
    pipeline.run_once()
    assert set(by_person(pipeline, ids)) == {"B"}
    pipeline.close()


def pipeline_spec(pipeline: Pipeline):  # type: ignore[no-untyped-def]
    from alerts.pipeline import feed_spec

    return feed_spec(pipeline.config.feeds[0])
