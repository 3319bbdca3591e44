"""The foreground job: it polls on its interval, sends, and stops cleanly on SIGTERM and Ctrl-C;
on PostgreSQL only one of several workers polls the feeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alimcast_testkit import cap_xml, config_text
from sqlmodel import select

from alerts.db import make_engine, session_scope, upgrade
from alerts.leader import PollingLease
from alerts.models import Delivery


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_polls_sends_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    feed = tmp_path / "w.xml"
    feed.write_bytes(cap_xml("RUN-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    db = tmp_path / "a.db"
    extra = ('[dispatch]\ninterval_seconds = 0.5\n\n[[demo.subscribers]]\nphone = "010-2000-0001"\n'
             'zones = ["S1251100"]\n')
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(f"sqlite:///{db}", [("w", "cap", str(feed))], extra=extra), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "alerts.cli", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        delivered = False
        while time.monotonic() < deadline and not delivered:
            time.sleep(0.5)
            if db.exists():
                engine = make_engine(f"sqlite:///{db}")
                try:
                    with session_scope(engine) as s:
                        delivered = any(d.status == "delivered" for d in s.exec(select(Delivery)))
                except Exception:  # noqa: BLE001 - tables may not exist yet
                    delivered = False
                engine.dispose()
        assert delivered, "the running job never delivered the warning"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in err
    assert "Traceback" not in err


def test_only_one_worker_holds_the_polling_lease(pg_url: str) -> None:
    engine_a, engine_b = make_engine(pg_url), make_engine(pg_url)
    upgrade(engine_a)
    a, b = PollingLease(engine_a), PollingLease(engine_b)
    assert a.held() and not b.held()
    assert a.held()  # still ours
    a.release()
    assert b.held() and not a.held()
    b.release()
    engine_a.dispose()
    engine_b.dispose()


def test_sqlite_is_always_its_own_leader(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert PollingLease(engine).held() and PollingLease(engine).held()
    engine.dispose()


def test_leader_takeover_when_the_holder_dies(pg_url: str) -> None:
    """The lease lives on a connection: when the holding process dies, another worker takes over."""
    code = ("import sys,time; from alerts.db import make_engine; from alerts.leader import PollingLease;"
            "l=PollingLease(make_engine(sys.argv[1])); print(l.held(), flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        engine = make_engine(pg_url)
        lease = PollingLease(engine)
        assert not lease.held()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 20
        while not lease.held() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lease.held()
        lease.release()
        engine.dispose()
    finally:
        if holder.poll() is None:
            holder.kill()
