"""``/subscribe``: a person subscribes their own phone (public, mobile first, Korean with English).

phone -> a code sent through the provider -> the code -> zones, region, vessel, severity, language, quiet
hours -> the consent text (its version and the time recorded) -> subscribed, with a confirmation message.

The attempt is carried by a random ticket in an HttpOnly, SameSite=Strict cookie scoped to ``/subscribe``;
the phone number never goes back to the page. Every answer is the same whether or not the number was
subscribed before (see ``alerts.public.verification``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from alerts.public.verification import (
    Choices,
    SubscribeError,
    check_code,
    complete_subscription,
    request_code,
    send_confirmation,
    verified_ticket,
)
from alerts.web.context import DB, WebContext, client_address, web_context
from alerts.web.public_common import public_page, sender_of, settings_of
from alerts.web.zone_choices import land_choices, sea_choices
from alerts.web.zone_svg import sea_map
from feeds.model import SEVERITY_RANK
from subscribers.store import zone_codes_of

router = APIRouter()

TICKET_COOKIE = "alimcast_sub"
COOKIE_PATH = "/subscribe"
SEVERITIES = [("Unknown", "모든 특보 / all"), ("Moderate", "주의보 이상 / advisories and up"),
              ("Severe", "경보 이상 / warnings and up"), ("Extreme", "매우 심각한 특보만 / extreme only")]
EXPIRED = "인증번호가 만료되었습니다. 처음부터 다시 해 주세요. / The code expired; start again."
NO_CONSENT = "동의 내용을 읽고 동의해 주세요. / Please read and accept the consent text."
TOO_LATE = "시간이 지나 처음부터 다시 해야 합니다. / This took too long; start again."
assert all(value in SEVERITY_RANK for value, _ in SEVERITIES)


def _phone_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    return public_page(request, "subscribe_phone.html", status_code=status, error=error, step=1)


@router.get("/subscribe")
def phone_form(request: Request) -> Response:
    return _phone_page(request)


@router.post("/subscribe")
def send_code(request: Request, session: DB, phone: str = Form(""),
              ctx: WebContext = Depends(web_context)) -> Response:
    asked = request_code(session, ctx.config, phone, client=client_address(request), now=ctx.now(),
                         send=sender_of(ctx), settings=settings_of(ctx))
    if asked.status != "sent" or asked.ticket is None:
        status = {"throttled": 429, "bad_phone": 400}.get(asked.status, 503)
        return _phone_page(request, status, asked.message)
    response = RedirectResponse("/subscribe/code", status_code=303)
    response.set_cookie(TICKET_COOKIE, asked.ticket, httponly=True, samesite="strict", path=COOKIE_PATH,
                        secure=ctx.settings.secure_cookies, max_age=40 * 60)
    return response


@router.get("/subscribe/code")
def code_form(request: Request) -> Response:
    if not request.cookies.get(TICKET_COOKIE):
        return RedirectResponse("/subscribe", status_code=303)
    return public_page(request, "subscribe_code.html", error=None, step=2,
                       minutes=int(settings_of(web_context(request)).subscribe.code_lifetime.total_seconds() // 60))


@router.post("/subscribe/code")
def verify_code(request: Request, session: DB, code: str = Form(""),
                ctx: WebContext = Depends(web_context)) -> Response:
    ticket = request.cookies.get(TICKET_COOKIE, "")
    checked = check_code(session, ctx.config, ticket, code, client=client_address(request), now=ctx.now(),
                         settings=settings_of(ctx))
    if checked.status == "ok":
        return RedirectResponse("/subscribe/choose", status_code=303)
    minutes = int(settings_of(ctx).subscribe.code_lifetime.total_seconds() // 60)
    if checked.status == "wrong":
        error = f"인증번호가 맞지 않습니다 ({checked.attempts_left}번 더 입력할 수 있습니다). / Wrong code " \
                f"({checked.attempts_left} tries left)."
        return public_page(request, "subscribe_code.html", status_code=400, error=error, step=2, minutes=minutes)
    if checked.status == "throttled":
        error = "잘못된 입력이 너무 많습니다. 잠시 후 다시 시도해 주세요. / Too many wrong codes; try again later."
        return public_page(request, "subscribe_code.html", status_code=429, error=error, step=2, minutes=minutes)
    response = _phone_page(request, 410, EXPIRED)
    response.delete_cookie(TICKET_COOKIE, path=COOKIE_PATH)
    return response


def _choose_page(request: Request, session: Session, status: int = 200, error: str | None = None,
                 form: dict | None = None) -> Response:
    settings = settings_of(web_context(request))
    return public_page(request, "subscribe_choose.html", status_code=status, error=error, step=3, map=sea_map(session),
                       seas=sea_choices(), land=land_choices(), severities=SEVERITIES,
                       consent_text=settings.subscribe.consent_text,
                       consent_version=settings.subscribe.consent_version, form=form or {})


@router.get("/subscribe/choose")
def choose_form(request: Request, session: DB, ctx: WebContext = Depends(web_context)) -> Response:
    if verified_ticket(session, request.cookies.get(TICKET_COOKIE, ""), now=ctx.now()) is None:
        return RedirectResponse("/subscribe", status_code=303)
    return _choose_page(request, session)


@router.post("/subscribe/choose")
def subscribe(request: Request, session: DB, zones: list[str] = Form([]), land_region: str = Form(""),
              vessel: str = Form(""), min_severity: str = Form("Unknown"), language: str = Form("ko"),
              quiet_start: str = Form(""), quiet_end: str = Form(""), consent: str = Form(""),
              consent_version: str = Form(""), ctx: WebContext = Depends(web_context)) -> Response:
    ticket = request.cookies.get(TICKET_COOKIE, "")
    form = {"zones": zones, "land_region": land_region, "vessel": vessel, "min_severity": min_severity,
            "language": language, "quiet_start": quiet_start, "quiet_end": quiet_end}
    if verified_ticket(session, ticket, now=ctx.now()) is None:
        return _phone_page(request, 410, TOO_LATE)
    if consent != "yes":
        return _choose_page(request, session, 400, NO_CONSENT, form)
    quiet = f"{quiet_start}-{quiet_end}" if quiet_start and quiet_end else ""
    choices = Choices(zones=zones, land_region=land_region, vessel=vessel, min_severity=min_severity,
                      language=language, quiet_hours=quiet, consent_version=consent_version)
    try:
        person, link = complete_subscription(session, ctx.config, ticket, choices, now=ctx.now(),
                                             settings=settings_of(ctx))
    except SubscribeError as exc:
        return _choose_page(request, session, 400, str(exc), form)
    except LookupError:
        return _phone_page(request, 410, TOO_LATE)
    codes = zone_codes_of(session, person.id)  # type: ignore[arg-type]
    session.commit()  # subscribed before the confirmation is sent: a slow provider must not lose it
    confirmed = send_confirmation(ctx.config, sender_of(ctx), person, link, codes, settings=settings_of(ctx))
    response = public_page(request, "subscribe_done.html", step=4, confirmed=confirmed, manage_url=link,
                           consent_version=settings_of(ctx).subscribe.consent_version, consent_at=ctx.now())
    response.delete_cookie(TICKET_COOKIE, path=COOKIE_PATH)
    return response
