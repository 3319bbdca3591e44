"""Benchmark: a pushed warning against a polled one, from the moment it exists to the provider's acceptance.

The real job runs as ``alimcast run`` (a subprocess: scheduler, new-alert watcher, dispatch loop) against
the loopback NHN server (alerts/testing/nhn_server.py); ``alimcast serve``'s app (``create_app``) runs in this
process under uvicorn on a free loopback port. Each trial, in the same run:

- push: an Extreme 지진해일경보 is POSTed to ``/push/vts`` (bearer token); measured from the POST to the first
  accepted recipient of that warning at the provider (goal: < 1 s);
- polled: the same kind of warning is written into a feed file polled every ``--interval`` seconds; measured
  from the write to the first accepted recipient (the baseline: on average half an interval later).

Printed: median and worst of each, and their ratio.

Run: .venv/bin/python benchmarks/bench_push.py [--trials 7] [--interval 5] [--people 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from alimcast_testkit import TEMPLATES, cap_xml, config_text  # noqa: E402

from alerts.config import load_config  # noqa: E402
from alerts.db import make_engine, session_scope, upgrade  # noqa: E402
from alerts.feedstate import DbFeedStateStore  # noqa: E402
from alerts.testing.nhn_server import NhnTestServer  # noqa: E402
from alerts.web.app import create_app  # noqa: E402
from subscribers.store import add_subscriber  # noqa: E402

TOKEN = "bench-push-token"
PUSH_ZONE, POLL_ZONE = "S1251100", "S1251200"


def warning(identifier: str, zone: str) -> bytes:
    sent = datetime.now(UTC).replace(microsecond=0)
    return cap_xml(identifier, sent=sent, zones=[zone], event="지진해일경보", severity="Extreme",
                   urgency="Immediate", expires=sent + timedelta(hours=2), sender="vts@bench.example")


def first_accepted(srv: NhnTestServer, phones: set[str], before: int, started: float, timeout: float) -> float:
    """Seconds from ``started`` until a message to one of ``phones`` beyond the first ``before`` is accepted."""
    deadline = started + timeout
    while time.monotonic() < deadline:
        if sum(1 for m in srv.messages if m.recipient_no in phones) > before:
            return time.monotonic() - started
        time.sleep(0.005)
    raise TimeoutError("no acceptance within the timeout")


def serve(app: object) -> tuple[uvicorn.Server, str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--interval", type=float, default=5.0, help="the polled feed's interval (seconds)")
    parser.add_argument("--people", type=int, default=50, help="subscribers in each warned zone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, NhnTestServer(
            templates={code: text for code, text in TEMPLATES.values()}) as srv:
        work = Path(tmp)
        feed = work / "kma.xml"
        feed.write_bytes(warning("POLL-START", "S1251400"))  # a zone nobody follows
        text = config_text(f"sqlite:///{work / 'a.db'}", [], provider="nhn", base_url=srv.base_url, extra=f'''
[[feeds]]
name = "kma"
kind = "cap"
url = "{feed}"
interval_seconds = {args.interval}

[[feeds]]
name = "vts"
kind = "cap"
url = "push:"
interval_seconds = 60
push = {{ auth = "token", secret = "env:BENCH_PUSH_TOKEN" }}
''')
        (work / "config.toml").write_text(text, encoding="utf-8")
        env = {**os.environ, "T_APP_KEY": srv.app_key, "T_SECRET_KEY": srv.secret_key,
               "T_SENDER_KEY": srv.sender_key, "BENCH_PUSH_TOKEN": TOKEN}
        os.environ.update(env)
        config = load_config(work / "config.toml")
        engine = make_engine(config.database_url)
        upgrade(engine)
        push_people, poll_people = set(), set()
        with session_scope(engine) as session:
            for i in range(args.people):
                push_people.add(add_subscriber(session, f"0105{i:07d}", [PUSH_ZONE]).phone)
                poll_people.add(add_subscriber(session, f"0106{i:07d}", [POLL_ZONE]).phone)
        job = subprocess.Popen([sys.executable, "-m", "alerts.cli", "run", "--config", str(work / "config.toml")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        server, url = serve(create_app(config, engine=engine))
        pushed: list[float] = []
        polled: list[float] = []
        try:
            # the job is up (first poll done), and one warm-up push has gone through: not counted
            states = DbFeedStateStore(engine)
            deadline = time.monotonic() + 120
            while states.get("kma").last_success_at is None and time.monotonic() < deadline:
                time.sleep(0.05)
            httpx.post(f"{url}/push/vts", content=warning("PUSH-WARMUP", PUSH_ZONE),
                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            first_accepted(srv, push_people, 0, time.monotonic(), 60)
            for trial in range(args.trials):
                before = sum(1 for m in srv.messages if m.recipient_no in push_people)
                started = time.monotonic()
                answer = httpx.post(f"{url}/push/vts", content=warning(f"PUSH-{trial}", PUSH_ZONE),
                                    headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
                assert answer.status_code == 202, answer.text
                pushed.append(first_accepted(srv, push_people, before, started, 30))

                before = sum(1 for m in srv.messages if m.recipient_no in poll_people)
                started = time.monotonic()
                feed.write_bytes(warning(f"POLL-{trial}", POLL_ZONE))
                polled.append(first_accepted(srv, poll_people, before, started, args.interval * 4 + 30))
                print(f"trial {trial + 1}: push {pushed[-1]:.3f} s, polled {polled[-1]:.3f} s", flush=True)
        finally:
            job.terminate()
            job.wait(20)
            server.should_exit = True
    print(f"\npush   (POST -> first accepted):        median {statistics.median(pushed):.3f} s, "
          f"worst {max(pushed):.3f} s (goal < 1 s)")
    print(f"polled (file written -> first accepted): median {statistics.median(polled):.3f} s, "
          f"worst {max(polled):.3f} s (interval {args.interval:g} s)")
    print(f"ratio push/polled (medians): {statistics.median(pushed) / statistics.median(polled):.2f}")


if __name__ == "__main__":
    main()
