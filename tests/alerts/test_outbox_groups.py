"""The outbox written a group at a time (alerts.outbox_write), through the real pipeline on both engines: a row
per person in subscriber order, each with the text of their language and their hold, and a group written again
queues nobody twice."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alimcast_testkit import cap_xml
from sqlalchemy import event
from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.models import AlertRecord, Delivery
from alerts.outbox_write import RowGroup, insert_groups
from alerts.pipeline import Pipeline, feed_spec
from subscribers.store import add_subscriber

EN = '[templates.alert.en]\ncode = "ALERT_EN"\ntext = """[#{hazard} #{level}] #{action}\nZones: #{zones}"""\n'
#: 23:30 in Korea: a land warning is held for those with quiet hours
NIGHT = datetime(2026, 7, 10, 14, 30, tzinfo=UTC)


def test_group_written_outbox(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    feed = tmp_path / "w.xml"
    pipeline = Pipeline(load_config(write_config(db_url, [("w", "cap", str(feed))], extra=EN)))
    people: dict[int, tuple[str, bool]] = {}
    with session_scope(pipeline.engine) as session:
        for i in range(60):
            language = ("ko", "en", "vi")[i % 3]  # no Vietnamese template: Korean
            quiet = i % 4 == 0
            person = add_subscriber(session, f"0108{i:07d}", ["L1013710"], language=language,
                                    quiet_hours="22:00-06:00" if quiet else None)
            session.flush()
            people[person.id] = (language, quiet)  # type: ignore[index]
    feed.write_bytes(cap_xml("G-1", sent=NIGHT, zones=["L1013710"], expires=NIGHT + timedelta(days=1)))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    with session_scope(pipeline.engine) as session:  # matched at night, as the clock of the run would be
        from alerts.fanout import fan_out_pending
        from alerts.pipeline import zone_name
        report = fan_out_pending(session, pipeline.config, pipeline.audience, now=NIGHT, zone_name=zone_name)
    assert report.queued == 60 and report.held == 15
    with session_scope(pipeline.engine) as session:
        rows = session.exec(select(Delivery).order_by(Delivery.id)).all()
        record = session.exec(select(AlertRecord)).one()
        assert [r.subscriber_id for r in rows] == sorted(people)  # numbered in subscriber order
        for row in rows:
            language, quiet = people[row.subscriber_id]
            assert row.template_code == ("ALERT_EN" if language == "en" else "ALIMCAST_ALERT_01")
            english = language == "en"
            first_lines = "[High seas advisory] issued\nZones: " if english else "[풍랑 주의보] 발표\n구역: "
            assert row.text.startswith(first_lines + "파주시동북부")
            assert row.params["hazard"] == ("High seas" if english else "풍랑")
            assert row.status == "queued" and row.attempts == 0
            assert (row.next_attempt_at is not None) == quiet
            assert row.created_at == NIGHT and row.priority > 0 and row.kind == "alert"
        # written again (a fan-out run twice): nobody queued twice, and the count says so
        again = insert_groups(session.connection(), [
            RowGroup(np.array(sorted(people)), "alert", "ALIMCAST_ALERT_01", {"hazard": "x"}, "x", "SMS", None)],
            alert_id=record.id, thread_id=record.thread_id, priority=1, created_at=NIGHT)  # type: ignore[arg-type]
        assert again == 0
        assert len(session.exec(select(Delivery)).all()) == 60
    pipeline.close()


def _race_setup(pg_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> tuple[Pipeline, list[int]]:
    """A warning stored and not yet matched, for 40 people in its zone."""
    feed = tmp_path / "w.xml"
    pipeline = Pipeline(load_config(write_config(pg_url, [("w", "cap", str(feed))])))
    with session_scope(pipeline.engine) as session:
        people = [add_subscriber(session, f"0107{i:07d}", ["L1013710"]) for i in range(40)]
        session.flush()
        ids = [p.id for p in people]
    sent = datetime.now(UTC).replace(microsecond=0)
    feed.write_bytes(cap_xml("RACE-1", sent=sent, zones=["L1013710"], expires=sent + timedelta(days=1)))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    return pipeline, ids  # type: ignore[return-value]


def _other_writer(connection: Any, alert_id: int, thread_id: int, person: int) -> None:
    """Another writer's row for the person and the version (with a body of its own), not committed here."""
    body = connection.exec_driver_sql(
        "INSERT INTO delivery_message (digest, template_code, params, text, fallback_kind) "
        "VALUES ('race', 'OTHER', '{}', 'other', 'SMS') RETURNING id").scalar_one()
    connection.exec_driver_sql(
        "INSERT INTO delivery (alert_id, thread_id, subscriber_id, kind, priority, status, message_id, attempts, "
        f"created_at, reminder_seq) VALUES ({alert_id}, {thread_id}, {person}, 'alert', 1, 'sent', {body}, 1, "
        "now(), 0)")


@pytest.mark.parametrize("committed", [True, False], ids=["committed-before", "committing-while-waited-for"])
def test_a_person_queued_by_another_writer_during_the_first_write_is_left_alone(
        pg_url: str, tmp_path: Path, write_config: Callable[..., Path], committed: bool) -> None:
    """PostgreSQL writes a version's first outbox without ON CONFLICT (alerts/outbox_write.py). Another writer
    (here a second connection, as AIS or another worker's match would be) queues one of the people for the same
    version after the write looked and before its INSERT ran: committed already, or still open while the INSERT
    waits for it. Either way the key refuses the plain insert, the rows are written again with ON CONFLICT, that
    person keeps the other writer's row, and everyone else gets exactly one."""
    pipeline, ids = _race_setup(pg_url, tmp_path, write_config)
    with session_scope(pipeline.engine) as session:
        record = session.exec(select(AlertRecord)).one()
    other = pipeline.engine.connect()
    fired: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if not statement.startswith("INSERT INTO delivery (") or "ON CONFLICT" in statement or fired:
            return
        fired.append("plain")
        _other_writer(other, record.id, record.thread_id, ids[7])  # type: ignore[arg-type]
        if committed:
            other.commit()
            return

        def commit_once_waited_for() -> None:
            try:
                wait_then_commit()
            except BaseException as exc:  # surfaced by the test, not only printed by the thread
                fired.append(repr(exc))
                other.commit()

        def wait_then_commit() -> None:
            with pipeline.engine.connect() as watch:
                for _ in range(6000):  # until the INSERT waits on the other transaction (bounded: 60 s)
                    waiting = watch.exec_driver_sql(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND starts_with(query, 'INSERT INTO delivery (')").scalar_one()
                    watch.rollback()  # the activity view is a snapshot per transaction: a fresh one each time
                    if waiting:
                        break
                    threading.Event().wait(0.01)
            other.commit()

        threading.Thread(target=commit_once_waited_for, daemon=True).start()

    event.listen(pipeline.engine, "before_cursor_execute", before)
    try:
        report = pipeline.match()
    finally:
        event.remove(pipeline.engine, "before_cursor_execute", before)
        other.close()
    assert fired == ["plain"]
    assert report.queued == 39  # the 40th was the other writer's
    with session_scope(pipeline.engine) as session:
        rows = session.exec(select(Delivery.subscriber_id, Delivery.status)).all()
    assert sorted(r[0] for r in rows) == sorted(ids)  # one row each
    assert dict(rows)[ids[7]] == "sent"  # the other writer's row, left as it was
    pipeline.close()


@contextmanager
def outbox_inserts(pipeline: Pipeline) -> Iterator[list[str]]:
    """The outbox INSERTs made meanwhile, in order: "plain" or "conflict" (with ON CONFLICT)."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.startswith("INSERT INTO delivery ("):
            seen.append("conflict" if "ON CONFLICT" in statement else "plain")

    event.listen(pipeline.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(pipeline.engine, "before_cursor_execute", before)


def test_the_first_write_of_a_version_skips_on_conflict(pg_url: str, tmp_path: Path,
                                                        write_config: Callable[..., Path]) -> None:
    """The first write goes without ON CONFLICT; a write for a version that has rows goes with it."""
    pipeline, ids = _race_setup(pg_url, tmp_path, write_config)
    with outbox_inserts(pipeline) as seen:
        assert pipeline.match().queued == 40
        with session_scope(pipeline.engine) as session:
            record = session.exec(select(AlertRecord)).one()
            again = insert_groups(session.connection(), [
                RowGroup(np.array(ids), "alert", "ALIMCAST_ALERT_01", {"hazard": "x"}, "x", "SMS", None)],
                alert_id=record.id, thread_id=record.thread_id, priority=1,  # type: ignore[arg-type]
                created_at=datetime.now(UTC))
    assert again == 0
    assert seen == ["plain", "conflict"]
    pipeline.close()


def test_the_rest_of_a_warning_after_its_first_batch_also_skips_on_conflict(
        pg_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    """With a dispatch loop beside the match (``alimcast run``), a big warning's first batch is committed ahead of
    the rest (alerts/fanout.py's early hand-over); the rest are other people, so their write goes plain too (the
    look is limited to the ids being written), and everyone gets exactly one row."""
    pipeline, ids = _race_setup(pg_url, tmp_path, write_config)
    pipeline.dispatch_loop_running = True
    pipeline.dispatcher.batch_size = 10
    with outbox_inserts(pipeline) as seen:
        assert pipeline.match().queued == 40
    assert seen == ["plain", "plain"]  # the first batch, then the rest
    with session_scope(pipeline.engine) as session:
        assert sorted(session.exec(select(Delivery.subscriber_id)).all()) == sorted(ids)
    pipeline.close()
