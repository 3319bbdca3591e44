"""Benchmark: the cost of a ``/metrics`` scrape as the delivery table grows (issue 11), SQLite and PostgreSQL.

The outbox holds ``--rows`` delivery rows: all final (delivered, fallback_sent, failed, suppressed) but
``--live`` of them (queued, sending, accepted), as after a few national fan-outs. Timed, each the median of
``--runs``:

* the old scrape's queries: deliveries GROUP BY status over the whole table, alerts counted, the queue by
  priority (the baseline, what every scrape cost before);
* a cold scrape (``exposition``; the process's first, reads the whole-table figures once);
* a warm scrape (the figures cached; only the rows not final yet are read, from the status index): the cost
  every scrape pays, which should not grow with the table.

Run: .venv/bin/python benchmarks/bench_metrics_scrape.py [--rows 1000000] [--live 10000] [--runs 7]
     [--no-sqlite] [--no-postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from alimcast_testkit import cap_xml, config_text  # noqa: E402
from pgserver import PgServer  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from alerts import metrics  # noqa: E402
from alerts.config import load_config  # noqa: E402
from alerts.pipeline import Pipeline, feed_spec  # noqa: E402
from subscribers.csv_import import import_csv  # noqa: E402

#: Final statuses of the filled rows, in turn (rows not final are queued, sending and accepted in turn).
FINAL = ("delivered", "delivered", "delivered", "fallback_sent", "failed", "suppressed")
LIVE = ("queued", "queued", "sending", "accepted")


def fill(work: Path, url: str, rows: int, live: int) -> Pipeline:
    """One subscriber, one warning matched (one outbox row), then ``rows`` copies of that row (each its own
    reminder number, as the outbox's unique key wants), statuses set in turn."""
    feed = work / f"feed-{abs(hash(url))}.xml"
    cfg = work / f"config-{abs(hash(url))}.toml"
    cfg.write_text(config_text(url, [("kma", "cap", str(feed))]), encoding="utf-8")
    pipeline = Pipeline(load_config(cfg))
    people = work / "people.csv"
    people.write_text("phone,name,zones,min_severity\n01050000001,p,S1251100,\n", encoding="utf-8")
    import_csv(pipeline.engine, people)
    feed.write_bytes(cap_xml("SCRAPE-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    assert pipeline.match().queued == 1
    final = "CASE g % {n} {cases} END".format(
        n=len(FINAL), cases=" ".join(f"WHEN {i} THEN '{s}'" for i, s in enumerate(FINAL)))
    live_case = "CASE g % {n} {cases} END".format(
        n=len(LIVE), cases=" ".join(f"WHEN {i} THEN '{s}'" for i, s in enumerate(LIVE)))
    series = ("generate_series(1, :n) AS s(g)" if pipeline.engine.dialect.name == "postgresql" else
              "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n) SELECT g FROM s)")
    columns = [c.name for c in metrics.Delivery.__table__.columns if c.name not in ("id", "status", "reminder_seq")]
    with pipeline.engine.begin() as conn:
        conn.execute(text(
            f"INSERT INTO delivery ({', '.join(columns)}, status, reminder_seq) "
            f"SELECT {', '.join('d.' + c for c in columns)}, "
            f"CASE WHEN g <= :live THEN {live_case} ELSE {final} END, g "
            f"FROM delivery d, {series}"), {"n": rows - 1, "live": live})
    with pipeline.engine.begin() as conn:
        conn.execute(text("ANALYZE" if pipeline.engine.dialect.name == "postgresql" else "ANALYZE"))
    return pipeline


def old_scrape(engine: Engine) -> None:
    """The queries every scrape ran before: the whole table grouped by status."""
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM alert")).all()
        conn.execute(text("SELECT priority, count(*) FROM delivery WHERE status = 'queued' GROUP BY priority")).all()
        conn.execute(text("SELECT status, count(*) FROM delivery GROUP BY status")).all()


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(name: str, pipeline: Pipeline, rows: int, live: int, runs: int) -> None:
    engine = pipeline.engine
    old = median_ms(lambda: old_scrape(engine), runs)
    colds = []
    for _ in range(runs):
        metrics.forget_cached(engine)
        started = time.perf_counter()
        metrics.exposition(engine)
        colds.append(time.perf_counter() - started)
    cold = statistics.median(colds) * 1000
    warm = median_ms(lambda: metrics.exposition(engine), runs * 3)
    print(f"{name}: {rows:,} delivery rows ({live:,} not final): old scrape {old:.1f} ms; "
          f"cold scrape {cold:.1f} ms; warm scrape {warm:.1f} ms = {old / warm:.1f}x faster than the old",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--live", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.no_sqlite:
            for rows in sorted({args.rows // 10, args.rows}):
                pipeline = fill(work, f"sqlite:///{work / f'scrape-{rows}.db'}", rows, args.live)
                try:
                    measure("SQLite", pipeline, rows, args.live, args.runs)
                finally:
                    pipeline.close()
        if not args.no_postgres:
            pg = PgServer()
            if reason := pg.available:
                print(f"PostgreSQL skipped: {reason}")
                return 0
            pg.start()
            try:
                for rows in sorted({args.rows // 10, args.rows}):
                    pipeline = fill(work, pg.create_database(f"scrape{rows}"), rows, args.live)
                    try:
                        measure("PostgreSQL", pipeline, rows, args.live, args.runs)
                    finally:
                        pipeline.close()
            finally:
                pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
