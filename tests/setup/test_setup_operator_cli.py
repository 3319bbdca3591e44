"""Going from the demo to real use (issue 12), each point through the real CLI on a real SQLite file.

``alimcast run`` is started as a process (its logging is what an operator reads); the other commands go
through typer's runner on the same config and database.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alimcast_testkit import cap_xml, config_text
from rich.cells import cell_len
from typer.testing import CliRunner

from alerts.cli.app import app

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "config.toml").read_text(encoding="utf-8")
runner = CliRunner()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alerts.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def invoke(cfg: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--config", str(cfg)], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """The shipped config as an operator copies it: demo feed, demo people, dryrun."""
    path = tmp_path / "config.toml"
    path.write_text(SHIPPED, encoding="utf-8")
    return path


@pytest.fixture
def live(tmp_path: Path) -> Path:
    """A config with a warning in force for S1251100 (sent and matched by one dryrun run)."""
    feed = tmp_path / "w.cap.xml"
    feed.write_bytes(cap_xml("KMA-LIVE-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'live.db'}", [("kma", "cap", str(feed))]), encoding="utf-8")
    code, _, err = invoke(path, "run", "--once")
    assert code == 0, err
    return path


# -- --version -----------------------------------------------------------------------------------------

def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("alimcast ") and result.stdout.split()[1][0].isdigit()


# -- secrets in feed URLs ------------------------------------------------------------------------------

def test_feed_params_from_env_are_masked_in_feeds_list_status_and_logs(tmp_path: Path) -> None:
    key = "Abc123%2BSecretKey%3D%3D"
    port = dead_port()
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'k.db'}", []) + f"""
[[feeds]]
name = "kma-pwncd"
kind = "kma-pwncd"
url = "http://127.0.0.1:{port}/getPwnCd?dataType=JSON"
interval_seconds = 300
params = {{ serviceKey = "env:T_DATA_GO_KR_KEY", numOfRows = 1000 }}
""", encoding="utf-8")
    env = {"T_DATA_GO_KR_KEY": key}
    os.environ["T_DATA_GO_KR_KEY"] = key
    try:
        code, out, err = invoke(path, "feeds", "list")
        assert code == 0, err
        assert "serviceKey=***" in out and "numOfRows=1000" in out and "Abc123" not in out
        done = cli("run", "--once", "--config", str(path), env=env)  # a real process: its log as printed
        assert "Abc123" not in done.stderr + done.stdout and "serviceKey=***" in done.stderr
        code, out, _ = invoke(path, "feeds", "status", "--json")
        (row,) = json.loads(out)
        assert "Abc123" not in out and row["url"].endswith("serviceKey=***&numOfRows=1000")
        assert row["last_error"]
    finally:
        del os.environ["T_DATA_GO_KR_KEY"]


def test_a_missing_env_key_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_NOT_SET_KEY", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'k.db'}", []) + """
[[feeds]]
name = "k"
kind = "kma-pwncd"
url = "http://127.0.0.1:9/x"
params = { serviceKey = "env:T_NOT_SET_KEY" }
""", encoding="utf-8")
    code, _, err = invoke(path, "feeds", "list")
    assert code == 2 and err.strip() == ("error: config.toml: [[feeds]] k params.serviceKey: environment variable "
                                         "T_NOT_SET_KEY is not set")


# -- demo safety ---------------------------------------------------------------------------------------

def test_a_real_provider_refuses_to_start_with_the_demo(shipped: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped.write_text(SHIPPED.replace('kind = "dryrun"', 'kind = "nhn"'), encoding="utf-8")
    for name in ("ALIMCAST_NHN_APP_KEY", "ALIMCAST_NHN_SECRET_KEY", "ALIMCAST_NHN_SENDER_KEY"):
        monkeypatch.setenv(name, "x")
    code, out, err = invoke(shipped, "run", "--once")
    assert code == 2 and not out
    (line,) = err.strip().splitlines()
    assert "[[demo.subscribers]] (4 demo people)" in line and "sample-kma-pungrang" in line
    assert "allow_real_provider" in line
    assert not (shipped.parent / "alimcast-data").exists()  # refused before the database was touched
    # said explicitly: it starts (and fails to reach the fake base_url, which is not this test's point)
    shipped.write_text(SHIPPED.replace('kind = "dryrun"', 'kind = "nhn"').replace(
        "[[demo.subscribers]]", "[demo]\nallow_real_provider = true\n\n[[demo.subscribers]]", 1), encoding="utf-8")
    from alerts.config import load_config
    from alerts.demo import demo_refusal

    assert demo_refusal(load_config(shipped)) is None


def test_demo_people_are_marked_and_removed_by_one_command(shipped: Path) -> None:
    assert invoke(shipped, "run", "--once")[0] == 0
    code, out, _ = invoke(shipped, "subscribers", "add", "--phone", "010-7000-0001", "--zone", "S1251400")
    assert code == 0
    code, out, _ = invoke(shipped, "subscribers", "list")
    assert out.count("(demo)") == 4
    code, out, _ = invoke(shipped, "subscribers", "remove-demo")
    assert code == 0 and out.strip() == "removed 4 demo subscriber(s)"
    code, out, _ = invoke(shipped, "subscribers", "list", "--json", "--status", "active")
    people = json.loads(out)
    assert [p["phone"] for p in people] == ["010-7***-0001"] and not people[0]["demo"]


# -- run --once exit code, feed errors logged once, "not due yet" --------------------------------------

def test_run_once_fails_when_most_feeds_failed_and_logs_each_error_once(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    ok = tmp_path / "ok.cap.xml"
    ok.write_bytes(cap_xml("KMA-OK-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    feeds = [("ok", "cap", str(ok)), ("gone1", "cap", str(tmp_path / "missing1.xml")),
             ("gone2", "cap", str(tmp_path / "missing2.xml"))]
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'f.db'}", feeds), encoding="utf-8")
    code, _, err = invoke(path, "run", "--once")
    assert code == 3, err
    assert "2 of 3 feeds failed (gone1, gone2)" in err
    logged = [r for r in caplog.records if "missing1.xml" in r.getMessage() and r.levelname in ("WARNING", "ERROR")]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    # one failing feed of three is not "most": exit 0
    path.write_text(config_text(f"sqlite:///{tmp_path / 'f.db'}", feeds[:2] + [("ok2", "cap", str(ok))]),
                    encoding="utf-8")
    assert invoke(path, "run", "--once")[0] == 0


def test_run_once_fails_when_every_send_was_put_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = tmp_path / "w.cap.xml"
    feed.write_bytes(cap_xml("KMA-PB-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'p.db'}", [("kma", "cap", str(feed))], provider="nhn",
                                base_url=f"http://127.0.0.1:{dead_port()}").replace(
        "timeout_seconds = 5", "timeout_seconds = 2\nretry_attempts = 1\nretry_max_seconds = 1"), encoding="utf-8")
    env = {"T_APP_KEY": "a", "T_SECRET_KEY": "b", "T_SENDER_KEY": "c"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert invoke(path, "subscribers", "add", "--phone", "010-7100-0001", "--zone", "S1251100")[0] == 0
    code, out, err = invoke(path, "run", "--once")
    assert code == 3, out + err
    assert "no message was accepted" in err


def test_not_due_yet_is_not_called_retry_after() -> None:
    from feeds.poller import FeedSpec, poll_feed
    from feeds.state import FeedState, MemoryFeedStateStore

    store = MemoryFeedStateStore()
    now = datetime.now(UTC)
    spec = FeedSpec(name="f", kind="cap", url="bundled:kma_pungrang_sample.cap.xml", interval_seconds=300)
    store.save(FeedState(name="f", consecutive_failures=1, last_error="feed f: HTTP 500",
                         next_poll_at=now.replace(year=now.year + 1)))
    assert poll_feed(spec, None, store, now=now).skip_reason == "not due yet"  # type: ignore[arg-type]
    store.save(FeedState(name="f", consecutive_failures=1, last_error="feed f: HTTP 429 (Retry-After 600 s)",
                         next_poll_at=now.replace(year=now.year + 1)))
    assert poll_feed(spec, None, store, now=now).skip_reason == "waiting (Retry-After)"  # type: ignore[arg-type]


# -- new people during a live warning ------------------------------------------------------------------

def test_a_person_added_during_a_live_warning_gets_it_once(live: Path) -> None:
    code, out, err = invoke(live, "subscribers", "add", "--phone", "010-7200-0001", "--zone", "S1251100")
    assert code == 0, err
    assert "1 message(s) queued: 1 warning(s) in force" in out
    code, out, _ = invoke(live, "subscribers", "add", "--phone", "010-7200-0001", "--zone", "S1251100")
    assert "queued" not in out  # once: the outbox already has it
    code, out, _ = invoke(live, "subscribers", "add", "--phone", "010-7200-0002", "--zone", "S1251400")
    assert "queued" not in out  # not in the warned zone
    code, out, _ = invoke(live, "run", "--once")
    assert code == 0 and "1 requests, 1 accepted" in out


def test_people_imported_during_a_live_warning_get_it(live: Path, tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text("phone,name,zones\n010-7300-0001,A,S1251100;S1251200\n010-7300-0002,B,S1251400\n",
                      encoding="utf-8")
    code, out, err = invoke(live, "subscribers", "import", str(people))
    assert code == 0, err
    assert "inserted 2" in out and "1 message(s) queued" in out


def test_the_running_job_catches_up_people_written_by_others(db_url: str, tmp_path: Path) -> None:
    """The match step's hook, on SQLite and PostgreSQL: a person written straight into the database (a
    subscription page) is caught up from the trigger-kept change log, once."""
    from alerts.config import load_config
    from alerts.db import session_scope
    from alerts.pipeline import Pipeline
    from subscribers.store import add_subscriber

    feed = tmp_path / "w.cap.xml"
    feed.write_bytes(cap_xml("KMA-HOOK-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    path = tmp_path / "hook.toml"
    path.write_text(config_text(db_url, [("kma", "cap", str(feed))]), encoding="utf-8")
    pipeline = Pipeline(load_config(path))
    try:
        pipeline.run_once()
        assert pipeline.match().queued == 0  # nobody new
        with session_scope(pipeline.engine) as session:
            add_subscriber(session, "010-7400-0001", ["S1251100"], consent_source="web")
            add_subscriber(session, "010-7400-0002", ["S1251400"], consent_source="web")  # not warned there
        assert pipeline.match().queued == 1
        assert pipeline.match().queued == 0
    finally:
        pipeline.close()


# -- formats and round trips ---------------------------------------------------------------------------

def test_export_then_import_is_lossless(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'a.db'}", []), encoding="utf-8")
    other = tmp_path / "other.toml"
    other.write_text(config_text(f"sqlite:///{tmp_path / 'b.db'}", []), encoding="utf-8")
    assert invoke(path, "subscribers", "add", "--phone", "010-7500-0001", "--zone", "S1251100",
                  "--quiet-hours", "22:00-06:00", "--hazards", "풍랑", "--min-severity", "Severe",
                  "--name", "Kim, Jr.")[0] == 0
    assert invoke(path, "subscribers", "add", "--phone", "010-7500-0002",
                  "--point", "37.45,126.6,3", "--point", "35.1,129.04,2.5")[0] == 0  # point-only
    assert invoke(path, "subscribers", "add", "--phone", "010-7500-0003", "--zone", "S1251200")[0] == 0
    assert invoke(path, "vessels", "add", "--mmsi", "440123456", "--phone", "010-7500-0003")[0] == 0
    assert invoke(path, "subscribers", "pause", "--phone", "010-7500-0003")[0] == 0
    code, exported, err = invoke(path, "subscribers", "export", "-")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["phone"] for r in rows] == ["01075000001", "01075000002", "01075000003"]
    assert rows[1]["points"] == "37.45,126.6,3;35.1,129.04,2.5" and rows[2]["vessels"] == "440123456"
    file = tmp_path / "people.csv"
    file.write_text(exported, encoding="utf-8")
    code, out, err = invoke(other, "subscribers", "import", str(file))
    assert code == 0 and "inserted 3" in out and "skipped 0" in out, err
    assert invoke(other, "subscribers", "export", "-")[1] == exported
    _, before, _ = invoke(path, "subscribers", "list", "--json", "--show-phone")
    _, after, _ = invoke(other, "subscribers", "list", "--json", "--show-phone")
    strip = [{k: v for k, v in p.items() if k != "id"} for p in json.loads(before)]
    assert strip == [{k: v for k, v in p.items() if k != "id"} for p in json.loads(after)]


def test_csv_zones_may_be_separated_by_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'c.db'}", []), encoding="utf-8")
    file = tmp_path / "p.csv"
    file.write_text("phone,zones\n010-7600-0001,S1251100;S1251200\n010-7600-0002,\"S1251100, S1251400\"\n",
                    encoding="utf-8")
    code, out, err = invoke(path, "subscribers", "import", str(file))
    assert code == 0 and "inserted 2" in out and "skipped 0" in out, err
    help_text = runner.invoke(app, ["subscribers", "import", "--help"]).stdout
    assert "';'" in help_text or "';'" in " ".join(help_text.split())


def test_zones_import_refuses_unknown_codes_and_replaces_vessels(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'z.db'}", []), encoding="utf-8")
    square = [[[126.0, 37.0], [127.0, 37.0], [127.0, 38.0], [126.0, 38.0], [126.0, 37.0]]]
    geo = tmp_path / "zones.geojson"
    geo.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"WarnCode": "S9999999"}, "geometry": {"type": "Polygon",
                                                                                   "coordinates": square}},
        {"type": "Feature", "properties": {"WarnCode": "S1251100"}, "geometry": {"type": "Polygon",
                                                                                   "coordinates": square}},
    ]}), encoding="utf-8")
    assert invoke(path, "subscribers", "add", "--phone", "010-7700-0001", "--zone", "S1251400")[0] == 0
    assert invoke(path, "vessels", "add", "--mmsi", "440000001", "--phone", "010-7700-0001")[0] == 0
    fixes = tmp_path / "fix.jsonl"
    fixes.write_text(json.dumps({"mmsi": 440000001, "lat": 37.5, "lon": 126.5,
                                 "at": datetime.now(UTC).isoformat()}) + "\n", encoding="utf-8")
    code, out, err = invoke(path, "vessels", "ingest-ais", str(fixes))
    assert code == 0, err
    code, out, _ = invoke(path, "vessels", "list", "--json")
    assert "S1251100" not in out  # no outlines yet: in no zone
    code, out, err = invoke(path, "zones", "import", str(geo))
    assert code == 0
    assert "unknown zone code S9999999" in err and "1 zones imported, 1 skipped" in out
    assert "1 vessels re-checked on their stored fix: 1 zone entries" in out
    code, out, _ = invoke(path, "vessels", "list", "--json")
    assert "S1251100" in out
    code, out, _ = invoke(path, "zones", "import", str(geo), "--allow-unknown-codes")
    assert "2 zones imported, 0 skipped" in out


# -- subscribers list and rejected numbers -------------------------------------------------------------

def test_list_has_a_header_distinct_masks_and_fits_80_columns(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'l.db'}", []), encoding="utf-8")
    invoke(path, "subscribers", "add", "--phone", "010-3000-0001", "--zone", "S1251100", "--name",
           "아주 긴 이름을 가진 서해중부 먼바다 조업 선장님", "--quiet-hours", "22:00-06:00")
    invoke(path, "subscribers", "add", "--phone", "010-4000-0001", "--point", "37.45,126.6,3",
           "--zone", "서해중부먼바다")
    invoke(path, "vessels", "add", "--mmsi", "440123456", "--phone", "010-4000-0001")
    code, out, _ = invoke(path, "subscribers", "list")
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["id", "phone", "status", "severity", "name"]
    assert "010-3***-0001" in out and "010-4***-0001" in out and "30000001" not in out
    assert "quiet 22:00-06:00" in lines[1] and "1 point" in lines[2] and "MMSI 4401" in lines[2]
    assert lines[2].endswith("…")  # cut to 80 columns, visibly
    assert all(cell_len(line) <= 80 for line in lines)


@pytest.mark.parametrize(("typed", "shown"), [("02-123-4567", "02-1**-4567"), ("070-1234-5678", "070-****-5678"),
                                               ("010-123-4567", "010-***-4567")])
def test_rejected_numbers_are_echoed_as_typed(tmp_path: Path, typed: str, shown: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'r.db'}", []), encoding="utf-8")
    code, _, err = invoke(path, "subscribers", "add", "--phone", typed, "--zone", "S1251100")
    assert code == 1 and f"phone '{shown}'" in err and typed not in err


def test_a_caught_up_person_gets_the_lift_too(live: Path, tmp_path: Path) -> None:
    """Once each, and the follow-ups after: the 해제 reaches the person added during the warning."""
    import sqlite3

    assert invoke(live, "subscribers", "add", "--phone", "010-7800-0001", "--zone", "S1251100")[0] == 0
    assert invoke(live, "run", "--once")[0] == 0
    feed = tmp_path / "w.cap.xml"
    first_sent = datetime.now(UTC).replace(microsecond=0)
    body = feed.read_text(encoding="utf-8")
    original_sent = body.split("<sent>")[1].split("</sent>")[0]
    feed.write_bytes(cap_xml("KMA-LIVE-2", sent=first_sent, zones=["S1251100"], msg_type="Cancel",
                             references=[("KMA-LIVE-1", datetime.fromisoformat(original_sent))]))
    code, out, err = invoke(live, "run", "--once")
    assert code == 0, err
    with sqlite3.connect(tmp_path / "live.db") as db:
        kinds = db.execute("SELECT d.kind FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id "
                           "WHERE s.phone = '01078000001' ORDER BY d.id").fetchall()
    assert [k for (k,) in kinds] == ["alert", "cancel"]


def test_formats_are_written_down() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for needle in ("## Formats", "`;`", '"mmsi"', '"at"', "FeatureCollection", "Without outlines",
                   "ALIMCAST_SHARED", "allow_real_provider", "ALIMCAST_NHN_RESEND_NO", "PGPASSWORD",
                   "provider check", "templates preview", "remove-demo"):
        assert needle in readme, needle
    bench = (REPO / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert "/work/" not in bench and ".venv/bin/python benchmarks/" in bench
    helps = " ".join(runner.invoke(app, [*cmd, "--help"]).stdout for cmd in (
        ["subscribers", "import"], ["vessels", "ingest-ais"], ["zones", "import"], ["subscribers", "export"]))
    helps = " ".join(helps.replace("│", " ").split())
    for needle in ("';'", '"mmsi"', "FeatureCollection", "in no zone", "LAT,LON,RADIUS_KM"):
        assert needle in helps, needle
