"""Chaos, short form (the full one is benchmarks/chaos.py): three real workers, kill -9 of random workers and
their restart, one PostgreSQL restart, the loopback provider injecting 5xx, 429s, timeouts and lost answers.

Counted on the provider's side: nobody lost, nobody twice, the account's rate never exceeded in any rolling
second (and so zero 429s from the account's limit), everything sent within 60 s of the last fault. Bounded:
it stops by itself (a deadline on every wait).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet import Fleet, limited_server, run_chaos  # noqa: E402
from pgserver import PgServer  # noqa: E402


@pytest.mark.slow
def test_chaos_short(tmp_path: Path, pg_server: PgServer, pg_url: str) -> None:
    rate, people = 300, 3000
    seed = random.randrange(1_000_000)
    with limited_server(rate) as srv:
        fleet = Fleet(tmp_path, pg_url, srv, rate=rate, timeout=2)
        try:
            report = run_chaos(fleet, people, workers=3, kills=2, fault_seconds=6,
                               restart_database=lambda: pg_server.restart(down_seconds=0.5),
                               rng=random.Random(seed), timeout=120)
        finally:
            fleet.stop_all()
    print(f"chaos seed {seed}:", *report.lines(), sep="\n  ")
    logs = "\n".join(w.tail() for w in fleet.workers)
    assert report.delivered == people and report.duplicates == 0, logs
    assert report.rate_refusals == 0 and report.worst_second <= rate, logs
    assert report.last_fault_to_done <= 60
