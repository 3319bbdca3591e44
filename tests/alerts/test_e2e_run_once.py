"""End to end: a feed file -> `alimcast run --once` (a real process) -> the loopback NHN server.

The server validates requests as NHN documents them (auth, content type, body shape, template
variables, idempotency keys), so this proves the whole path, not just our own view of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from alimcast_testkit import TEMPLATES, cap_xml, config_text

from alerts.costs import month_of
from alerts.testing.nhn_server import NhnTestServer, RecipientBehaviour
from subscribers import zones

A, B, C = "01020000001", "01020000002", "01020000003"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alerts.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_feed_to_alimtalk_exactly_once(tmp_path: Path) -> None:
    sent = datetime.now(UTC).replace(microsecond=0)
    feed = tmp_path / "warning.cap.xml"
    feed.write_bytes(cap_xml("KMA-W-1", sent=sent, zones=["S1251100", "S1251200"]))
    templates = {code: text for code, text in TEMPLATES.values()}
    with NhnTestServer(templates=templates, behaviours={B: RecipientBehaviour(code="3019", fallback_ok=True)}) as srv:
        cfg = tmp_path / "config.toml"
        cfg.write_text(config_text(f"sqlite:///{tmp_path / 'a.db'}", [("kma", "cap", str(feed))], provider="nhn",
                                   base_url=srv.base_url), encoding="utf-8")
        env = {**os.environ, "T_APP_KEY": srv.app_key, "T_SECRET_KEY": srv.secret_key,
               "T_SENDER_KEY": srv.sender_key, "ALIMCAST_CONFIG": str(cfg)}
        for phone, zone in ((A, "S1251100"), ("010-2000-0002", "서해중부먼바다"), (C, "S1251400")):
            done = cli("subscribers", "add", "--phone", phone, "--zone", zone, env=env)
            assert done.returncode == 0, done.stderr
        # B also subscribed to a second warned zone: still one message.
        assert cli("subscribers", "add", "--phone", B, "--zone", "S1251200", env=env).returncode == 0

        run = cli("run", "--once", env=env)
        assert run.returncode == 0, run.stderr
        assert "alerts ingested" in run.stdout

        sends = srv.send_requests()
        assert len(sends) == 1
        body = sends[0].body
        headers = {k.lower(): v for k, v in sends[0].headers.items()}
        assert headers["x-secret-key"] == srv.secret_key
        assert headers["x-nc-api-idempotency-key"]
        assert body["templateCode"] == "ALIMCAST_ALERT_01"
        recipients = {r["recipientNo"]: r for r in body["recipientList"]}
        assert set(recipients) == {A, B}
        expected_zones = f"{zones.name('S1251100')}, {zones.name('S1251200')}"
        for r in recipients.values():
            params = r["templateParameter"]
            assert params["hazard"] == "풍랑" and params["level"] == "주의보"
            assert params["zones"] == expected_zones
            assert params["expires"] == "해제 시까지"
            assert params["instruction"].startswith("조업 선박은")
            assert r["recipientGroupingKey"].isdigit()
            assert r["resendParameter"]["isResend"] is True
        # No phone number appears unmasked in the job's log.
        assert A not in run.stderr and "010-2000-0001" not in run.stderr

        # A second run: the same alert is known, nothing is sent again.
        again = cli("run", "--once", env=env)
        assert again.returncode == 0, again.stderr
        assert len(srv.send_requests()) == 1
        assert srv.sends_to(A) == 1 and srv.sends_to(B) == 1 and srv.sends_to(C) == 0

        costs = cli("costs", "monthly", "--format", "json", "--month", month_of(sent), env=env)
        assert costs.returncode == 0, costs.stderr
        summary = json.loads(costs.stdout)
        assert summary["messages"] == 2
        assert summary["by_channel"]["alimtalk"]["messages"] == 1
        fallback = {k: v for k, v in summary["by_channel"].items() if k in ("sms", "lms")}
        assert sum(v["messages"] for v in fallback.values()) == 1
        assert summary["cost_krw"] < summary["baseline_krw"]


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(f"sqlite:///{tmp_path / 'a.db'}", []).replace('kind = "dryrun"', 'kind = "kakao"'),
                   encoding="utf-8")
    done = cli("run", "--once", "--config", str(cfg), env=dict(os.environ))
    assert done.returncode == 2
    expected = "error: config.toml: [provider] kind: must be one of nhn, dryrun, solapi, not 'kakao'"
    assert done.stderr.strip().splitlines() == [expected]


def test_feeds_parse_rejects_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cap"
    bad.write_bytes(b"<html><body>Moved</body></html>")
    done = cli("feeds", "parse", str(bad), "--kind", "cap", "--json", env=dict(os.environ))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr


def test_feeds_parse_json_shape(tmp_path: Path) -> None:
    doc = tmp_path / "w.cap"
    doc.write_bytes(cap_xml("X1", sent=datetime(2026, 11, 27, 5, 0, tzinfo=UTC), zones=["S1251100"]))
    done = cli("feeds", "parse", str(doc), "--json", env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    alerts = json.loads(done.stdout)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["sent"] == "2026-11-27T14:00:00+09:00"
    info = alert["infos"][0]
    for key in ("language", "category", "event", "urgency", "severity", "certainty", "effective", "onset",
                "expires", "headline", "description", "instruction", "parameters", "areas"):
        assert key in info
    assert info["areas"][0]["geocodes"] == {"KMA_ZONE": ["S1251100"]}
    assert set(info["areas"][0]) >= {"desc", "polygons", "circles", "geocodes"}


def test_runs_from_any_folder_on_the_built_in_default(tmp_path: Path) -> None:
    """No --config, no $ALIMCAST_CONFIG, no ./config.toml: the shipped default carried in the package is used,
    and its SQLite file lands in the current folder."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "ALIMCAST_CONFIG"}
    env["PYTHONPATH"] = str(root)
    done = subprocess.run([sys.executable, "-m", "alerts.cli", "run", "--once"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "alerts ingested" in done.stdout and "1 new" in done.stdout
    assert (tmp_path / "alimcast-data" / "alimcast.db").is_file()


def test_the_packaged_default_is_the_shipped_config() -> None:
    root = Path(__file__).resolve().parents[2]
    assert (root / "alerts" / "defaults" / "config.toml").read_bytes() == (root / "config.toml").read_bytes()
