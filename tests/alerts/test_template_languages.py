"""Templates: unknown ``#{variables}`` are config errors (issue 12), translations picked by the person's
language with Korean as the fallback, and the CAP info in that language (issue 7 §7)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import cap_xml, config_text
from sqlmodel import select
from typer.testing import CliRunner

from alerts.cli.app import app
from alerts.config import ConfigError, load_config, parse_config
from alerts.db import session_scope
from alerts.models import Delivery
from alerts.pipeline import Pipeline, feed_spec
from subscribers.store import add_subscriber

BASE = config_text("sqlite:///x.db", [("f", "cap", "bundled:kma_pungrang_sample.cap.xml")])
SHIPPED = Path(__file__).resolve().parents[2] / "config.toml"
EN = '[templates.alert.en]\ncode = "ALERT_EN"\ntext = """[#{hazard} #{level}] #{action}\nZones: #{zones}"""\n'


def parsed(extra: str = "", *, replace: tuple[str, str] | None = None) -> dict:
    text = BASE + "\n" + extra
    if replace:
        assert replace[0] in text
        text = text.replace(*replace, 1)
    return tomllib.loads(text)


@pytest.mark.parametrize(("change", "key", "message"), [
    (("#{hazard}", "#{hazzard}"), "[templates.alert] text", "unknown variable #{hazzard} (did you mean #{hazard}?)"),
    (("#{zones}", "#{zone}"), "[templates.alert] text", "(did you mean #{zones}?)"),
    (("해제: #{sent}", "해제: #{when_lifted}"), "[templates.cancel] text", "unknown variable #{when_lifted} (known:"),
])
def test_unknown_template_variable_is_one_line_error(change: tuple[str, str], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(parsed(replace=change))
    assert exc.value.key == key and message in str(exc.value) and "\n" not in str(exc.value)


def test_translation_and_group_templates_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"\[templates.alert.en\] text: unknown variable #\{hazzard\}"):
        parse_config(parsed(EN.replace("#{hazard}", "#{hazzard}")))
    group = '[templates.group]\ncode = "G"\ntext = "#{count}: #{warnings} #{hazard}"\n'
    with pytest.raises(ConfigError, match=r"\[templates.group\] text: unknown variable #\{hazard\}"):
        parse_config(parsed(group))
    with pytest.raises(ConfigError, match=r"\[templates.alert.english\]"):
        parse_config(parsed(EN.replace("alert.en]", "alert.english]")))
    with pytest.raises(ConfigError, match=r"\[templates.group\]: required"):
        parse_config(parsed("[coalesce]\ngroup_wait_seconds = 10\n"))


def test_cli_exits_2_naming_template_and_variable(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE.replace("#{hazard}", "#{hazzard}", 1), encoding="utf-8")
    result = CliRunner().invoke(app, ["feeds", "list", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "[templates.alert] text: unknown variable #{hazzard} (did you mean #{hazard}?)" in result.output


def test_shipped_config_has_marked_translations() -> None:
    config = load_config(SHIPPED)
    for kind in ("alert", "update", "cancel"):
        assert {"en", "vi"} <= config.templates[kind].languages.keys()
    assert config.templates["group"].for_language("en-US")[0] == "en"
    assert config.templates["alert"].for_language("id")[0] == "ko"  # no Indonesian template: Korean
    assert "NOT APPROVED" in SHIPPED.read_text(encoding="utf-8")
    assert SHIPPED.read_bytes() == (SHIPPED.parent / "alerts" / "defaults" / "config.toml").read_bytes()


def en_info_cap(identifier: str, sent: datetime) -> bytes:
    """A KMA CAP carrying an English info beside the Korean one."""
    body = cap_xml(identifier, sent=sent, zones=["S1251100"], expires=sent + timedelta(hours=6)).decode()
    english = ("<info><language>en-US</language><category>Met</category><event>High Seas Advisory</event>"
               "<urgency>Expected</urgency><severity>Moderate</severity><certainty>Likely</certainty>"
               "<instruction>Vessels return to port.</instruction><area><areaDesc>Incheon coast</areaDesc>"
               "<geocode><valueName>KMA_ZONE</valueName><value>S1251100</value></geocode></area></info></alert>")
    return body.replace("</alert>", english).encode()


def test_language_picks_template_and_info(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    vi = EN.replace("alert.en", "alert.vi").replace("ALERT_EN", "ALERT_VI").replace("Zones", "Khu vực")
    path = write_config(db_url, [("kma", "cap", str(tmp_path / "kma.xml"))], extra=EN + "\n" + vi)
    p = Pipeline(load_config(path))
    with session_scope(p.engine) as s:
        ids = {lang: add_subscriber(s, f"0102000000{i}", ["S1251100"], language=lang).id
               for i, lang in enumerate(("ko", "en", "vi", "id"), start=1)}
    t0 = datetime.now(UTC).replace(microsecond=0)
    (tmp_path / "kma.xml").write_bytes(en_info_cap("W1", t0))
    p.poll(feed_spec(p.config.feeds[0]), force=True)
    p.tick()
    with session_scope(p.engine) as s:
        rows = {d.subscriber_id: d for d in s.exec(select(Delivery))}
    assert {d.status for d in rows.values()} == {"delivered"}
    ko, en, vi, ind = (rows[ids[lang]] for lang in ("ko", "en", "vi", "id"))
    assert ko.template_code == "ALIMCAST_ALERT_01" and ko.text.startswith("[풍랑 주의보] 발표")
    # English: its template, its code, and the English info of the alert
    assert en.template_code == "ALERT_EN" and en.text.startswith("[High Seas Advisory Moderate] issued"), en.text
    assert en.text.endswith("Zones: 인천·경기북부앞바다")  # zone names come from the (Korean) catalogue
    # Vietnamese: no Vietnamese info, so the Korean info with the KMA words translated
    assert vi.template_code == "ALERT_VI" and vi.text.startswith("[Sóng lớn cảnh báo] ban hành"), vi.text
    # Indonesian: no approved template: the Korean one, rendered in Korean
    assert ind.template_code == "ALIMCAST_ALERT_01" and ind.text == ko.text
    p.close()
