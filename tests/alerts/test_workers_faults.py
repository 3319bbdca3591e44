"""Several real workers through faults: a PostgreSQL restart mid-fan-out and a worker killed with kill -9.

Counted on the loopback provider's side: every recipient exactly once, zero 429s, no rolling second over the
account's rate, and no worker restarted by hand (each reconnects by itself). The worker registry shows the
live workers and exactly one poller, and the polling lease moves to another worker once the poller dies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet import Fleet, limited_server  # noqa: E402
from pgserver import PgServer  # noqa: E402

from alerts.db import make_engine  # noqa: E402
from alerts.workers import fleet_status  # noqa: E402


def status_json(fleet: Fleet) -> dict:  # type: ignore[type-arg]
    out = subprocess.run([sys.executable, "-m", "alerts.cli", "workers", "status", "--json", "--config",
                          str(fleet.cfg)], capture_output=True, text=True, env=fleet.env, timeout=60, check=True)
    return json.loads(out.stdout)


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_workers_survive_a_database_restart_and_a_killed_worker(tmp_path: Path, pg_server: PgServer,
                                                                pg_url: str) -> None:
    rate, people = 200, 1600
    with limited_server(rate) as srv:
        fleet = Fleet(tmp_path, pg_url, srv, rate=rate, poll_seconds=1)
        fleet.queue(people)
        workers = fleet.start(3)
        engine = make_engine(pg_url)
        try:
            wait_until(lambda: all(w.running.is_set() for w in workers), 90, "three running workers")
            wait_until(lambda: len(fleet.delivered()) >= 200, 60, "the fan-out to start")

            def one_poller() -> bool:
                # the poller says so at its next heartbeat, which a quick start of the fan-out may precede
                status = status_json(fleet)
                alive = [w for w in status["workers"] if w["state"] == "alive"]
                assert sum(w["polls"] for w in alive) <= 1, status
                return len(alive) == 3 and sum(w["polls"] for w in alive) == 1

            wait_until(one_poller, 30, "three alive workers, one of them polling")
            before = len(fleet.delivered())
            pg_server.restart(down_seconds=1.0)  # every worker's connections drop mid-fan-out
            wait_until(lambda: len(fleet.delivered()) >= before + 200, 60, "sending to go on after the restart")
            # the restart dropped the polling lease with every connection: a worker takes it again at its next poll
            pollers: list[int] = []

            def poller_known() -> bool:
                pollers[:] = [w["pid"] for w in status_json(fleet)["workers"] if w["polls"] and w["state"] == "alive"]
                return bool(pollers)

            wait_until(poller_known, 60, "a worker to hold the polling lease after the restart")
            poller_pid = pollers[0]
            poller = next(w for w in workers if w.proc.pid == poller_pid)
            poller.kill9()
            killed_at = time.monotonic()
            # another worker takes the polling lease at its next poll (1 s here), and says so in its heartbeat
            wait_until(lambda: any(w.polls and w.pid != poller_pid and w.state == "alive"
                                   for w in fleet_status(engine).workers), 15, "the polling lease to move")
            print(f"polling lease moved {time.monotonic() - killed_at:.1f} s after the poller was killed")
            fleet.wait_all_sent(120)
            assert all(w.alive for w in workers if w is not poller), "\n".join(w.tail() for w in workers)
        finally:
            fleet.stop_all()
            engine.dispose()
        delivered = fleet.delivered()
        assert len(delivered) == people and max(delivered.values()) == 1
        assert srv.rate_refusals == 0, "\n".join(w.tail() for w in fleet.workers)
        assert srv.max_recipients_per_second() <= rate
