"""Benchmark (PostgreSQL, issue 11): the outbox written for a national fan-out, and claiming + marking sent with
several workers against one.

1. Outbox write: ``--people`` subscribers in one zone, one warning matched (``Pipeline.match``): rows written
   per second (goal: 100,000 rows/s). Printed with the number of rows and the seconds.
2. Claim + mark sent: the same outbox dispatched by the dry-run provider (no network, rate far above what
   the database allows, so the database is what is measured) by 1 process, then by ``--workers`` processes
   at once, each on a fresh copy of the queue: deliveries per second and the ratio against the single worker
   of the same run (goal: 10,000 deliveries/s with 4 workers). The shared send window (one reservation
   transaction per batch) is part of what is measured.

Run: .venv/bin/python benchmarks/bench_outbox_pg.py [--people 100000] [--workers 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from alimcast_testkit import cap_xml, config_text  # noqa: E402
from pgserver import PgServer  # noqa: E402

from alerts.config import load_config  # noqa: E402
from alerts.pipeline import Pipeline, feed_spec  # noqa: E402
from subscribers.csv_import import import_csv  # noqa: E402


def write_config(work: Path, url: str) -> Path:
    text = config_text(url, [("kma", "cap", str(work / "feed.xml"))])
    text = text.replace("rate_per_second = 1000", "rate_per_second = 10000000\nbatch_size = 1000")
    cfg = work / f"config-{abs(hash(url))}.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


def prepare(work: Path, url: str, people: int) -> tuple[Path, float, int]:
    """Subscribers imported, the warning ingested; returns (config, seconds to match, rows queued)."""
    cfg = write_config(work, url)
    csv = work / "people.csv"
    if not csv.exists():
        with csv.open("w", encoding="utf-8") as out:
            out.write("phone,name,zones,min_severity\n")
            out.writelines(f"0105{i:07d},p{i},S1251100,\n" for i in range(people))
    pipeline = Pipeline(load_config(cfg))
    try:
        import_csv(pipeline.engine, csv)
        (work / "feed.xml").write_bytes(cap_xml("BENCH-1", sent=datetime.now(UTC).replace(microsecond=0),
                                                zones=["S1251100"]))
        pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
        started = time.perf_counter()
        queued = pipeline.match().queued
        return cfg, time.perf_counter() - started, queued
    finally:
        pipeline.close()
        pipeline.engine.dispose()


def _drain(cfg: str, start: mp.synchronize.Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    pipeline = Pipeline(load_config(cfg), migrate=False)
    start.wait()
    sent = 0
    while True:
        report = pipeline.dispatcher.dispatch_due(max_batches=20)
        sent += report.accepted
        if report.claimed == 0 and report.suppressed == 0:
            break
    out.put((sent, time.perf_counter()))
    pipeline.close()


def drain(cfg: Path, workers: int) -> tuple[int, float]:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_drain, args=(str(cfg), start, out)) for _ in range(workers)]
    for p in procs:
        p.start()
    time.sleep(3.0)  # let every process import and connect before the clock starts
    began = time.perf_counter()
    start.set()
    results = [out.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    return sum(r[0] for r in results), max(r[1] for r in results) - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    pg = PgServer()
    if reason := pg.available:
        print(f"cannot start PostgreSQL: {reason}")
        return 2
    pg.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            cfg1, match_s, rows = prepare(work, pg.create_database("one"), args.people)
            print(f"outbox write: {rows} rows in {match_s:.2f} s = {rows / match_s:,.0f} rows/s "
                  f"(goal 100,000 rows/s; the whole match, audience included)", flush=True)
            cfg4, _, _ = prepare(work, pg.create_database("many"), args.people)
            sent1, secs1 = drain(cfg1, 1)
            print(f"claim + mark sent, 1 worker: {sent1} in {secs1:.2f} s = {sent1 / secs1:,.0f}/s", flush=True)
            sent4, secs4 = drain(cfg4, args.workers)
            print(f"claim + mark sent, {args.workers} workers: {sent4} in {secs4:.2f} s = {sent4 / secs4:,.0f}/s "
                  f"({(sent4 / secs4) / (sent1 / secs1):.2f}x one worker; goal 10,000/s)", flush=True)
    finally:
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
