"""Benchmark (issue 11): the catch-up after a large import — live warnings reach the people just imported.

A SQLite database created by the shipped migrations holds ``--base`` subscribers and ``--alerts`` live,
already-sent warnings (sea and land groups, each reaching a few percent of everyone); then ``--people``
newcomers are imported by ``subscribers.csv_import`` (the realistic zone mix of ``bench_zone_match``). A worker
that starts now catches them up: the people the change log lists since ``START_WINDOW`` are matched against
every live warning and queued.

Timed on copies of the same database, same people, same warnings, median of ``--runs``:
- before: the previous algorithm (this repository before the change, inlined here as the baseline): the whole
  audience of each warning with everyone's preferences, filtered to the newcomers, and every row handed to the
  outbox's INSERT ... ON CONFLICT DO NOTHING;
- after: ``alerts.catchup.catch_up`` (the audience restricted to the newcomers before preferences are read,
  people already queued for the version left out first).
Both must queue the same (warning, person) rows; a second call (the running job's overlap re-reads the same
changes) is timed too, and must queue nothing.

Run: .venv/bin/python benchmarks/bench_catchup.py [--base 200000] [--people 50000] [--alerts 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.append(str(ROOT / "tests"))  # after the checkout: tests/alerts must not shadow the package

from alimcast_testkit import cap_xml, config_text  # noqa: E402
from bench_zone_match import write_csv  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

from alerts.audience import Audience  # noqa: E402
from alerts.catchup import START_WINDOW, catch_up  # noqa: E402
from alerts.config import Config, load_config  # noqa: E402
from alerts.db import session_scope  # noqa: E402
from alerts.fanout import FanoutReport, Target, _queue, _skip_reason, _take_matching_turn  # noqa: E402
from alerts.models import AlertRecord, AlertThread  # noqa: E402
from alerts.pipeline import Pipeline, feed_spec, zone_name  # noqa: E402
from feeds.model import Alert  # noqa: E402
from subscribers import zones  # noqa: E402
from subscribers.csv_import import import_csv  # noqa: E402
from subscribers.models import SubscriptionChange  # noqa: E402

WARNINGS = [["S1200000"], ["S1300000"], ["L1010000"], ["L1050000"], ["S1100000"], ["L1070000"], ["L1020000"]]


def previous_catch_up(session: Session, config: Config, audience: Audience, subscriber_ids: Collection[int], *,
                      now: datetime) -> FanoutReport:
    """The baseline: ``alerts.catchup.catch_up`` as it was before this change (whole audience, then filtered)."""
    report = FanoutReport()
    wanted = set(subscriber_ids)
    _take_matching_turn(session)
    live = session.exec(select(AlertThread, AlertRecord)
                        .join(AlertRecord, col(AlertRecord.id) == col(AlertThread.current_alert_id))
                        .where(AlertThread.state == "active", col(AlertRecord.matched_at).is_not(None),
                               AlertRecord.msg_type != "Cancel")).all()
    for thread, record in live:
        if _skip_reason(record, thread, now) is not None:
            continue
        alert = Alert.from_json(record.body)
        found = audience.recipients(session, alert, config.zone_value_names, at=now)
        targets = [Target(r.subscriber_id, "alert", r.decision.until) for r in found
                   if r.subscriber_id in wanted and r.decision.action != "skip"]
        queued = _queue(session, record, thread, alert, targets, config, zone_name, created_at=now)
        if queued:
            report.alerts += 1
            report.queued += queued
    return report


def newcomers_csv(path: Path, people: int, seed: int = 7) -> None:
    """People unlike the base file's (other phones), zones drawn the same way."""
    rng = random.Random(seed)
    leaves = [z.code for z in zones.list_zones() if zones.is_leaf(z.code)]
    with path.open("w", encoding="utf-8") as handle:
        handle.write("phone,name,zones,min_severity\n")
        for i in range(people):
            picks = rng.sample(leaves, 1 if rng.random() < 0.6 else 2)
            handle.write(f"0109{i:07d},N{i},{' '.join(picks)},{rng.choice(['', '', 'Minor', 'Severe'])}\n")


def prepare(work: Path, base: int, people: int, alerts: int) -> Path:
    """The database just after the import; returns its file."""
    db = work / "template.db"
    feeds = [(f"kma{i}", "cap", str(work / f"feed{i}.xml")) for i in range(alerts)]
    cfg = work / "template.toml"
    cfg.write_text(config_text(f"sqlite:///{db}", feeds), encoding="utf-8")
    pipeline = Pipeline(load_config(cfg))
    try:
        write_csv(work / "base.csv", base)
        import_csv(pipeline.engine, work / "base.csv")
        sent = datetime.now(UTC).replace(microsecond=0)
        for i in range(alerts):
            (work / f"feed{i}.xml").write_bytes(cap_xml(f"CATCHUP-{i}", sent=sent, zones=WARNINGS[i % len(WARNINGS)],
                                                        expires=sent + timedelta(days=2)))
            pipeline.poll(feed_spec(pipeline.config.feeds[i]), force=True)
        first = pipeline.match()
        print(f"{base:,} people, {alerts} live warnings sent to {first.queued:,} of them", flush=True)
        newcomers_csv(work / "new.csv", people)
        started = time.perf_counter()
        report = import_csv(pipeline.engine, work / "new.csv")
        print(f"imported {report.inserted:,} newcomers in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        pipeline.close()
        pipeline.engine.dispose()
    return db


def run_on_copy(work: Path, template: Path, name: str,
                step: Callable[[Session, Config, Audience, list[int], datetime], FanoutReport],
                ) -> tuple[float, float, set[tuple[int, int]], int]:
    db = work / f"{name}.db"
    shutil.copyfile(template, db)
    cfg = work / f"{name}.toml"
    cfg.write_text((work / "template.toml").read_text(encoding="utf-8").replace(str(template), str(db)),
                   encoding="utf-8")
    pipeline = Pipeline(load_config(cfg), migrate=False)
    try:
        engine = pipeline.engine
        with Session(engine) as s:  # what catch_up_new reads at a worker's start
            newest = s.exec(select(SubscriptionChange.changed_at).order_by(col(SubscriptionChange.id).desc())).first()
            assert newest is not None
            ids = list(s.exec(select(SubscriptionChange.subscriber_id).distinct()
                              .where(col(SubscriptionChange.changed_at) >= newest - START_WINDOW.total_seconds())))
            before = s.execute(text("SELECT count(*) FROM delivery")).scalar_one()
        seconds = []
        for _ in range(2):
            audience = Audience(engine, buffer_nm=pipeline.config.vessel_buffer_nm,
                                stale_after=timedelta(hours=pipeline.config.vessel_stale_after_hours))
            started = time.perf_counter()
            with session_scope(engine) as session:
                report = step(session, pipeline.config, audience, ids, datetime.now(UTC))
            seconds.append(time.perf_counter() - started)
            if len(seconds) == 2:
                assert report.queued == 0, f"{name}: the second call queued {report.queued}"
        with Session(engine) as s:
            rows = {(a, p) for a, p in s.execute(text("SELECT alert_id, subscriber_id FROM delivery"))}
            assert s.execute(text("SELECT count(*) FROM delivery")).scalar_one() == len(rows)  # once each
        return seconds[0], seconds[1], rows, len(rows) - before
    finally:
        pipeline.close()
        pipeline.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=200_000)
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--alerts", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_catchup_"))
    work.mkdir(parents=True, exist_ok=True)
    template = prepare(work, args.base, args.people, args.alerts)

    def before(session: Session, config: Config, audience: Audience, ids: list[int], now: datetime) -> FanoutReport:
        return previous_catch_up(session, config, audience, ids, now=now)

    def after(session: Session, config: Config, audience: Audience, ids: list[int], now: datetime) -> FanoutReport:
        return catch_up(session, config, audience, ids, now=now, zone_name=zone_name)

    results: dict[str, list[tuple[float, float, set[tuple[int, int]], int]]] = {"before": [], "after": []}
    for run in range(args.runs):
        for name, step in (("before", before), ("after", after)):
            results[name].append(run_on_copy(work, template, f"{name}-{run}", step))
            first, again, _, queued = results[name][-1]
            print(f"  run {run + 1} {name:<6}: {first:.2f} s, queued {queued:,}; second call {again:.2f} s", flush=True)
    assert results["before"][0][2] == results["after"][0][2], "before and after queued different rows"
    b = statistics.median(r[0] for r in results["before"])
    a = statistics.median(r[0] for r in results["after"])
    b2 = statistics.median(r[1] for r in results["before"])
    a2 = statistics.median(r[1] for r in results["after"])
    queued = results["after"][0][3]
    print(f"catch-up of {args.people:,} imported people, {args.alerts} live warnings, {args.base:,} others, "
          f"{queued:,} messages queued (the same rows both ways), median of {args.runs}:")
    print(f"  before {b:.2f} s, after {a:.2f} s: {b / a:.1f}x faster")
    print(f"  second call (nothing left to queue): before {b2:.2f} s, after {a2:.2f} s")


if __name__ == "__main__":
    main()
