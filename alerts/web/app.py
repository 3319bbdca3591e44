"""The FastAPI application: ``create_app(config)`` for ``alimcast serve`` and for tests.

Routers are discovered: every module in ``alerts/web/routes/`` that defines ``router`` is included.
Modules named ``public_*.py`` are reachable without logging in (health, login, CAP feed, subscription
pages); every other router gets the login dependency, so a page is protected unless its file says
otherwise. Every unsafe request of every router passes the CSRF check (``alerts/web/csrf.py``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException

import alerts.web.models  # noqa: F401  (registers the console tables)
from alerts.config import Config
from alerts.db import make_engine
from alerts.push import PushIntake
from alerts.web import routes as routes_package
from alerts.web.auth import Forbidden, LoginRequired, current_user
from alerts.web.context import Clock, WebContext
from alerts.web.csrf import csrf_protect, set_anon_cookie
from alerts.web.routes.push import PUSH_PREFIX, push_router
from alerts.web.routes.websub import WEBSUB_PREFIX, websub_router
from alerts.web.settings import web_settings
from alerts.web.templating import STATIC_DIR, page
from alerts.websub import WebSubIntake, WebSubSettings
from subscribers.sqltypes import utcnow

PUBLIC_PREFIX = "public_"


def route_modules() -> list[ModuleType]:
    """Every router module, in file-name order (``public_*`` first, then the console's areas)."""
    names = sorted(info.name for info in pkgutil.iter_modules(routes_package.__path__) if not info.ispkg)
    names.sort(key=lambda n: not n.startswith(PUBLIC_PREFIX))
    return [importlib.import_module(f"{routes_package.__name__}.{name}") for name in names]


def create_app(config: Config, *, engine: Engine | None = None, clock: Clock = utcnow,
               extras: dict[str, Any] | None = None, modules: Iterable[ModuleType] | None = None) -> FastAPI:
    """Build the app. ``engine`` defaults to one made from the config (the caller migrates the schema);
    ``clock`` lets tests move time; ``extras`` carries optional collaborators (e.g. ``"matcher"``)."""
    settings = web_settings(config)
    ctx = WebContext(config=config, engine=engine or make_engine(config.database_url), clock=clock,
                     settings=settings, extras=dict(extras or {}))
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs = ctx.extras.get("jobs")
        if jobs is not None:
            jobs.close()

    app = FastAPI(title="alimcast console", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(csrf_protect)], lifespan=lifespan)
    app.state.web = ctx
    exempt: list[str] = []
    for module in modules if modules is not None else route_modules():
        router = getattr(module, "router", None)
        if router is None:
            continue
        public = module.__name__.rsplit(".", 1)[-1].startswith(PUBLIC_PREFIX)
        app.include_router(router, dependencies=[] if public else [Depends(current_user)])
        exempt.extend(getattr(module, "CSRF_EXEMPT_PREFIXES", ()))
    # partners' machines (push ingest, WebSub hubs) authenticate each request themselves: no login, no CSRF
    app.include_router(push_router(PushIntake(config, ctx.engine, clock=clock)))
    exempt.append(PUSH_PREFIX)
    websub = WebSubSettings.from_config(config)
    if websub is not None:
        app.include_router(websub_router(WebSubIntake(config, websub, ctx.engine, clock=clock)))
        exempt.append(WEBSUB_PREFIX)
    app.state.csrf_exempt_prefixes = tuple(exempt)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_handlers(app)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        set_anon_cookie(request, response, secure=settings.secure_cookies)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'")
        if request.url.path != "/healthz" and not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and request.headers.get("hx-request") is None


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        if _wants_html(request) and request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return JSONResponse({"detail": "login required"}, status_code=401)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        if _wants_html(request):
            return page(request, "error.html", status_code=403, title="Not allowed",
                        message=f"This needs the {exc.needed} role.")
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _wants_html(request) and exc.status_code >= 400:
            return page(request, "error.html", status_code=exc.status_code, title=f"Error {exc.status_code}",
                        message=str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
