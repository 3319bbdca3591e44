"""A warning for a crowded zone: 40,000 people, then its update (tens of thousands of ids per
statement): each person queued exactly once per version, through the real import and pipeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alimcast_testkit import cap_xml
from sqlalchemy import func
from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.models import Delivery
from alerts.pipeline import Pipeline, feed_spec
from subscribers.csv_import import import_csv

PEOPLE = 40_000


def test_crowded_zone_alert_and_update(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    csv = tmp_path / "people.csv"
    with csv.open("w", encoding="utf-8") as out:
        out.write("phone,name,zones,min_severity\n")
        for i in range(PEOPLE):
            out.write(f"0105{i:07d},p{i},S1251100,\n")
    feed = tmp_path / "w.xml"
    pipeline = Pipeline(load_config(write_config(f"sqlite:///{tmp_path / 'a.db'}", [("w", "cap", str(feed))])))
    report = import_csv(pipeline.engine, csv)
    assert report.inserted == PEOPLE and not report.errors
    t0 = datetime.now(UTC).replace(microsecond=0)
    spec = feed_spec(pipeline.config.feeds[0])
    feed.write_bytes(cap_xml("BIG-1", sent=t0, zones=["S1251000"]))  # the 앞바다 group
    pipeline.poll(spec, force=True)
    first = pipeline.match()
    assert first.queued == PEOPLE
    feed.write_bytes(cap_xml("BIG-2", sent=t0 + timedelta(minutes=5), zones=["S1251000"], msg_type="Update",
                             references=[("BIG-1", t0)]))
    pipeline.poll(spec, force=True)
    second = pipeline.match()
    # Nobody was told about BIG-1 yet, so BIG-2 replaces it for everyone: 40,000 suppressed, 40,000 queued.
    assert second.suppressed == PEOPLE and second.queued == PEOPLE
    with session_scope(pipeline.engine) as s:
        per_status = dict(s.exec(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        people = s.exec(select(func.count(func.distinct(Delivery.subscriber_id)))).one()
    assert per_status == {"suppressed": PEOPLE, "queued": PEOPLE} and people == PEOPLE
    pipeline.close()
