"""``alimcast provider check`` against the loopback NHN server, and ``templates preview``, through the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alimcast_testkit import TEMPLATES, cap_xml, config_text
from typer.testing import CliRunner

from alerts.cli.app import app
from alerts.testing.nhn_server import NhnTestServer

runner = CliRunner()
APPROVED = {code: text for code, text in TEMPLATES.values()}


def check(tmp_path: Path, srv: NhnTestServer, monkeypatch: pytest.MonkeyPatch, *, secret: str | None = None,
          sender: str | None = None) -> tuple[int, list[str]]:
    monkeypatch.setenv("T_APP_KEY", srv.app_key)
    monkeypatch.setenv("T_SECRET_KEY", secret or srv.secret_key)
    monkeypatch.setenv("T_SENDER_KEY", sender or srv.sender_key)
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'c.db'}", [], provider="nhn", base_url=srv.base_url),
                    encoding="utf-8")
    result = runner.invoke(app, ["provider", "check", "--config", str(path)])
    return result.exit_code, result.stdout.splitlines()


def test_everything_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with NhnTestServer(templates=APPROVED) as srv:
        code, lines = check(tmp_path, srv, monkeypatch)
        assert code == 0, lines
        assert [line.split(":")[0] for line in lines] == [
            "ok   credentials", "ok   sender key", "ok   fallback number", "ok   template alert",
            "ok   template update", "ok   template cancel"]
        assert not srv.send_requests() and not srv.messages  # nothing was sent
        assert {r.method for r in srv.requests} == {"GET"}


def test_wrong_secret_and_unknown_sender(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with NhnTestServer(templates=APPROVED) as srv:
        code, lines = check(tmp_path, srv, monkeypatch, secret="wrong")
        assert code == 1 and lines == ["FAIL credentials: NHN refused the secret key (resultCode -1001)"]
        code, lines = check(tmp_path, srv, monkeypatch, sender="x" * 40)
        assert code == 1 and lines[0].startswith("ok   credentials") and lines[1].startswith("FAIL sender key")
        assert "-2017" in lines[1]


def test_unapproved_template_other_variables_and_fallback_number(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    templates = dict(APPROVED)
    cancel_code = TEMPLATES["cancel"][0]
    templates[cancel_code] = TEMPLATES["cancel"][1].replace("#{sent}", "#{sent_at}")
    with NhnTestServer(templates=templates, template_status={TEMPLATES["update"][0]: "TSC02"},
                       fallback_sender="0299998888", sender_status={"kakaoProfileStatus": "B",
                                                                     "kakaoProfileStatusName": "차단"}) as srv:
        code, lines = check(tmp_path, srv, monkeypatch)
    assert code == 1
    text = "\n".join(lines)
    assert "FAIL sender key: channel @alimcast-test: profile 차단" in text
    assert "FAIL fallback number: configured 0212345678, but NHN's fallback number is 0299998888" in text
    assert f"FAIL template update: {TEMPLATES['update'][0]}: not approved (being reviewed)" in text
    assert "ok   template alert" in text
    assert ("FAIL template cancel: ALIMCAST_CANCEL_01: variables differ: approved text has #{sent_at} not in "
            "config; config has #{sent} not approved") in text


def test_dryrun_has_nothing_to_check(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'd.db'}", []), encoding="utf-8")
    result = runner.invoke(app, ["provider", "check", "--config", str(path)])
    assert result.exit_code == 0 and "nothing to check" in result.stdout


def test_templates_preview(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    path = tmp_path / "config.toml"
    text = re.sub(r'(\[templates\.cancel\]\ncode = "ALIMCAST_CANCEL_01"\ntext = """).*?(""")',
                  lambda m: m.group(1) + "#{hazard} 해제 #{sent}" + m.group(2),
                  config_text(f"sqlite:///{tmp_path / 'p.db'}", []), flags=re.S)
    path.write_text(text, encoding="utf-8")
    alert = tmp_path / "a.cap.xml"
    alert.write_bytes(cap_xml("KMA-P-1", sent=datetime(2026, 5, 1, 3, 0, tzinfo=UTC), zones=["S1251100"],
                              event="강풍주의보"))
    result = runner.invoke(app, ["templates", "preview", "--alert", str(alert), "--config", str(path)])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "── alert · template ALIMCAST_ALERT_01 · " in out and "fallback LMS" in out
    assert "[강풍 주의보] 발표" in out and "#{" not in out
    cancel = out.split("── cancel")[1]
    assert "fallback SMS (" in cancel and "강풍 해제 5월 1일(금) 12:00" in cancel
    shipped = runner.invoke(app, ["templates", "preview", "--config", str(path)])
    assert shipped.exit_code == 0 and "[풍랑 주의보] 발표" in shipped.stdout  # the bundled sample
    bad = runner.invoke(app, ["templates", "preview", "--alert", str(tmp_path / "none.xml"), "--config", str(path)])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ")
