"""Fixtures for the web app: a migrated config, accounts, a live uvicorn server on a free port (real HTTP, in a
thread), Debian's Chromium driven by Playwright (one browser per test session), and screenshots kept as test
artefacts in ``tests/web/artifacts/`` (git-ignored) for a person to look at."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alimcast_testkit import config_text
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from web_testkit import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PASSWORD, LiveServer, start_server

from alerts.config import Config, load_config
from alerts.db import make_engine, session_scope, upgrade
from alerts.web.app import create_app
from alerts.web.auth import add_user


class Clock:
    """A clock tests move by hand (session expiry, throttling windows); real time until set."""

    def __init__(self) -> None:
        self.fixed: datetime | None = None

    def __call__(self) -> datetime:
        from subscribers.sqltypes import utcnow

        return self.fixed or utcnow()


@dataclass
class WebEnv:
    config: Config
    engine: Engine
    clock: Clock
    tmp: Path
    apps: list[FastAPI] = field(default_factory=list)

    def app(self, **kwargs: Any) -> FastAPI:
        extras = {"refresh_ms": 500, **kwargs.pop("extras", {})}
        app = create_app(self.config, engine=self.engine, clock=self.clock, extras=extras, **kwargs)
        self.apps.append(app)
        return app

    def user(self, name: str, role: str, password: str = PASSWORD) -> str:
        with session_scope(self.engine) as session:
            add_user(session, name, password, role)
        return name


@pytest.fixture
def make_web_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., WebEnv]]:
    """``make_web_env(provider="nhn", base_url=..., extra="[web]\n...")``: a config on a fresh SQLite file,
    migrated (keyword arguments go to ``alimcast_testkit.config_text``)."""
    monkeypatch.delenv("ALIMCAST_CONFIG", raising=False)
    made: list[WebEnv] = []

    def make(**kwargs: Any) -> WebEnv:
        path = tmp_path / "config.toml"
        path.write_text(config_text(f"sqlite:///{tmp_path / 'alimcast.db'}", kwargs.pop("feeds", []), **kwargs),
                        encoding="utf-8")
        config = load_config(path)
        engine = make_engine(config.database_url)
        upgrade(engine)
        env = WebEnv(config=config, engine=engine, clock=Clock(), tmp=tmp_path)
        made.append(env)
        return env

    yield make
    for env in made:
        for app in env.apps:
            jobs = app.state.web.extras.get("jobs")
            if jobs is not None:
                jobs.close()
        env.engine.dispose()


@pytest.fixture
def web_env(make_web_env: Callable[..., WebEnv]) -> WebEnv:
    """The default: dry-run provider, no feeds."""
    return make_web_env()


@pytest.fixture
def live_server() -> Iterator[Callable[[FastAPI], LiveServer]]:
    """``live_server(app)`` starts a real HTTP server for the test; all are stopped at teardown."""
    started: list[LiveServer] = []

    def start(app: FastAPI) -> LiveServer:
        server = start_server(app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium for the whole test session (never ``playwright install``)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (own cookies) and page per test, desktop-sized."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ko-KR",
                                  timezone_id="Asia/Seoul")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """``screenshot(page, "now")`` saves ``tests/web/artifacts/<test>-now.png`` and returns its path."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(page: Any, name: str, *, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{name}.png".replace("/", "_")
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
