"""``/metrics`` on the web console: the Prometheus text format (alerts/metrics.py), for a scraper, not a person.

Named ``public_*`` so the console's login (a browser session) does not apply: Prometheus cannot log in.
Instead the scrape must carry ``Authorization: Bearer <token>`` with the token of ``[metrics] token``
(``env:VARIABLE``); with no token configured the endpoint answers 404, so an open console never exposes the
queue and the feeds' health by accident. The numbers read from the database are the same as a worker's
``[metrics] port`` shows; the per-process counters are this web process's own (mostly zero: the workers
send), so scrape the workers for provider latency and outcomes.
"""

from __future__ import annotations

import hmac
import os

from fastapi import APIRouter, Depends, Request, Response

from alerts.metrics import CONTENT_TYPE, exposition
from alerts.web.context import WebContext, web_context

router = APIRouter()


def metrics_token(raw: dict[str, object]) -> str | None:
    """``[metrics] token``: a literal or ``env:VARIABLE``; None when unset or the variable is empty."""
    table = raw.get("metrics")
    token = table.get("token") if isinstance(table, dict) else None
    if not isinstance(token, str) or not token:
        return None
    if token.startswith("env:"):
        return os.environ.get(token[4:]) or None
    return token


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, ctx: WebContext = Depends(web_context)) -> Response:
    token = metrics_token(ctx.config.raw)
    if token is None:
        return Response("metrics are off on the web app: set [metrics] token\n", status_code=404,
                        media_type="text/plain")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response("unauthorized\n", status_code=401, media_type="text/plain",
                        headers={"WWW-Authenticate": "Bearer"})
    return Response(exposition(ctx.engine), media_type=CONTENT_TYPE)
