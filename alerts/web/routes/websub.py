"""``GET|POST /websub/<feed>``: the hub's intent check and its content distribution (see :mod:`alerts.websub`).

Like ``/push/``, authenticated by a signature over the body, never by a browser session: exempt from CSRF.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from alerts.push import PushRefused
from alerts.websub import WebSubIntake

WEBSUB_PREFIX = "/websub/"
#: A hub's distribution is a feed document: far smaller than this.
MAX_BYTES = 10_000_000


def websub_router(intake: WebSubIntake) -> APIRouter:
    router = APIRouter()

    @router.get(WEBSUB_PREFIX + "{feed_name}")
    async def intent(feed_name: str, request: Request) -> Response:
        try:
            return PlainTextResponse(intake.verify_intent(feed_name, dict(request.query_params)))
        except PushRefused as refused:
            return JSONResponse({"error": str(refused)}, status_code=refused.status)

    @router.post(WEBSUB_PREFIX + "{feed_name}")
    async def content(feed_name: str, request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BYTES:
                return JSONResponse({"error": "over the size limit"}, status_code=413)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            await run_in_threadpool(intake.accept, feed_name, bytes(body), headers)
        except PushRefused as refused:
            return JSONResponse({"error": str(refused)}, status_code=refused.status)
        return Response(status_code=202)  # also when ignored: a forger learns nothing

    return router
