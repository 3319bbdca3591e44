"""The skeleton's contract: health, login/logout, login required, CSRF, session rotation, throttling."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlmodel import select
from web_testkit import PASSWORD, login, page_csrf

from alerts.db import session_scope
from alerts.web.auth import SESSION_COOKIE
from alerts.web.models import AuditEntry
from subscribers.sqltypes import utcnow


def test_login_logout_in_browser(web_env, live_server, page, screenshot):
    web_env.user("kim", "operator")
    server = live_server(web_env.app())
    page.goto(server.url + "/")
    assert page.url.startswith(server.url + "/login")
    screenshot(page, "login")
    page.fill("input[name=name]", "kim")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation(url=server.url + "/"):
        page.click("button[type=submit]")
    assert page.locator(".who .user").inner_text().startswith("kim")
    screenshot(page, "now")
    with page.expect_navigation(url=server.url + "/login"):
        page.click("text=Log out")
    assert page.locator("input[name=password]").is_visible()


def test_healthz_needs_no_login_and_says_why(web_env, live_server):
    server = live_server(web_env.app())
    answer = httpx.get(server.url + "/healthz")
    assert answer.status_code == 200  # no feeds configured: nothing to be unhealthy about
    assert answer.json()["database"] is True


def test_session_is_rotated_at_login(web_env, live_server):
    """Session fixation: an id planted in the victim's browser (here a valid one, the attacker's own) is
    replaced at login and stops working, so the attacker never shares the victim's session."""
    web_env.user("lee", "operator")
    web_env.user("mallory", "viewer")
    server = live_server(web_env.app())
    with httpx.Client(base_url=server.url) as attacker, httpx.Client(base_url=server.url) as victim:
        assert login(attacker, "mallory").status_code == 303
        planted = attacker.cookies.get(SESSION_COOKIE)
        victim.cookies.set(SESSION_COOKIE, planted, domain="127.0.0.1")
        assert login(victim, "lee").status_code == 303
        fresh = [c.value for c in victim.cookies.jar if c.name == SESSION_COOKIE and c.value != planted]
        assert fresh, "login must issue a new session id"
        assert attacker.get("/", headers={"Accept": "text/html"}).status_code == 303  # the planted id is dead


def test_csrf_refused_without_token_or_from_another_site(web_env, live_server):
    web_env.user("lee", "viewer")
    server = live_server(web_env.app())
    with httpx.Client(base_url=server.url) as client:
        assert login(client, "lee").status_code == 303
        home = client.get("/")
        assert home.status_code == 200
        token = page_csrf(home.text)
        assert client.post("/logout").status_code == 403
        assert client.post("/logout", data={"csrf_token": "x" * 43}).status_code == 403
        assert client.post("/logout", data={"csrf_token": token},
                           headers={"Origin": "https://evil.example"}).status_code == 403
        assert client.get("/", headers={"Accept": "text/html"}).status_code == 200  # still logged in
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
        assert client.get("/", headers={"Accept": "text/html"}).status_code == 303
        # the login form itself is protected: no pre-login token, no login
        assert client.post("/login", data={"name": "lee", "password": PASSWORD}).status_code == 403


def test_guessing_is_throttled_per_account(web_env, live_server):
    web_env.user("park", "admin")
    server = live_server(web_env.app())
    with httpx.Client(base_url=server.url) as client:
        codes = [login(client, "park", "wrong password!").status_code for _ in range(6)]
        assert codes == [401] * 5 + [429]
        assert login(client, "park").status_code == 429  # even the right password, until the window passes
        web_env.clock.fixed = web_env.clock() + timedelta(minutes=16)
        assert login(client, "park").status_code == 303
    with session_scope(web_env.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEntry))]
    assert actions.count("login.refused") == 7 and "login" in actions


def test_every_page_needs_login_except_health_and_public(web_env, live_server):
    """Walk every GET route of every non-public router: without a session a browser is sent to /login and a
    script gets 401. (Routers named ``public_*`` are the only ones without the login dependency.)"""
    from alerts.web.app import PUBLIC_PREFIX, route_modules

    server = live_server(web_env.app())
    checked = []
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").status_code in (200, 503)
        assert client.get("/login").status_code == 200
        assert client.get("/static/console.css").status_code == 200
        for module in route_modules():
            if module.__name__.rsplit(".", 1)[-1].startswith(PUBLIC_PREFIX):
                continue
            router = getattr(module, "router", None)
            if router is None:  # built per app (push, WebSub): no GET page, each request authenticates itself
                continue
            for route in router.routes:
                if "GET" not in getattr(route, "methods", ()):
                    continue
                path = re.sub(r"\{[^}]*\}", "1", route.path)  # any value: the login check comes first
                answer = client.get(path, headers={"Accept": "text/html"})
                assert answer.status_code == 303 and answer.headers["location"].startswith("/login"), route.path
                assert client.get(path).status_code == 401, route.path
                checked.append(route.path)
    assert "/" in checked


def test_session_absolute_expiry_and_logout_after_it(web_env, live_server):
    """In use every 50 minutes (under the 60-minute idle limit), a session still ends 12 hours after login."""
    web_env.user("choi", "viewer")
    server = live_server(web_env.app())
    with httpx.Client(base_url=server.url) as client:
        start = utcnow()
        web_env.clock.fixed = start
        assert login(client, "choi").status_code == 303
        home = client.get("/")
        for step in range(1, 20):
            web_env.clock.fixed = start + timedelta(minutes=50 * step)
            if client.get("/", headers={"Accept": "text/html"}).status_code != 200:
                break
        assert 50 * (step - 1) < 12 * 60 <= 50 * step
        # logging out of an expired session just works
        assert client.post("/logout", data={"csrf_token": page_csrf(home.text)}).status_code == 303


def test_guessing_is_throttled_per_client_across_accounts(make_web_env, live_server):
    """Spraying one password over many names from one address is stopped by the per-client limit."""
    env = make_web_env(extra="[web]\nlogin_max_failures_per_client = 4\n")
    env.user("han", "operator")
    server = live_server(env.app())
    with httpx.Client(base_url=server.url) as client:
        codes = [login(client, name, "Winter2026!!").status_code for name in ("a1", "b2", "c3", "d4", "han")]
        assert codes == [401, 401, 401, 401, 429]
        assert login(client, "han").status_code == 429
        env.clock.fixed = env.clock() + timedelta(minutes=16)
        assert login(client, "han").status_code == 303
