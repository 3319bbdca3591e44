"""The Now page: what is live, where, how far it has gone out; feed health, queue depth, provider state."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from alerts.web.templating import NAV, page

router = APIRouter()
NAV.add((10, "/", "Now", "viewer"))


@router.get("/")
def now_page(request: Request) -> Response:
    return page(request, "now.html", title="Now")
