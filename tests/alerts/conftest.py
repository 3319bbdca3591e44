"""Fixtures for the alert pipeline: a config file on disk, a migrated database, CAP documents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alimcast_testkit import config_text


@pytest.fixture
def nhn_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"T_APP_KEY": "test-appkey", "T_SECRET_KEY": "test-secret", "T_SENDER_KEY": "s" * 40}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def _write(db_url: str, feeds: list[tuple[str, str, str]], **kw: object) -> Path:
        path = tmp_path / "config.toml"
        path.write_text(config_text(db_url, feeds, **kw), encoding="utf-8")  # type: ignore[arg-type]
        return path

    return _write
