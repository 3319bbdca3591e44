"""Chaos in full (issue 11): three ``alimcast run`` workers on a throwaway PostgreSQL, a 50,000-recipient fan-out
to the loopback NHN account limited to ``--rate`` recipients per second, and meanwhile: ``--kills`` kill -9 of
random workers (each restarted at once), one PostgreSQL restart, the provider injecting 5xx, 429s, timeouts and
lost answers. Counted on the provider's side and printed: lost, duplicates, 429s from the account's limit, the
worst rolling second, the time from the last fault to the last recipient (goal: 0, 0, 0, <= rate, <= 60 s).
Bounded: every wait has a deadline; exits 1 when a goal is missed.

Run: .venv/bin/python benchmarks/chaos.py [--people 50000] [--rate 1000] [--workers 3] [--kills 4]
     [--fault-seconds 30] [--seed N]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fleet import Fleet, limited_server, run_chaos  # noqa: E402
from pgserver import PgServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--fault-seconds", type=float, default=30)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    pg = PgServer()
    if reason := pg.available:
        print(f"cannot start PostgreSQL: {reason}")
        return 2
    pg.start()
    try:
        url = pg.create_database("chaos")
        with tempfile.TemporaryDirectory() as tmp, limited_server(args.rate) as srv:
            fleet = Fleet(Path(tmp), url, srv, rate=args.rate, timeout=3)
            try:
                report = run_chaos(fleet, args.people, workers=args.workers, kills=args.kills,
                                   fault_seconds=args.fault_seconds,
                                   restart_database=lambda: pg.restart(down_seconds=2), rng=random.Random(seed),
                                   timeout=args.people / args.rate * 4 + 300)
            finally:
                fleet.stop_all()
    finally:
        pg.stop()
    print(f"chaos: seed {seed}, {args.workers} workers, rate {args.rate}/s")
    for line in report.lines():
        print("  " + line)
    ok = (report.delivered == args.people and report.duplicates == 0 and report.rate_refusals == 0
          and report.worst_second <= args.rate and report.last_fault_to_done <= 60)
    print("  goals:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
