"""Benchmark: several ``alimcast run`` workers on one provider account (issue 11), on a throwaway PostgreSQL.

For each ``--workers`` count, a fan-out of ``--seconds`` of the rate is queued and sent by that many real
``alimcast run`` processes to the loopback NHN account whose limit equals the configured rate (429 over it,
counted on arrival per rolling second). Printed, all counted on the provider's side: the achieved rate
(recipients over the time from the first arrival to one second after the last) and its ratio to the
configured rate (goal: >= 0.95), the worst rolling second (goal: <= rate), 429s (goal: 0), duplicates
(goal: 0). The single-worker run is the same-run baseline.

Run: .venv/bin/python benchmarks/bench_workers_rate.py [--workers 1,2,4,8] [--rate 1000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fleet import Fleet, limited_server  # noqa: E402
from pgserver import PgServer  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from alerts.delivery.shared_rate import KEEP_SECONDS  # noqa: E402


def request_latency(url: str) -> float | None:
    """Mean seconds from a request's place being taken to its answer, over the reservations still kept: each
    recipient holds its place that long plus one second, so one account reaches at most rate/(1 + this)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(text("SELECT avg(extract(epoch FROM ended_at - started_at)) FROM send_reservation "
                                      "WHERE ended_at IS NOT NULL")).scalar()
    finally:
        engine.dispose()
    return None if value is None else float(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    pg = PgServer()
    if reason := pg.available:
        print(f"cannot start PostgreSQL: {reason}")
        return 2
    pg.start()
    ok = True
    try:
        for i, count in enumerate(int(c) for c in args.workers.split(",")):
            url = pg.create_database(f"rate{i}")
            people = int(args.rate * args.seconds)
            with tempfile.TemporaryDirectory() as tmp, limited_server(args.rate) as srv:
                fleet = Fleet(Path(tmp), url, srv, rate=args.rate)
                fleet.queue(people, f"RATE-{i}")
                fleet.start(count)
                own = time.process_time()
                started = time.monotonic()
                try:
                    fleet.wait_all_sent(args.seconds * 4 + 120)
                    wall = time.monotonic() - started
                    latency = request_latency(url)
                    cpu = [w.cpu_seconds() for w in fleet.workers]
                    load = os.getloadavg()[0]
                finally:
                    fleet.stop_all()
                delivered = fleet.delivered()
                achieved = fleet.achieved_rate()
                dups = sum(v - 1 for v in delivered.values())
                print(f"{count} worker(s): {people} recipients, achieved {achieved:.0f}/s = "
                      f"{achieved / args.rate:.3f} of {args.rate}/s; worst second {srv.max_recipients_per_second()}; "
                      f"429s {srv.rate_refusals}; duplicates {dups}; lost {people - len(delivered)}", flush=True)
                # what limits it: the rule (CPU to spare) or the CPU (2 cores shared: workers + PostgreSQL +
                # this process's loopback provider + whatever else runs on the machine)
                print(f"    CPU s over {wall:.1f} s wall (start-up included): workers "
                      f"{' '.join(f'{c:.1f}' for c in cpu)} (sum {sum(cpu):.1f}), loopback provider + bench "
                      f"{time.process_time() - own:.1f}; load average {load:.1f} on {os.cpu_count()} CPUs",
                      flush=True)
                if latency is not None:
                    print(f"    requests' mean time in flight (send_reservation, last {KEEP_SECONDS} s): "
                          f"{latency * 1000:.0f} ms: the rule's ceiling rate/(1 + latency) = "
                          f"{args.rate / (1 + latency):.0f}/s", flush=True)
                ok = ok and srv.rate_refusals == 0 and dups == 0 and achieved >= 0.95 * args.rate
    finally:
        pg.stop()
    print("goals:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
