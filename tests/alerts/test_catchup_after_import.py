"""A large import while warnings are live: a worker that starts afterwards catches the newcomers up in bulk, each
of them once, never with a warning already lifted (해제), never against their preferences or consent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alimcast_testkit import cap_xml
from sqlalchemy import func
from sqlmodel import Session, col, select

from alerts.catchup import catch_up_people
from alerts.config import load_config
from alerts.models import AlertRecord, Delivery
from alerts.pipeline import Pipeline, feed_spec
from subscribers import store
from subscribers.csv_import import import_csv
from subscribers.models import Subscriber

PEOPLE = 20_000
REMOVED = 25


def _phone(i: int) -> str:
    return f"0107{i:07d}"


def test_a_worker_catches_up_twenty_thousand_imported_people_once_each(
        tmp_path: Path, write_config: Callable[..., Path]) -> None:
    live, lifted = tmp_path / "live.xml", tmp_path / "lifted.xml"
    cfg = load_config(write_config(f"sqlite:///{tmp_path / 'a.db'}", [("live", "cap", str(live)),
                                                                      ("lifted", "cap", str(lifted))]))
    pipeline = Pipeline(cfg)
    base = tmp_path / "base.csv"
    base.write_text("phone,name,zones,min_severity\n" + "".join(f"0105{i:07d},b{i},S1251100,\n" for i in range(10)),
                    encoding="utf-8")
    import_csv(pipeline.engine, base)
    t0 = datetime.now(UTC).replace(microsecond=0)
    live.write_bytes(cap_xml("LIVE-1", sent=t0, zones=["S1251100"], expires=t0 + timedelta(days=1)))
    lifted.write_bytes(cap_xml("GONE-1", sent=t0, zones=["S1252010"], expires=t0 + timedelta(days=1)))
    for spec in pipeline.config.feeds:
        pipeline.poll(feed_spec(spec), force=True)
    assert pipeline.match().queued == 10  # the live warning's first audience; nobody in S1252010 yet
    lifted.write_bytes(cap_xml("GONE-2", sent=t0 + timedelta(minutes=1), zones=["S1252010"], msg_type="Cancel",
                               references=[("GONE-1", t0)]))
    pipeline.poll(feed_spec(pipeline.config.feeds[1]), force=True)
    pipeline.match()  # the 해제: that warning is over

    # The newcomers: a quarter in the live warning's zone, a quarter in the lifted one's, a quarter in the live
    # zone but wanting only Severe warnings (this one is Moderate), a quarter elsewhere.
    rows = []
    for i in range(PEOPLE):
        zone, severity = [("S1251100", ""), ("S1252010", ""), ("S1251100", "Severe"), ("L1010200", "")][i % 4]
        rows.append(f"{_phone(i)},n{i},{zone},{severity}\n")
    people = tmp_path / "people.csv"
    people.write_text("phone,name,zones,min_severity\n" + "".join(rows), encoding="utf-8")
    assert import_csv(pipeline.engine, people).inserted == PEOPLE
    with Session(pipeline.engine) as s:  # some withdraw their consent before any worker runs
        for i in range(0, 4 * REMOVED, 4):
            store.remove(s, _phone(i))
        s.commit()
    pipeline.close()

    worker = Pipeline(cfg, migrate=False)  # a worker starting after the import
    caught = worker.match()
    expected = PEOPLE // 4 - REMOVED
    assert caught.queued == expected
    assert worker.match().queued == 0  # its next tick re-reads the same changes: nothing twice
    assert catch_up_people(worker.engine, cfg, since=t0).queued == 0  # nor the import command's own catch-up

    with Session(worker.engine) as s:
        live_id = s.exec(select(AlertRecord.id).where(AlertRecord.identifier == "LIVE-1")).one()
        rows_per_person = s.exec(select(Delivery.subscriber_id, func.count()).group_by(Delivery.subscriber_id)).all()
        assert all(n == 1 for _, n in rows_per_person)
        newcomers = set(s.exec(select(Subscriber.phone).join(Delivery, col(Delivery.subscriber_id) == Subscriber.id)
                               .where(Delivery.alert_id == live_id, col(Subscriber.phone).like("0107%"))))
        assert newcomers == {_phone(i) for i in range(4 * REMOVED, PEOPLE, 4)}
        gone = s.exec(select(func.count()).select_from(Delivery).join(AlertRecord)
                      .where(col(AlertRecord.identifier).like("GONE-%"))).one()
        assert gone == 0

    sent = 0
    while True:  # and they are sent, once each
        step = worker.dispatch()
        sent += step.accepted
        if step.requests == 0:
            break
    assert sent == expected + 10
    assert worker.match().queued == 0 and worker.dispatch().accepted == 0
    worker.close()
