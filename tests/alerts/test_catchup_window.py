"""The running job's catch-up reads each change once: a bulk import is not caught up again on every tick.

Found profiling ``alimcast run`` workers on PostgreSQL: after a CSV import, every tick of every worker read the
whole import again from the change log (its overlap never moved while no newer change came) and re-inserted
everyone, each insert ignored, holding the dispatcher's lock for seconds. Observable here: a person's row
removed by hand after the catch-up is not queued again by later ticks (nothing new was read), but it is once
a new change for that person appears, also one written "late" (an id below the newest one already read).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alimcast_testkit import cap_xml, config_text
from sqlalchemy import text
from sqlmodel import Session

from alerts.catchup import catch_up_new
from alerts.config import load_config
from alerts.db import session_scope
from alerts.pipeline import Pipeline, zone_name
from subscribers.sqltypes import utcnow
from subscribers.store import add_subscriber


def test_each_change_is_caught_up_once_and_a_late_one_still_is(db_url: str, tmp_path: Path) -> None:
    feed = tmp_path / "w.cap.xml"
    feed.write_bytes(cap_xml("KMA-WINDOW-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    path = tmp_path / "window.toml"
    path.write_text(config_text(db_url, [("kma", "cap", str(feed))]), encoding="utf-8")
    pipeline = Pipeline(load_config(path))
    try:
        pipeline.run_once()
        with session_scope(pipeline.engine) as session:
            first = add_subscriber(session, "010-7800-0001", ["S1251100"], consent_source="web").id
            add_subscriber(session, "010-7800-0002", ["S1251100"], consent_source="web")
        assert pipeline.match().queued == 2

        def forget(person: int | None) -> None:
            with pipeline.engine.begin() as conn:
                conn.execute(text("DELETE FROM delivery WHERE subscriber_id = :s"), {"s": person})

        forget(first)
        assert pipeline.match().queued == 0  # the change was read already: not read (nor queued) again
        assert pipeline.match().queued == 0

        def change(person: int | None, row_id: int) -> None:
            with pipeline.engine.begin() as conn:
                stamp = conn.execute(text("SELECT max(changed_at) FROM subscription_change")).scalar_one()
                conn.execute(text("INSERT INTO subscription_change (id, subscriber_id, changed_at) "
                                  "VALUES (:id, :s, :t)"), {"id": row_id, "s": person, "t": stamp})

        with pipeline.engine.begin() as conn:
            top = int(conn.execute(text("SELECT max(id) FROM subscription_change")).scalar_one())
        change(first, top + 100)
        assert pipeline.match().queued == 1  # a new change: read, the person queued again
        forget(first)
        change(first, top + 50)  # a change that commits late: its id is below the newest one already read
        assert pipeline.match().queued == 1
        assert pipeline.match().queued == 0

        # a match that fails after reading a change: the change is read again by the next one
        with session_scope(pipeline.engine) as session:
            third = add_subscriber(session, "010-7800-0003", ["S1251100"], consent_source="web").id
        with Session(pipeline.engine) as session:
            assert catch_up_new(session, pipeline.config, pipeline.audience, now=utcnow(),
                                zone_name=zone_name).queued == 1
            session.rollback()
        assert pipeline.match().queued == 1
        with pipeline.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM delivery WHERE subscriber_id = :s"),
                                {"s": third}).scalar_one() == 1
    finally:
        pipeline.close()
