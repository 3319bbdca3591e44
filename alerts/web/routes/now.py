"""The Now page: what is live, where, how far it has gone out; feed health, queue depth, provider state.

``/`` renders the page; ``/now/live`` renders its live part alone, which ``static/console.js`` fetches every
few seconds and swaps in when it changed (no page reload, no external script library).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from alerts.web import audit
from alerts.web.auth import CurrentUser, require_role
from alerts.web.basemap import alert_layer, render_map
from alerts.web.context import DB, WebContext, client_address, web_context
from alerts.web.jobs import jobs_of
from alerts.web.live import feed_rows, live_alerts, provider_state, queue_state, zone_outlines
from alerts.web.templating import NAV, live_fragment, page

router = APIRouter()
NAV.add((10, "/", "Now", "viewer"))


def _live_context(session: DB, ctx: WebContext) -> dict:
    now = ctx.now()
    alerts = live_alerts(session, now)
    outlines = zone_outlines(session)
    layers = [alert_layer(a.record.body, outlines, css=f"sev-{a.severity}", title=f"{a.title} ({a.severity})",
                          value_names=ctx.config.zone_value_names, href=f"/alerts/{a.record.id}")
              for a in reversed(alerts)]  # most severe drawn last, on top
    queue = queue_state(session, now)
    return {"alerts": alerts, "layers": dict(zip([a.record.id for a in reversed(alerts)], layers, strict=True)),
            "map_svg": render_map(layers), "queue": queue,
            "provider": provider_state(session, ctx.config, now, queue),
            "feeds": feed_rows(ctx.config, ctx.engine), "now": now}


@router.get("/")
def now_page(request: Request, session: DB, ctx: WebContext = Depends(web_context),
             polled: str | None = None) -> Response:
    return page(request, "now.html", title="Now", polled=polled, **_live_context(session, ctx))


@router.get("/now/live")
def now_live(request: Request, session: DB, ctx: WebContext = Depends(web_context)) -> Response:
    return live_fragment(request, "_now_live.html", **_live_context(session, ctx))


@router.post("/feeds/{name}/poll")
async def poll_now(name: str, request: Request, user: CurrentUser = Depends(require_role("operator")),
                   ctx: WebContext = Depends(web_context)) -> Response:
    if name not in {f.name for f in ctx.config.feeds}:
        raise HTTPException(404, f"no feed named {name!r}")
    result = await run_in_threadpool(jobs_of(ctx.extras, ctx.config).poll_now, name)
    from alerts.db import session_scope

    with session_scope(ctx.engine) as session:
        audit.record(session, at=ctx.now(), actor=user.name, action="feed.poll", target=name,
                     client=client_address(request),
                     detail={"parsed": result.parsed, "new": result.new, "errors": result.errors[:3]})
    summary = f"{name}: {result.parsed} parsed, {result.new} new" + (f", error: {result.errors[0]}"
                                                                      if result.errors else "")
    return RedirectResponse("/?" + urlencode({"polled": summary[:300]}), status_code=303)
