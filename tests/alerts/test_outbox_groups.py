"""The outbox written a group at a time (alerts.outbox_write), through the real pipeline on both engines: a row
per person in subscriber order, each with the text of their language and their hold, and a group written again
queues nobody twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from alimcast_testkit import cap_xml
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
