"""Real processes killed and stopped while a request is in flight.

* ``kill -9`` while the loopback server holds our request (it arrived, nothing is sent yet): a second
  ``alimcast run`` sends the batch under the same idempotency key within 10 s of being alive, and every
  recipient gets it once (the held request, when the server finally processes it, is refused as a repeat).
* SIGTERM while a request is in flight or being retried: ``alimcast run`` exits within 10 s, and the batch
  stays ``sending`` under its key (safe to re-send).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alimcast_testkit import TEMPLATES, cap_xml, config_text
from sqlmodel import select

from alerts.db import make_engine, session_scope
from alerts.models import Delivery
from alerts.testing.nhn_server import NhnTestServer

PHONES = [f"0107000000{i}" for i in range(5)]


class Job:
    """``alimcast run`` in a subprocess; its log lines are read in a thread, so a line can be waited for."""

    def __init__(self, cfg: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "alerts.cli", "run", "--config", str(cfg)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.running = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "alimcast running" in line:
                self.running.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[NhnTestServer, Path, dict[str, str]]]:
    feed = tmp_path / "w.xml"
    feed.write_bytes(cap_xml("CRASH-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    # the demo guard refuses demo people with a real provider unless told: this test means it
    subscribers = "[demo]\nallow_real_provider = true\n\n" + "".join(
        f'[[demo.subscribers]]\nphone = "{p}"\nzones = ["S1251100"]\n\n' for p in PHONES)
    with NhnTestServer(templates={code: text for code, text in TEMPLATES.values()}) as srv:
        cfg = tmp_path / "config.toml"
        cfg.write_text(config_text(f"sqlite:///{tmp_path / 'a.db'}", [("w", "cap", str(feed))], provider="nhn",
                                   base_url=srv.base_url, extra=subscribers), encoding="utf-8")
        env = {**os.environ, "T_APP_KEY": srv.app_key, "T_SECRET_KEY": srv.secret_key,
               "T_SENDER_KEY": srv.sender_key}
        yield srv, tmp_path / "a.db", env, cfg  # type: ignore[misc]


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def rows(db: Path) -> list[Delivery]:
    engine = make_engine(f"sqlite:///{db}")
    try:
        with session_scope(engine) as s:
            return list(s.exec(select(Delivery)))
    finally:
        engine.dispose()


def test_a_batch_held_by_a_killed_process_goes_out_within_ten_seconds(setup) -> None:  # type: ignore[no-untyped-def]
    srv, db, env, cfg = setup
    srv.stall_next(1, 30)  # the first request arrives and is held, unprocessed
    first = Job(cfg, env)
    try:
        assert srv.stalled.wait(60), first.log
        held_key = srv.send_requests()[0].headers["x-nc-api-idempotency-key"]
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
        assert {r.status for r in rows(db)} == {"sending"}
        second = Job(cfg, env)
        try:
            assert second.running.wait(60), second.log
            alive = time.monotonic()
            wait_for(lambda: len(srv.messages) == len(PHONES), 30, "the orphaned batch to be sent")
            took = time.monotonic() - alive
            print(f"orphaned batch sent {took:.2f} s after the second worker was running")
            assert took <= 10
            accepted = [r for r in srv.send_requests() if r.result_code == 0]
            assert len(accepted) == 1 and accepted[0].headers["x-nc-api-idempotency-key"] == held_key
            assert all(srv.sends_to(p) == 1 for p in PHONES)
            second.proc.terminate()
            second.proc.wait(timeout=15)
        finally:
            second.kill()
    finally:
        first.kill()


@pytest.mark.parametrize("trouble", ["held", "retrying"])
def test_run_stops_within_ten_seconds_of_sigterm_with_a_request_in_flight(setup, trouble: str) -> None:  # type: ignore[no-untyped-def]
    srv, db, env, cfg = setup
    if trouble == "held":
        srv.stall_next(1, 30)
    else:
        srv.fail_next(1000, status=503)  # the adapter retries the same request with backoffs
    job = Job(cfg, env)
    try:
        wait_for(lambda: len(srv.send_requests()) >= 1, 60, "the first request")
        sent = time.monotonic()
        job.proc.send_signal(signal.SIGTERM)
        job.proc.wait(timeout=30)
        took = time.monotonic() - sent
        print(f"stopped {took:.2f} s after SIGTERM ({trouble})")
        assert took <= 10, job.log
        assert job.proc.returncode == 0, job.log
        assert "Traceback" not in job.log
        # what was in flight stays under its key, to be re-sent (or reconciled) by the next start
        left = rows(db)
        assert left and all(r.status == "sending" and r.idempotency_key for r in left)
        assert len({r.idempotency_key for r in left}) == 1
        assert not srv.messages
    finally:
        job.kill()
