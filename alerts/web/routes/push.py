"""``POST /push/<feed>``: the HTTP side of push ingest (see :mod:`alerts.push`).

Machine to machine: authenticated per feed by a token, an HMAC of the body or the alert's XML signature,
never by a browser session, so the console's CSRF check does not apply here (there is no cookie to ride).
The body is read with the feed's size cap before anything else happens.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from alerts.push import PushIntake, PushRefused

#: Path prefix, for a CSRF middleware's exemption list.
PUSH_PREFIX = "/push/"


def push_router(intake: PushIntake) -> APIRouter:
    router = APIRouter()

    @router.post(PUSH_PREFIX + "{feed_name}")
    async def push(feed_name: str, request: Request) -> JSONResponse:
        client = request.client.host if request.client else ""
        try:
            feed = intake.feed(feed_name)
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit():
                intake.check_size(feed, int(declared))
            assert feed.push is not None
            body = bytearray()
            async for chunk in request.stream():
                body.extend(chunk)
                intake.check_size(feed, len(body))
            headers = {k.lower(): v for k, v in request.headers.items()}
            result = await run_in_threadpool(intake.accept, feed_name, bytes(body), headers, client=client)
        except PushRefused as refused:
            return JSONResponse({"error": str(refused)}, status_code=refused.status)
        return JSONResponse(result.to_json(), status_code=202)

    return router
