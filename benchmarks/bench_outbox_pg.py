"""Benchmark (PostgreSQL, issue 11): the outbox written for a national fan-out, and claiming + marking sent with
several workers against one.

1. Outbox write: ``--people`` subscribers in one zone, one warning matched (``Pipeline.match``) right after
   their import: rows written per second (goal: 100,000 rows/s); and the same for a second warning matched by
   the same pipeline, as a worker that has been running meets it (the import's change log already read).
   Printed with the number of rows and the seconds, and beside it the same
   code's write in the same run on the schema of migration 0021 (the person's foreign key checked row by row),
   measured first: a reference under the same load (the write is one connection's, so not a worker count).
2. Claim + mark sent: the same outbox dispatched by the dry-run provider (no network, rate far above what
   the database allows, so the database is what is measured) by 1 process, then by ``--workers`` processes
   at once, each on a fresh copy of the queue: deliveries per second and the ratio against the single worker
   of the same run (goal: 10,000 deliveries/s with 4 workers). The shared send window (one reservation
   transaction per batch) is part of what is measured.

Run: .venv/bin/python benchmarks/bench_outbox_pg.py [--people 100000] [--workers 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from alimcast_testkit import cap_xml, config_text  # noqa: E402
from pgserver import PgServer  # noqa: E402

from alerts.config import load_config  # noqa: E402
from alerts.db import make_engine, upgrade  # noqa: E402
from alerts.pipeline import Pipeline, feed_spec  # noqa: E402
from subscribers.csv_import import import_csv  # noqa: E402

#: The schema before the person's key was checked per statement (migration 0022): a same-run reference.
FK_SCHEMA = "0021"


def write_config(work: Path, url: str) -> Path:
    text = config_text(url, [("kma", "cap", str(work / "feed.xml"))])
    text = text.replace("rate_per_second = 1000", "rate_per_second = 10000000\nbatch_size = 1000")
    cfg = work / f"config-{abs(hash(url))}.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


def server_cpu(pg: PgServer) -> float:
    """CPU seconds (user + system) used so far by the server's running processes (Linux /proc; 0 elsewhere):
    on a busy machine the CPU a write costs says more than its wall time."""
    try:
        postmaster = (pg.data / "postmaster.pid").read_text().split()[0]
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if fields[1] == postmaster:
                    total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return 0.0


@dataclass(slots=True)
class Write:
    """One outbox write: rows, wall seconds, and the CPU seconds of the client and of the server."""

    rows: int
    seconds: float
    client_cpu: float
    server_cpu: float

    def line(self) -> str:
        return (f"{self.rows} rows in {self.seconds:.2f} s = {self.rows / self.seconds:,.0f} rows/s "
                f"(CPU: client {self.client_cpu:.2f} s, server {self.server_cpu:.2f} s)")


def prepare(work: Path, url: str, people: int, schema: str = "head", pg: PgServer | None = None,
            *, running: bool = False) -> tuple[Path, Write]:
    """Subscribers imported, the warning ingested, matched; returns (config, the write). ``schema``: the
    migration the database is brought to (an older one for a same-run reference). ``running``: the write timed
    is a second warning's (another hazard, the same people), as a worker that has been running meets it: the
    first warning's match, untimed, has read the import's change log into the zone index and warmed the
    connection and the planner's caches; the timed write is the same size."""
    cfg = write_config(work, url)
    if schema != "head":
        engine = make_engine(url)
        upgrade(engine, schema)
        engine.dispose()
    csv = work / "people.csv"
    if not csv.exists():
        with csv.open("w", encoding="utf-8") as out:
            out.write("phone,name,zones,min_severity\n")
            out.writelines(f"0105{i:07d},p{i},S1251100,\n" for i in range(people))
    pipeline = Pipeline(load_config(cfg), migrate=schema == "head")
    try:
        import_csv(pipeline.engine, csv)
        (work / "feed.xml").write_bytes(cap_xml("BENCH-1", sent=datetime.now(UTC).replace(microsecond=0),
                                                zones=["S1251100"]))
        pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
        if running:
            assert pipeline.match().queued == people
            (work / "feed.xml").write_bytes(cap_xml("BENCH-2", sent=datetime.now(UTC).replace(microsecond=0),
                                                    zones=["S1251100"], event="태풍주의보"))
            pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
        server = server_cpu(pg) if pg is not None else 0.0
        client = time.process_time()
        started = time.perf_counter()
        queued = pipeline.match().queued
        seconds = time.perf_counter() - started
        return cfg, Write(queued, seconds, time.process_time() - client,
                          server_cpu(pg) - server if pg is not None else 0.0)
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
    parser.add_argument("--repeat", type=int, default=3, help="outbox writes of each schema (median printed)")
    args = parser.parse_args()
    pg = PgServer()
    if reason := pg.available:
        print(f"cannot start PostgreSQL: {reason}")
        return 2
    pg.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
            now: list[Write] = []
            before: list[Write] = []
            running: list[Write] = []
            for i in range(args.repeat):  # interleaved: all see the same load
                _, ref = prepare(work, pg.create_database(f"fk{i}"), args.people, schema=FK_SCHEMA, pg=pg)
                cfg1, write = prepare(work, pg.create_database(f"one{i}"), args.people, pg=pg)
                _, warm = prepare(work, pg.create_database(f"run{i}"), args.people, pg=pg, running=True)
                before.append(ref)
                now.append(write)
                running.append(warm)
                print(f"  run {i + 1}: outbox write {write.line()}; a running worker's second warning "
                      f"{warm.line()}; schema {FK_SCHEMA}: {ref.line()}", flush=True)
            mid = median(w.seconds for w in now)
            ref_mid = median(w.seconds for w in before)
            rows = now[0].rows
            print(f"outbox write: {rows} rows, median of {args.repeat}: {mid:.2f} s = {rows / mid:,.0f} rows/s "
                  f"(goal 100,000 rows/s; the whole match, audience included); server CPU median "
                  f"{median(w.server_cpu for w in now):.2f} s", flush=True)
            warm_mid = median(w.seconds for w in running)
            print(f"  a running worker's second warning (the same people, the import's change log already read): "
                  f"median {warm_mid:.2f} s = {running[0].rows / warm_mid:,.0f} rows/s, server CPU median "
                  f"{median(w.server_cpu for w in running):.2f} s", flush=True)
            print(f"  same run, schema {FK_SCHEMA} (the person's key checked per row): median {ref_mid:.2f} s = "
                  f"{before[0].rows / ref_mid:,.0f} rows/s, server CPU median "
                  f"{median(w.server_cpu for w in before):.2f} s; now {ref_mid / mid:.2f}x that", flush=True)
            print(f"load average after the writes: {os.getloadavg()[0]:.2f}", flush=True)
            cfg4, _ = prepare(work, pg.create_database("many"), args.people)
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
