"""The audit log, readable in the console: who changed what, when, from where (newest first)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from alerts.web import audit
from alerts.web.context import DB
from alerts.web.templating import NAV, page

router = APIRouter()
NAV.add((70, "/audit", "Audit log", "viewer"))


@router.get("/audit")
def audit_page(request: Request, session: DB, before: int | None = None, action: str = "") -> Response:
    entries = audit.recent(session, limit=200, before_id=before, action=action or None)
    return page(request, "audit.html", title="Audit log", entries=entries, action=action,
                older=entries[-1].id if len(entries) == 200 else None)
