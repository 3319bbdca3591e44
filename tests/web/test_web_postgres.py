"""The console on PostgreSQL: migration 0007, logins shared through the database (two app instances stand
for two workers), throttling counted across them, and a notice sent through ingest."""

from __future__ import annotations

import httpx
import pytest
from alimcast_testkit import config_text
from sqlmodel import select
from web_testkit import login, page_csrf

from alerts.config import load_config
from alerts.db import make_engine, session_scope, upgrade
from alerts.models import AlertRecord
from alerts.web.app import create_app
from alerts.web.auth import SESSION_COOKIE, add_user

pytestmark = pytest.mark.postgres


def test_two_workers_share_sessions_and_throttles(pg_url, tmp_path, live_server, monkeypatch):
    monkeypatch.delenv("ALIMCAST_CONFIG", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(config_text(pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
                                if pg_url.startswith("postgresql://") else pg_url, []), encoding="utf-8")
    config = load_config(path)
    engine = make_engine(config.database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        add_user(session, "op", "a long enough password", "operator")
    apps = [create_app(config, engine=engine), create_app(config, engine=make_engine(config.database_url))]
    one, two = (live_server(app) for app in apps)
    try:
        with httpx.Client(base_url=one.url) as a, httpx.Client(base_url=two.url) as b:
            assert login(a, "op", "a long enough password").status_code == 303
            b.cookies.set(SESSION_COOKIE, a.cookies.get(SESSION_COOKIE), domain="127.0.0.1")
            token = page_csrf(b.get("/compose").text)  # the other worker knows the session
            answer = b.post("/compose", data={"csrf_token": token, "event": "항만 폐쇄", "zones": "부산앞바다",
                                              "severity": "Severe", "urgency": "Immediate", "certainty": "Observed",
                                              "category": "Transport", "expires_hours": "3", "action": "send"})
            assert answer.status_code == 303
            for client in (a, b, a, b, a):
                assert login(client, "op", "wrong password!!").status_code == 401
            assert login(b, "op", "a long enough password").status_code == 429  # counted across workers
        with session_scope(engine) as session:
            assert session.exec(select(AlertRecord.feed)).one() == "console"
    finally:
        for app in apps:
            jobs = app.state.web.extras.get("jobs")
            if jobs is not None:
                jobs.close()
            app.state.web.engine.dispose()
