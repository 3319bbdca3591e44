"""The running job (`alimcast run`, a real process) against the loopback NHN server with an account limit:
polls keep their interval during a bulk fan-out, and a tsunami warning on another feed goes out in the middle
of it, not after it. Waits are on events (requests seen by the server) with generous timeouts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from alimcast_testkit import TEMPLATES, cap_xml, config_text

from alerts.config import load_config
from alerts.pipeline import Pipeline
from alerts.testing.nhn_server import NhnTestServer
from subscribers.csv_import import import_csv

BULK = 5000
RATE = 1000
TSUNAMI_PEOPLE = 50


def write_people(path: Path, prefix: str, count: int, zone: str) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("phone,name,zones,min_severity\n")
        for i in range(count):
            out.write(f"{prefix}{i:07d},p{i},{zone},\n")


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_tsunami_warning_does_not_wait_for_a_bulk_send(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    bulk_feed, urgent_feed = tmp_path / "bulk.xml", tmp_path / "urgent.xml"
    bulk_feed.write_bytes(cap_xml("BULK-1", sent=now, zones=["S1251100"]))
    urgent_feed.write_bytes(cap_xml("TEST-0", sent=now, zones=["S1131100"], status="Test"))  # reaches nobody
    templates = {code: text for code, text in TEMPLATES.values()}
    with NhnTestServer(templates=templates, account_limit_per_second=RATE) as srv:
        text = config_text(f"sqlite:///{tmp_path / 'a.db'}", [("bulk", "cap", str(bulk_feed)),
                                                              ("urgent", "cap", str(urgent_feed))],
                           provider="nhn", base_url=srv.base_url)
        # the urgent feed is polled every second
        head, _, tail = text.partition('name = "urgent"')
        text = head + 'name = "urgent"' + tail.replace("interval_seconds = 60", "interval_seconds = 1", 1)
        text = text.replace("rate_per_second = 1000", f"rate_per_second = {RATE}")
        cfg = tmp_path / "config.toml"
        cfg.write_text(text, encoding="utf-8")
        env = {**os.environ, "T_APP_KEY": srv.app_key, "T_SECRET_KEY": srv.secret_key,
               "T_SENDER_KEY": srv.sender_key}
        os.environ.update({k: v for k, v in env.items() if k.startswith("T_")})
        setup = Pipeline(load_config(cfg))  # migrate and add the people before the job starts
        write_people(tmp_path / "bulk.csv", "0105", BULK, "S1251100")
        write_people(tmp_path / "urgent.csv", "0106", TSUNAMI_PEOPLE, "S1131100")
        assert import_csv(setup.engine, tmp_path / "bulk.csv").inserted == BULK
        assert import_csv(setup.engine, tmp_path / "urgent.csv").inserted == TSUNAMI_PEOPLE
        setup.close()

        def bulk_requests() -> int:
            return sum(1 for r in srv.send_requests()
                       if r.http_status == 200 and str(r.body["recipientList"][0]["recipientNo"]).startswith("0105"))

        def tsunami_sent() -> bool:
            return any(m.recipient_no.startswith("0106") for m in srv.messages)

        proc = subprocess.Popen([sys.executable, "-m", "alerts.cli", "run", "--config", str(cfg)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            wait_for(lambda: bulk_requests() >= 3, 60, "the bulk send to start")
            urgent_feed.write_bytes(cap_xml("TSU-1", sent=now, zones=["S1131100"], event="지진해일경보",
                                            severity="Extreme", urgency="Immediate"))
            before = bulk_requests()
            written = time.monotonic()
            wait_for(tsunami_sent, 60, "the tsunami warning to be accepted")
            waited = time.monotonic() - written
            after = bulk_requests()
            bulk_done = sum(1 for m in srv.messages if m.recipient_no.startswith("0105"))
            wait_for(lambda: sum(1 for m in srv.messages if m.recipient_no.startswith("0105")) == BULK, 120,
                     "the bulk send to end")
            wait_for(lambda: sum(1 for m in srv.messages if m.recipient_no.startswith("0106")) == TSUNAMI_PEOPLE,
                     30, "every tsunami recipient")
            proc.terminate()
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        print(f"tsunami accepted {waited:.2f} s after the feed changed (1 s poll interval); "
              f"{after - before} bulk requests meanwhile; bulk done then: {bulk_done}/{BULK}")
        # in the middle of the fan-out, not after it: the bulk send had most of its 5 s still to go
        assert bulk_done < BULK
        # the feed is polled every second and the next claim is the tsunami's: a few eighth-second bulk
        # batches at most in between (the old job polled only after the whole bulk send)
        assert after - before <= 24  # three seconds of batches; the whole bulk send is forty
        # the feed jobs never send now; a skipped 1-second poll can still happen on a loaded machine (a poll
        # waiting for the writer lock), so it is reported, not asserted
        skipped = err.count("maximum number of running instances")
        print(f"skipped polls: {skipped}; polls of the urgent feed: {err.count('feed urgent:')}")
        assert srv.rate_refusals == 0 and srv.max_recipients_per_second() <= RATE
        assert len({m.recipient_no for m in srv.messages}) == len(srv.messages) == BULK + TSUNAMI_PEOPLE
        assert proc.returncode == 0 and "stopped cleanly" in err
