"""Several real ``alimcast run`` processes on one PostgreSQL database and one loopback NHN account.

Shared by the multi-worker tests (tests/alerts/test_workers_*.py) and benchmarks/chaos.py: a fan-out is
queued in this process (CSV import, poll, match), then the workers send it; everything is counted on the
provider's side (the loopback server), never taken from the workers' own reports.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
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
        self.killed = False
        self.replaced = False
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
        self.killed = True
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

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (Linux /proc; 0 once it has exited)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 15) -> str:
        return f"--- {self.name} (pid {self.proc.pid}, rc {self.proc.poll()}) ---\n" + "".join(self.lines[-lines:])


class Fleet:
    """The account (a loopback server limited to ``rate`` recipients per second, as configured), a queued
    fan-out of ``people`` recipients on ``db_url``, and the workers sending it."""

    def __init__(self, work: Path, db_url: str, srv: NhnTestServer, *, rate: int, extra: str = "",
                 poll_seconds: float = 60, timeout: float = 5) -> None:
        self.work = work
        self.srv = srv
        self.rate = rate
        self.feed = work / "feed.xml"
        text = config_text(db_url, [("kma", "cap", str(self.feed))], provider="nhn", base_url=srv.base_url,
                           extra=extra)
        # retry_attempts = 1: a 429 must reach the dispatcher (and be counted), not be retried inside the adapter
        text = text.replace("rate_per_second = 1000", f"rate_per_second = {rate}\nretry_attempts = 1")
        text = text.replace("interval_seconds = 60", f"interval_seconds = {poll_seconds:g}")
        self.timeout = timeout
        text = text.replace("timeout_seconds = 5", f"timeout_seconds = {timeout:g}")
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

    def restart_exited(self) -> None:
        """What systemd's ``Restart=always`` does: a worker that exited by itself (one that started while the
        database was down gives up with one line) is started again. Killed workers were replaced already."""
        for worker in list(self.workers):
            if not worker.alive and not worker.killed and not worker.replaced:
                worker.replaced = True
                self.start(1)

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.killed = True  # stopped on purpose: not to be restarted
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


@dataclass
class ChaosReport:
    people: int
    delivered: int
    duplicates: int
    rate_refusals: int
    worst_second: int
    faults: list[str]
    last_fault_to_done: float
    total_seconds: float
    achieved_rate: float

    def lines(self) -> list[str]:
        return [f"recipients: {self.people}, delivered once: {self.delivered}, duplicates: {self.duplicates}",
                f"429s from the account limit: {self.rate_refusals}; worst rolling second: {self.worst_second}",
                f"faults: {len(self.faults)} ({', '.join(self.faults)})",
                f"all sent {self.last_fault_to_done:.1f} s after the last fault; total {self.total_seconds:.1f} s; "
                f"achieved {self.achieved_rate:.0f}/s"]


def run_chaos(fleet: Fleet, people: int, *, workers: int, kills: int, fault_seconds: float,
              restart_database: Callable[[], None], rng: random.Random, timeout: float = 600) -> ChaosReport:
    """Queue ``people``, start ``workers``, and during the first ``fault_seconds`` of the send: ``kills``
    kill -9 of a random live worker (each restarted at once), one database restart, and the provider
    injecting 5xx, 429, timeouts and lost responses (accepted but answered too late). Then wait until
    everyone got the message and count on the provider's side."""
    fleet.queue(people, "CHAOS-1")
    started = time.monotonic()
    fleet.start(workers)
    deadline = time.monotonic() + 120
    while not fleet.delivered():
        if time.monotonic() > deadline:
            raise AssertionError("nothing sent within 120 s\n" + "\n".join(w.tail() for w in fleet.workers))
        time.sleep(0.1)
    srv = fleet.srv
    actions: list[tuple[float, str]] = [(rng.uniform(0.2, 1) * fault_seconds, "kill") for _ in range(kills)]
    actions.append((rng.uniform(0.3, 0.7) * fault_seconds, "database"))
    for kind in ("5xx", "429", "timeout", "lost"):
        actions.append((rng.uniform(0, 1) * fault_seconds, kind))
    actions.sort()
    begin = time.monotonic()
    faults: list[str] = []
    last_fault = begin
    for at, kind in actions:
        while time.monotonic() < begin + at:
            fleet.restart_exited()
            time.sleep(min(0.1, max(0.0, begin + at - time.monotonic())))
        if kind == "kill":
            live = fleet.alive()
            if live:
                victim = rng.choice(live)
                victim.kill9()
                fleet.start(1)
        elif kind == "database":
            restart_database()
        elif kind == "5xx":
            srv.fail_next(2, status=rng.choice([500, 502, 503]))
        elif kind == "429":
            srv.fail_next(1, status=429, retry_after=1)
        elif kind == "timeout":
            # processed on arrival, answered just after the client gave up (the loopback's stall_next would
            # count the request only after its hold, later than a provider counts: outside the rate's model)
            srv.delay_next(1, fleet.timeout + 0.5)
        elif kind == "lost":
            srv.delay_next(1, fleet.timeout * 3)  # processed and sent, the answer never reaches the client
        faults.append(kind)
        last_fault = time.monotonic()
    done = fleet.wait_all_sent(timeout, during=fleet.restart_exited)
    delivered = fleet.delivered()
    twice = {no for no, n in delivered.items() if n > 1}
    if twice:
        by_key: Counter[str] = Counter(str(m.sender_grouping_key) for m in srv.messages if m.recipient_no in twice)
        print("DUPLICATES by key:", dict(by_key), "phones e.g.", sorted(twice)[:3])
        for m in srv.messages:
            if m.recipient_no == min(twice):
                print("sent to", m.recipient_no, "in request", m.request_id, "under key", m.sender_grouping_key)
    return ChaosReport(people=people, delivered=sum(1 for v in delivered.values() if v == 1),
                       duplicates=sum(v - 1 for v in delivered.values() if v > 1),
                       rate_refusals=srv.rate_refusals, worst_second=srv.max_recipients_per_second(),
                       faults=faults, last_fault_to_done=done - last_fault, total_seconds=done - started,
                       achieved_rate=fleet.achieved_rate())
