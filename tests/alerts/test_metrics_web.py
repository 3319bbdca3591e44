"""``/metrics`` on the web console (alerts/web/routes/public_metrics.py): a bearer token, not a login.

Skipped where the web console is not part of the tree (it is merged from another branch)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alimcast_testkit import config_text

pytest.importorskip("alerts.web.app")
from fastapi.testclient import TestClient  # noqa: E402

from alerts.config import load_config  # noqa: E402
from alerts.db import make_engine, upgrade  # noqa: E402
from alerts.web.app import create_app  # noqa: E402


def test_metrics_need_the_configured_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(f"sqlite:///{tmp_path / 'a.db'}", []) + '\n[metrics]\ntoken = "env:T_METRICS"\n',
                   encoding="utf-8")
    monkeypatch.setenv("T_METRICS", "s3cret")
    config = load_config(cfg)
    engine = make_engine(config.database_url)
    upgrade(engine)
    with TestClient(create_app(config, engine=engine)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "alimcast_database_up 1.0" in ok.text and "alimcast_queue_depth" in ok.text
    monkeypatch.delenv("T_METRICS")
    with TestClient(create_app(config, engine=engine)) as client:
        assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 404
