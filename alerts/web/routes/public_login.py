"""Log in and out. Login rotates the session token (a planted cookie is worthless), is throttled per account
and per client, and is audited; logout deletes the session row, not only the cookie."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from alerts.web import audit
from alerts.web.auth import SESSION_COOKIE, LoginRefused, authenticate, end_session, load_user, start_session
from alerts.web.context import DB, WebContext, client_address, web_context
from alerts.web.templating import page

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host`` or ``/\\host`` tricks) is a place to go after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query parameter's name
    return page(request, "login.html", next=safe_next(next), error=None, name="")


@router.post("/login")
def login(request: Request, session: DB, name: str = Form(""), password: str = Form(""),
          next: str = Form("/"), ctx: WebContext = Depends(web_context)) -> Response:  # noqa: A002
    client = client_address(request)
    now = ctx.now()
    try:
        user = authenticate(session, username=name, password=password, client=client, now=now,
                            settings=ctx.settings)
    except LoginRefused as exc:
        audit.record(session, at=now, actor=name.strip()[:64] or "?", action="login.refused", client=client,
                     detail={"reason": str(exc)})
        session.commit()
        return page(request, "login.html", status_code=429 if exc.throttled else 401, next=safe_next(next),
                    error=str(exc), name=name)
    token = start_session(session, user, old_token=request.cookies.get(SESSION_COOKIE), client=client,
                          user_agent=request.headers.get("user-agent", ""), now=now, settings=ctx.settings)
    audit.record(session, at=now, actor=user.name, action="login", client=client)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=ctx.settings.secure_cookies,
                        max_age=int(ctx.settings.session_hours * 3600), path="/")
    return response


@router.post("/logout")
def logout(request: Request, session: DB, ctx: WebContext = Depends(web_context)) -> Response:
    user = load_user(request)
    end_session(session, request.cookies.get(SESSION_COOKIE))
    if user is not None:
        audit.record(session, at=ctx.now(), actor=user.name, action="logout", client=client_address(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
