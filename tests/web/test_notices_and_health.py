"""Notices over real HTTP: Extreme needs a second operator when configured, an update threads onto the
notice, the CAP XML reads back identically; /healthz says 503 until the job has polled; "poll now" ingests;
idle sessions end; ``alimcast users add`` reads the password from the environment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
from sqlmodel import select
from typer.testing import CliRunner
from web_testkit import login, page_csrf

from alerts.cli.app import app as cli
from alerts.db import session_scope
from alerts.feedstate import DbFeedStateStore
from alerts.models import AlertRecord, AlertThread
from alerts.web.capxml import to_cap_xml
from alerts.web.models import ConsoleNotice, WebUser
from feeds.cap import CapParser
from feeds.model import Alert
from feeds.state import FeedState
from subscribers.sqltypes import utcnow


@contextmanager
def client_for(server, name: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as client:
        assert login(client, name).status_code == 303
        yield client


def notice_form(token: str, **changes: str) -> dict[str, str]:
    form = {"csrf_token": token, "event": "유류 유출", "category": "Env", "severity": "Extreme",
            "urgency": "Immediate", "certainty": "Observed", "zones": "서해중부먼바다", "headline": "유조선 기름 유출",
            "instruction": "해당 해역 조업을 중단하십시오.", "expires_hours": "12", "action": "send"}
    form.update(changes)
    return form


def test_extreme_needs_a_second_operator_then_updates_thread(make_web_env, live_server):
    env = make_web_env(extra="[web]\nextreme_needs_approval = true\n")
    env.user("first", "operator")
    env.user("second", "operator")
    server = live_server(env.app())
    with client_for(server, "first") as first, client_for(server, "second") as second:
        token = page_csrf(first.get("/compose").text)
        answer = first.post("/compose", data=notice_form(token))
        assert answer.status_code == 303 and "submitted=" in answer.headers["location"]
        with session_scope(env.engine) as session:
            assert session.exec(select(AlertRecord)).first() is None  # nothing goes out yet
            notice = session.exec(select(ConsoleNotice)).one()
        assert notice.state == "pending"
        assert first.post(f"/notices/{notice.id}/approve", data={"csrf_token": token}).status_code == 403
        token2 = page_csrf(second.get("/compose").text)
        approved = second.post(f"/notices/{notice.id}/approve", data={"csrf_token": token2})
        assert approved.status_code == 303
        alert_id = int(approved.headers["location"].rsplit("/", 1)[1])
        # an update of the notice (Severe now: no approval needed) joins the same thread
        answer = first.post("/compose", data=notice_form(token, severity="Severe", update_of=str(alert_id),
                                                        headline="유출 확산 중"))
        assert answer.status_code == 303
        update_id = int(answer.headers["location"].rsplit("/", 1)[1])
    with session_scope(env.engine) as session:
        original, update = session.get(AlertRecord, alert_id), session.get(AlertRecord, update_id)
        assert update.msg_type == "Update" and update.thread_id == original.thread_id
        assert session.get(AlertThread, original.thread_id).current_alert_id == update_id
        notice = session.get(ConsoleNotice, notice.id)
        assert (notice.state, notice.decided_by, notice.alert_id) == ("sent", "second", alert_id)
        # the CAP we publish reads back as the very alert we stored (identity, references, areas)
        stored = Alert.from_json(update.body)
        parsed = CapParser().parse(to_cap_xml(stored), origin="test").alerts[0]
        assert parsed.key() == stored.key()
        assert [r.key() for r in parsed.references] == [Alert.from_json(original.body).key()]
        assert parsed.zone_codes() == stored.zone_codes() == ["S1252010", "S1252020"]


def test_bad_notice_input_is_one_clear_line(web_env, live_server):
    web_env.user("op", "operator")
    server = live_server(web_env.app())
    with client_for(server, "op") as op:
        token = page_csrf(op.get("/compose").text)
        answer = op.post("/compose", data=notice_form(token, zones="어딘가바다"))
        assert answer.status_code == 400 and "zones: zone &#39;어딘가바다&#39;: unknown" in answer.text
        answer = op.post("/compose", data=notice_form(token, zones="", polygon="37.1,125.1 37.2"))
        assert answer.status_code == 400 and "polygon:" in answer.text
    with session_scope(web_env.engine) as session:
        assert session.exec(select(AlertRecord)).first() is None


def test_healthz_503_until_the_job_polls_and_poll_now(make_web_env, live_server):
    env = make_web_env(feeds=[("sample", "cap", "bundled:kma_pungrang_sample.cap.xml")])
    env.user("op", "operator")
    server = live_server(env.app())
    answer = httpx.get(server.url + "/healthz")
    assert answer.status_code == 503 and answer.json()["job_alive"] is False
    with client_for(server, "op") as op:
        token = page_csrf(op.get("/").text)
        polled = op.post("/feeds/sample/poll", data={"csrf_token": token})
        assert polled.status_code == 303 and "polled=" in polled.headers["location"]
        assert "1 new" in op.get(polled.headers["location"]).text
    answer = httpx.get(server.url + "/healthz")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["feeds"]["sample"]["healthy"] is True
    # a feed failing three times in a row makes the service unhealthy again
    store = DbFeedStateStore(env.engine)
    state = store.get("sample")
    store.save(FeedState(**{**{f: getattr(state, f) for f in state.__slots__}, "consecutive_failures": 3,
                            "last_error": "HTTP 500", "last_error_at": utcnow()}))
    assert httpx.get(server.url + "/healthz").status_code == 503


def test_idle_session_ends(web_env, live_server):
    web_env.user("op", "operator")
    server = live_server(web_env.app())
    with client_for(server, "op") as op:
        assert op.get("/", headers={"Accept": "text/html"}).status_code == 200
        web_env.clock.fixed = utcnow() + timedelta(minutes=61)
        assert op.get("/", headers={"Accept": "text/html"}).status_code == 303


def test_users_add_reads_the_password_from_the_environment(web_env, monkeypatch):
    monkeypatch.setenv("NEW_PW", "a long enough password")
    runner = CliRunner()
    result = runner.invoke(cli, ["users", "add", "kim", "--role", "operator", "--password-env", "NEW_PW",
                                 "--config", str(web_env.config.path)])
    assert result.exit_code == 0, result.output
    with session_scope(web_env.engine) as session:
        user = session.exec(select(WebUser).where(WebUser.name == "kim")).one()
    assert user.role == "operator" and user.password_hash.startswith("$argon2id$")
    monkeypatch.setenv("SHORT_PW", "short")
    result = runner.invoke(cli, ["users", "add", "lee", "--password-env", "SHORT_PW", "--config",
                                 str(web_env.config.path)])
    assert result.exit_code == 1 and "at least 10 characters" in result.output
    result = runner.invoke(cli, ["users", "add", "lee", "--role", "root", "--password-env", "NEW_PW"])
    assert result.exit_code == 1
