"""CSRF protection for every unsafe request (POST, PUT, PATCH, DELETE), applied app-wide.

Three layers, each enough against a plain cross-site form post:
1. Cookies are SameSite (session Lax, anonymous token Strict), so a cross-site post carries none.
2. The Origin header (or, failing that, Referer) must name this very site when the browser sends one.
3. A synchronizer token: with a session, the random token stored in the session row; before login (the login
   form, public forms), a random token in an HttpOnly SameSite=Strict cookie. The request must carry the
   same token in the form field ``csrf_token`` or the ``X-CSRF-Token`` header (scripts and htmx).

Routers that authenticate requests otherwise (push ingest with per-feed tokens or HMACs, issue 13) list their
path prefixes in ``CSRF_EXEMPT_PREFIXES`` in their module; ``create_app`` collects them.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from alerts.web.auth import load_user

ANON_COOKIE = "alimcast_csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def csrf_token(request: Request) -> str:
    """The token a page must embed in its forms (and ``<meta name="csrf-token">`` for scripts)."""
    user = load_user(request)
    if user is not None:
        return user.csrf_token
    token = request.cookies.get(ANON_COOKIE)
    if not token or len(token) < 32:
        token = getattr(request.state, "new_anon_csrf", None) or secrets.token_urlsafe(32)
        request.state.new_anon_csrf = token
    return token


def set_anon_cookie(request: Request, response: Response, *, secure: bool) -> None:
    """Called by the app's middleware: give the browser the pre-login token a page just embedded."""
    token = getattr(request.state, "new_anon_csrf", None)
    if token:
        response.set_cookie(ANON_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")


def _same_origin(request: Request, value: str) -> bool:
    parts = urlsplit(value)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


async def csrf_protect(request: Request) -> None:
    """App-wide dependency: refuse an unsafe request without the right origin and token (403)."""
    if request.method in SAFE_METHODS:
        return
    exempt: tuple[str, ...] = getattr(request.app.state, "csrf_exempt_prefixes", ())
    if exempt and request.url.path.startswith(exempt):
        return
    origin = request.headers.get("origin")
    referer = request.headers.get("referer")
    if origin is not None and origin != "null":
        if not _same_origin(request, origin):
            raise HTTPException(403, "CSRF check failed: request from another site")
    elif origin == "null" or (referer and not _same_origin(request, referer)):
        raise HTTPException(403, "CSRF check failed: request from another site")
    sent = request.headers.get(HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
        form = await request.form()  # cached on the request: the handler's Form() parameters read it again
        value = form.get(FIELD)
        sent = value if isinstance(value, str) else None
    user = await run_in_threadpool(load_user, request)
    if user is None and request.url.path == "/logout":
        return  # no session to end: nothing to protect (a logout after the session expired just works)
    expected = user.csrf_token if user is not None else request.cookies.get(ANON_COOKIE)
    if not sent or not expected or not secrets.compare_digest(sent, expected):
        raise HTTPException(403, "CSRF check failed: missing or wrong token; reload the page and try again")
