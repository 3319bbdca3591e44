"""``/healthz``: 200 with a JSON status when the database answers, the job is alive and the feeds are
healthy; 503 with the same JSON when not (load balancers and monitors read the code, people the body)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from alerts.web.context import WebContext, web_context
from alerts.web.health import check

router = APIRouter()


@router.get("/healthz")
def healthz(ctx: WebContext = Depends(web_context)) -> JSONResponse:
    health = check(ctx.config, ctx.engine, ctx.now())
    return JSONResponse(health.to_json(), status_code=200 if health.ok else 503)
