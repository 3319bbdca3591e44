"""config.toml mistakes: each gives one error naming the key (table-driven)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from alimcast_testkit import config_text

from alerts.config import ConfigError, load_config, parse_config

BASE = config_text("sqlite:///x.db", [("f", "cap", "bundled:kma_pungrang_sample.cap.xml")])


def with_change(old: str, new: str) -> dict:
    assert old in BASE
    return tomllib.loads(BASE.replace(old, new, 1))


CASES = [
    ('kind = "dryrun"', 'kind = "kakao"', "[provider] kind"),
    ("rate_per_second = 1000", 'rate_per_second = "fast"', "[provider] rate_per_second"),
    ("rate_per_second = 1000", "rate_per_second = 0", "[provider] rate_per_second"),
    ('kind = "cap"', 'kind = "capp"', "[[feeds]] f kind"),
    ("interval_seconds = 60", "interval_seconds = 0", "[feeds f] interval_seconds"),
    ('code = "ALIMCAST_ALERT_01"', 'code = "THIS_TEMPLATE_CODE_IS_TOO_LONG"', "[templates.alert] code"),
    ("alimtalk = 8.0", "alimtalk = -1", "[prices] alimtalk"),
    ('secret_key = "env:T_SECRET_KEY"', 'secret_key = "plain-text-secret"', "[provider] secret_key"),
    ("[templates.cancel]", "[templates.cancelled]", "[templates]"),  # unknown table, did you mean
    ("[prices]", '[vessels]\nais_sources = ["http://receiver:10110"]\n[prices]', "[vessels] ais_sources"),
    ("[prices]", '[vessels]\nais_sources = ["tcp://receiver"]\n[prices]', "[vessels] ais_sources"),
    ("[prices]", '[vessels]\nais_sources = "tcp://receiver:10110"\n[prices]', "[vessels] ais_sources"),
    ("[prices]", "[vessels]\nais_flush_seconds = 0\n[prices]", "[vessels] ais_flush_seconds"),
    ("[prices]", '[vessels]\nais_all_vessels = "yes"\n[prices]', "[vessels] ais_all_vessels"),
]


@pytest.mark.parametrize(("old", "new", "key"), CASES)
def test_bad_setting_names_its_key(old: str, new: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(with_change(old, new))
    assert err.value.key == key
    assert "\n" not in str(err.value)


def test_nhn_needs_its_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = with_change('kind = "dryrun"', 'kind = "nhn"')
    for name in ("T_APP_KEY", "T_SECRET_KEY", "T_SENDER_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.key == "[provider] app_key" and "T_APP_KEY" in str(err.value)
    monkeypatch.setenv("T_APP_KEY", "a")
    monkeypatch.setenv("T_SECRET_KEY", "b")
    monkeypatch.setenv("T_SENDER_KEY", "c")
    assert parse_config(raw).provider.settings["secret_key"] == "b"


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    (sub / "config.toml").write_text(BASE.replace("sqlite:///x.db", "sqlite:///data/a.db")
                                     .replace("bundled:kma_pungrang_sample.cap.xml", "feeds/w.xml"), encoding="utf-8")
    cfg = load_config(sub / "config.toml")
    assert cfg.database_url == f"sqlite:///{sub / 'data' / 'a.db'}"
    assert cfg.feeds[0].url == str(sub / "feeds" / "w.xml")


def test_shipped_config_is_valid() -> None:
    shipped = Path(__file__).resolve().parents[2] / "config.toml"
    cfg = load_config(shipped)
    assert cfg.provider.kind == "dryrun"
    assert cfg.feeds and cfg.feeds[0].url.startswith("bundled:")
    assert len(cfg.demo_subscribers) >= 3


def test_ais_sources(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(BASE.replace("[prices]", '[vessels]\nais_sources = ["tcp://10.0.0.5:10110", '
                                                       '"udp://0.0.0.0:10111", "replay.nmea"]\n[prices]'),
                                          encoding="utf-8")
    cfg = load_config(tmp_path / "config.toml")
    assert [(s.scheme, s.host, s.port) for s in cfg.ais_sources] == [
        ("tcp", "10.0.0.5", 10110), ("udp", "0.0.0.0", 10111), ("file", "", 0)]
    assert cfg.ais_sources[2].path == tmp_path / "replay.nmea"  # relative to the config file
    assert (cfg.ais_flush_seconds, cfg.ais_all_vessels) == (5.0, False)
