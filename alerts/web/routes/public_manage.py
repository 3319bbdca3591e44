"""``/u/<token>``: one person's own subscription, from the link in their messages: change it or end it.

The link stands for that person only; the page shows their masked number and their choices and nothing
else. Opening it changes nothing; ending the subscription is a POST (with the CSRF token) that takes
effect at once and is confirmed on the page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from alerts.public.links import resolve_manage
from alerts.public.self_service import NewChoices, change_choices, unsubscribe_now, vessels_of
from alerts.web.context import DB, WebContext, web_context
from alerts.web.public_common import public_page, resolve_link
from alerts.web.routes.public_subscribe import SEVERITIES
from alerts.web.zone_choices import chosen_values, land_choices, land_value, sea_choices
from subscribers.models import Subscriber
from subscribers.phone import mask
from subscribers.preferences import format_quiet_hours
from subscribers.store import zone_codes_of

router = APIRouter()


def _manage_page(request: Request, session: DB, token: str, person: Subscriber, *, status: int = 200,
                 error: str | None = None, flash: str | None = None) -> Response:
    codes = zone_codes_of(session, person.id)  # type: ignore[arg-type]
    quiet = format_quiet_hours(person.quiet_start_min, person.quiet_end_min)
    start, _, end = quiet.partition("-")
    return public_page(request, "manage.html", status_code=status, token=token, person=person,
                       phone=mask(person.phone), seas=sea_choices(), land=land_choices(), severities=SEVERITIES,
                       ticked=chosen_values(codes), land_value=land_value(codes),
                       vessels=vessels_of(session, person.id),  # type: ignore[arg-type]
                       quiet_start=start, quiet_end=end, error=error, flash=flash)


@router.get("/u/{token}")
def manage(request: Request, token: str, session: DB) -> Response:
    found = resolve_link(request, session, token, resolve_manage)
    if isinstance(found, Response):
        return found
    return _manage_page(request, session, token, found)


@router.post("/u/{token}")
def save(request: Request, token: str, session: DB, zones: list[str] = Form([]), land_region: str = Form(""),
         min_severity: str = Form("Unknown"), language: str = Form("ko"), quiet_start: str = Form(""),
         quiet_end: str = Form(""), ctx: WebContext = Depends(web_context)) -> Response:
    found = resolve_link(request, session, token, resolve_manage)
    if isinstance(found, Response):
        return found
    quiet = f"{quiet_start}-{quiet_end}" if quiet_start and quiet_end else ""
    try:
        person = change_choices(session, found, NewChoices(zones=zones, land_region=land_region,
                                                           min_severity=min_severity, language=language,
                                                           quiet_hours=quiet), now=ctx.now())
    except ValueError as exc:
        session.rollback()
        return _manage_page(request, session, token, found, status=400, error=str(exc))
    return _manage_page(request, session, token, person, flash="저장했습니다. 바로 적용됩니다. / Saved; effective now.")


@router.post("/u/{token}/unsubscribe")
def unsubscribe(request: Request, token: str, session: DB, ctx: WebContext = Depends(web_context)) -> Response:
    found = resolve_link(request, session, token, resolve_manage)
    if isinstance(found, Response):
        return found
    unsubscribe_now(session, found, now=ctx.now())
    return public_page(request, "manage_done.html", at=ctx.now())
