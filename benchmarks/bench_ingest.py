"""Benchmark: ingesting 10,000 KMA-style alerts (store + identity dedup + threading) into a fresh database.

Prints medians of a few runs, each on a fresh SQLite file created by the shipped Alembic migration:
- alerts.ingest.ingest, parse-free: canonical alerts (each with a KMA_ZONE geocode and a thread_key; some
  Updates/Cancels referencing earlier versions; some duplicates within and across polls) fed in polls of
  ``--batch`` alerts, one transaction per poll as the pipeline does;
- "parse + store + dedup": the same alerts as CAP 1.2 XML bytes, each through feeds.cap.CapParser, then
  ingest (CAP has no thread_key: these thread by <references>);
- the naive baseline measured in the same run: one ORM ``session.add`` + ``commit`` per alert (identity
  dedup by the unique constraint, no threading at all), on the first ``--naive`` alerts.
With ``--postgres`` the parse-free figure is also measured on a throwaway PostgreSQL server
(tests/pgserver.py; needs initdb/pg_ctl on the machine).

Run: .venv/bin/python benchmarks/bench_ingest.py [--alerts 10000] [--batch 500] [--runs 3] [--postgres]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import subscribers.all_models  # noqa: E402, F401  (every table, so the migration's metadata is complete)
from alerts.db import make_engine, upgrade  # noqa: E402
from alerts.ingest import ingest  # noqa: E402
from alerts.models import AlertRecord, AlertThread  # noqa: E402
from feeds.cap import CapParser  # noqa: E402
from feeds.model import KMA_ZONE, Alert, Area, Info, Reference, to_utc  # noqa: E402

GOAL_PER_S = 10_000
SENDER = "kma@kma.go.kr"
HAZARDS = [("풍랑", "Moderate"), ("강풍", "Moderate"), ("호우", "Severe"), ("태풍", "Extreme")]
ZONES = [f"S12{n:02d}{m}00" for n in range(10, 60) for m in (1, 2)]  # 100 sea zones
START = datetime(2026, 1, 1, tzinfo=UTC)


def make_stream(count: int, seed: int = 7) -> tuple[list[Alert], int]:
    """``count`` distinct alerts in sent order, plus re-sent copies; returns (stream, distinct count).

    Each warning (zone, hazard) goes 발표 (Alert) -> a few 변경/연장 (Update, referencing the previous
    version) -> 해제 (Cancel); about one alert in twenty is sent again (same identity) later.
    """
    rng = random.Random(seed)
    live: dict[str, Alert] = {}
    distinct: list[Alert] = []
    for n in range(count):
        zone, (hazard, severity) = rng.choice(ZONES), rng.choice(HAZARDS)
        key = f"kma:{zone}:{hazard}"
        sent = START + timedelta(minutes=n)
        previous = live.get(key)
        msg_type = "Alert" if previous is None else "Cancel" if rng.random() < 0.35 else "Update"
        alert = Alert(
            sender=SENDER, identifier=f"kma-{zone}-{hazard}-{n:06d}", sent=sent, msg_type=msg_type,
            source="bench", thread_key=key,
            references=[Reference(previous.sender, previous.identifier, previous.sent)] if previous else [],
            infos=[Info(event=f"{hazard}주의보", category=["Met"], urgency="Expected", severity=severity,
                        certainty="Likely", language="ko-KR", headline=f"{zone} {hazard}주의보",
                        description="바람이 10~16m/s로 강하게 불고 물결이 2~4m로 매우 높게 일겠습니다.",
                        areas=[Area(desc=f"zone {zone}", geocodes={KMA_ZONE: [zone]})])],
        )
        if msg_type == "Cancel":
            live.pop(key, None)
        else:
            live[key] = alert
        distinct.append(alert)
    stream: list[Alert] = []
    for n, alert in enumerate(distinct):
        stream.append(alert)
        if n % 20 == 5:
            stream.append(distinct[rng.randrange(max(0, n - 700), n + 1)])  # re-sent: same poll or a later one
    return stream, len(distinct)


def cap_bytes(alert: Alert) -> bytes:
    """The alert as a CAP 1.2 document (thread_key is not CAP: these alerts thread by references)."""
    info = alert.infos[0]
    refs = " ".join(f"{r.sender},{r.identifier},{r.sent.isoformat()}" for r in alert.references)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>{alert.identifier}</identifier><sender>{alert.sender}</sender>"
        f"<sent>{alert.sent.isoformat()}</sent><status>Actual</status><msgType>{alert.msg_type}</msgType>"
        "<scope>Public</scope>" + (f"<references>{refs}</references>" if refs else "") +
        f"<info><language>ko-KR</language><category>Met</category><event>{escape(info.event)}</event>"
        f"<urgency>Expected</urgency><severity>{info.severity}</severity><certainty>Likely</certainty>"
        f"<headline>{escape(info.headline or '')}</headline><description>{escape(info.description or '')}"
        f"</description><area><areaDesc>{escape(info.areas[0].desc)}</areaDesc><geocode>"
        f"<valueName>{KMA_ZONE}</valueName><value>{info.areas[0].geocodes[KMA_ZONE][0]}</value></geocode>"
        "</area></info></alert>"
    ).encode("utf-8")


@dataclass
class Outcome:
    seconds: float
    stored: int
    duplicates: int


def fresh_engine(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    return engine


def run_ingest(engine: Engine, polls: Sequence[Sequence[Alert]] | Sequence[Sequence[bytes]],
               parse: bool = False) -> Outcome:
    """Every poll in its own transaction, as the pipeline does; with ``parse`` the poll holds CAP bytes."""
    parser = CapParser()
    stored = duplicates = 0
    started = time.perf_counter()
    now = START + timedelta(days=30)
    for poll in polls:
        alerts = ([a for data in poll for a in parser.parse(data).alerts] if parse  # type: ignore[arg-type]
                  else list(poll))  # type: ignore[arg-type]
        with Session(engine, expire_on_commit=False) as session:
            report = ingest(session, alerts, feed="bench", now=now)
            session.commit()
        stored += len(report.new_ids)
        duplicates += report.duplicates
    return Outcome(time.perf_counter() - started, stored, duplicates)


def run_naive(engine: Engine, alerts: Sequence[Alert]) -> Outcome:
    """The baseline: one ORM insert and one commit per alert; a duplicate is an IntegrityError rolled back."""
    stored = duplicates = 0
    now = START + timedelta(days=30)
    started = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        for alert in alerts:
            first = alert.infos[0]
            session.add(AlertRecord(
                sender=alert.sender, identifier=alert.identifier, sent=to_utc(alert.sent), status=alert.status,
                msg_type=alert.msg_type, scope=alert.scope, event=first.event, severity=alert.max_severity(),
                urgency=alert.max_urgency(), headline=first.headline, feed="bench", end_time=alert.end_time(),
                received_at=now, body=alert.to_json()))
            try:
                session.commit()
                stored += 1
            except IntegrityError:
                session.rollback()
                duplicates += 1
    return Outcome(time.perf_counter() - started, stored, duplicates)


def check(engine: Engine, distinct: int) -> None:
    """The figures count only if the work was done: every distinct alert stored once, and threaded."""
    with Session(engine) as session:
        records = session.exec(select(func.count()).select_from(AlertRecord)).one()
        unthreaded = session.exec(select(func.count()).select_from(AlertRecord)
                                  .where(col(AlertRecord.thread_id).is_(None))).one()
        threads = session.exec(select(func.count()).select_from(AlertThread)).one()
    assert records == distinct and unthreaded == 0, (records, distinct, unthreaded)
    assert 0 < threads < distinct, threads


def measure(label: str, runs: int, make_url: Callable[[int], str], job: Callable[[Engine], Outcome],
            distinct: int | None) -> float:
    rates, outcome = [], None
    for run in range(runs):
        engine = fresh_engine(make_url(run))
        outcome = job(engine)
        if distinct is not None:
            check(engine, distinct)
        engine.dispose()
        rates.append(outcome.stored / outcome.seconds)
    rate = statistics.median(rates)
    assert outcome is not None
    print(f"  {label:<44} {rate:9,.0f} alerts/s  (median of {runs}; last run {outcome.seconds:.2f} s, "
          f"{outcome.stored} stored, {outcome.duplicates} duplicates)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="alerts per poll (one transaction each)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive", type=int, default=2_000, help="alerts in the naive baseline's sample")
    parser.add_argument("--postgres", action="store_true", help="also measure on a throwaway PostgreSQL")
    args = parser.parse_args()

    stream, distinct = make_stream(args.alerts)
    polls = [stream[i:i + args.batch] for i in range(0, len(stream), args.batch)]
    xml_polls = [[cap_bytes(a) for a in poll] for poll in polls]
    # The 10,000 input alerts and documents live through the whole run; in the service a poll's alerts are
    # garbage after their transaction. Freezing them keeps the collector from rescanning the benchmark's own
    # fixtures on every collection (~20% of the measured time otherwise), for every variant alike.
    gc.collect()
    gc.freeze()
    workdir = Path(tempfile.mkdtemp(prefix="alimcast-bench-ingest-"))

    def sqlite_url(tag: str) -> Callable[[int], str]:
        return lambda run: f"sqlite:///{workdir / f'{tag}-{run}.db'}"

    print(f"ingest: {distinct} distinct KMA-style alerts + {len(stream) - distinct} re-sent copies, "
          f"polls of {args.batch}, SQLite (WAL, synchronous=NORMAL)")
    fast = measure("ingest (store + dedup + threading)", args.runs, sqlite_url("fast"),
                   lambda e: run_ingest(e, polls), distinct)
    parsed = measure("parse CAP bytes + ingest", args.runs, sqlite_url("parse"),
                     lambda e: run_ingest(e, xml_polls, parse=True), distinct)
    naive = measure(f"naive baseline: ORM add+commit per alert ({args.naive})", args.runs, sqlite_url("naive"),
                    lambda e: run_naive(e, stream[:args.naive]), None)
    print(f"  ratio ingest / naive baseline: {fast / naive:.1f}x")
    # The issue states the goal for "ingest (parse + store + dedup)": both readings are printed.
    for label, rate in (("store + dedup + threading", fast), ("parse + store + dedup + threading", parsed)):
        print(f"  goal {GOAL_PER_S:,} alerts/s, {label}: {'met' if rate >= GOAL_PER_S else 'NOT met'} "
              f"({rate:,.0f}/s)")

    if args.postgres:
        sys.path.insert(0, str(ROOT / "tests"))
        from pgserver import PgServer

        server = PgServer()
        if server.available:
            print(f"PostgreSQL skipped: {server.available}")
            return
        server.start()
        try:
            print("PostgreSQL (throwaway server, fsync=off):")
            pg_fast = measure("ingest (store + dedup + threading)", args.runs,
                              lambda run: server.create_database(f"bench_fast_{run}"),
                              lambda e: run_ingest(e, polls), distinct)
            pg_naive = measure(f"naive baseline: ORM add+commit per alert ({args.naive})", args.runs,
                               lambda run: server.create_database(f"bench_naive_{run}"),
                               lambda e: run_naive(e, stream[:args.naive]), None)
            print(f"  ratio ingest / naive baseline: {pg_fast / pg_naive:.1f}x")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
