"""Several real ``alimcast run`` processes on one PostgreSQL database and one loopback NHN account.

Shared by the multi-worker tests (tests/alerts/test_workers_*.py) and benchmarks/chaos.py: a fan-out is
queued in this process (CSV import, poll, match), then the workers send it; everything is counted on the
provider's side (the loopback server), never taken from the workers' own reports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from alimcast_testkit import TEMPLATES, cap_xml, config_text

from alerts.config import load_config
from alerts.pipeline import Pipeline, feed_spec
from alerts.testing.nhn_server import NhnTestServer
from subscribers.csv_import import import_csv


class Worker:
    """``alimcast run`` in a subprocess; its log is read in a thread (kept for failure messages)."""

    def __init__(self, cfg: Path, env: dict[str, str], name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen([sys.executable, "-m", "alerts.cli", "run", "--config", str(cfg)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.running = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "alimcast running" in line:
                self.running.set()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def tail(self, lines: int = 15) -> str:
        return f"--- {self.name} (pid {self.proc.pid}, rc {self.proc.poll()}) ---\n" + "".join(self.lines[-lines:])


class Fleet:
    """The account (a loopback server limited to ``rate`` recipients per second, as configured), a queued
    fan-out of ``people`` recipients on ``db_url``, and the workers sending it."""

    def __init__(self, work: Path, db_url: str, srv: NhnTestServer, *, rate: int, extra: str = "",
                 poll_seconds: float = 60) -> None:
        self.work = work
        self.srv = srv
        self.rate = rate
        self.feed = work / "feed.xml"
        text = config_text(db_url, [("kma", "cap", str(self.feed))], provider="nhn", base_url=srv.base_url,
                           extra=extra)
        # retry_attempts = 1: a 429 must reach the dispatcher (and be counted), not be retried inside the adapter
        text = text.replace("rate_per_second = 1000", f"rate_per_second = {rate}\nretry_attempts = 1")
        text = text.replace("interval_seconds = 60", f"interval_seconds = {poll_seconds:g}")
        self.cfg = work / "config.toml"
        self.cfg.write_text(text, encoding="utf-8")
        self.env = {**os.environ, "T_APP_KEY": srv.app_key, "T_SECRET_KEY": srv.secret_key,
                    "T_SENDER_KEY": srv.sender_key}
        self.workers: list[Worker] = []
        self.phones: list[str] = []

    def queue(self, people: int, identifier: str = "FLEET-1") -> None:
        """Migrate, import ``people`` subscribers, ingest one warning for their zone and match it."""
        for key in ("T_APP_KEY", "T_SECRET_KEY", "T_SENDER_KEY"):
            os.environ[key] = self.env[key]
        csv = self.work / "people.csv"
        self.phones = [f"0105{i:07d}" for i in range(people)]
        with csv.open("w", encoding="utf-8") as out:
            out.write("phone,name,zones,min_severity\n")
            out.writelines(f"{p},p{i},S1251100,\n" for i, p in enumerate(self.phones))
        pipeline = Pipeline(load_config(self.cfg))
        try:
            assert import_csv(pipeline.engine, csv).inserted == people
            self.feed.write_bytes(cap_xml(identifier, sent=datetime.now(UTC).replace(microsecond=0),
                                          zones=["S1251100"]))
            pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
            assert pipeline.match().queued == people
        finally:
            pipeline.close()
            pipeline.engine.dispose()

    def start(self, count: int) -> list[Worker]:
        started = [Worker(self.cfg, self.env, f"worker-{len(self.workers) + i}") for i in range(count)]
        self.workers.extend(started)
        return started

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.alive]

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()

    # -- counted on the provider's side ---------------------------------------------------------
    def delivered(self) -> Counter[str]:
        """Accepted messages per phone number."""
        return Counter(m.recipient_no for m in self.srv.messages)

    def wait_all_sent(self, timeout: float, *, during: Callable[[], None] | None = None) -> float:
        """Wait until every phone got a message; returns when the last one arrived (monotonic)."""
        deadline = time.monotonic() + timeout
        while len(self.delivered()) < len(self.phones):
            if during is not None:
                during()
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.delivered())} of {len(self.phones)} sent after {timeout:.0f} s\n"
                                     + "\n".join(w.tail() for w in self.workers))
            time.sleep(0.1)
        return time.monotonic()

    def achieved_rate(self) -> float:
        """Recipients over the time from the first arrival to one second after the last (the server's view)."""
        arrivals = sorted(self.srv.arrivals())
        if not arrivals:
            return 0.0
        return sum(n for _, n in arrivals) / (arrivals[-1][0] + 1.0 - arrivals[0][0])


def limited_server(limit: int) -> NhnTestServer:
    return NhnTestServer(templates={code: text for code, text in TEMPLATES.values()}, account_limit_per_second=limit)
