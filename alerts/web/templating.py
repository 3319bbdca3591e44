"""Jinja2 pages: one environment for the console and the public pages, with the helpers every page uses.

``page(request, "name.html", **context)`` renders a template with ``user``, ``csrf_token``, ``nav`` and
``static_url`` available; templates extend ``base.html`` (console) and may define their own layouts.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from alerts.web.auth import load_user
from alerts.web.csrf import csrf_token
from alerts.web.phones import mask_phone

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
KST = ZoneInfo("Asia/Seoul")

#: The console's navigation: (order, path, label, minimum role). Router modules add their entry.
NAV: set[tuple[int, str, str, str]] = set()

templates = Jinja2Templates(directory=str(TEMPLATE_DIR))


def kst(value: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    """Times on pages are Korean time, as operators read them."""
    if value is None:
        return "—"
    return value.astimezone(KST).strftime(fmt)


def krw(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


templates.env.filters["kst"] = kst
templates.env.filters["krw"] = krw
templates.env.filters["mask_phone"] = mask_phone


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    user = load_user(request)
    base = {"user": user, "csrf_token": csrf_token(request), "path": request.url.path,
            "nav": [item[1:3] for item in sorted(NAV) if user is not None and user.has(item[3])],
            "refresh_ms": request.app.state.web.extras.get("refresh_ms", 5000)}
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


LIVE_HEADER = "X-Live-Version"


def live_fragment(request: Request, template: str, **context: Any) -> Response:
    """A live region's fragment, or ``204`` when it has not changed since the version the page holds
    (``X-Live-Version``): the Now page polls every few seconds and its map alone is ~80 KB."""
    response = page(request, template, **context)
    version = hashlib.sha256(bytes(response.body)).hexdigest()[:20]
    if request.headers.get(LIVE_HEADER) == version:
        return Response(status_code=204, headers={LIVE_HEADER: version})
    response.headers[LIVE_HEADER] = version
    return response
