"""What the public pages (``/subscribe``, ``/u/…``, ``/a/…``) share: their settings, the provider that sends
codes, the throttle on bad links, and a page renderer with the public layout.

The public pages follow the console's security rules: every form carries the CSRF token (the app-wide
check refuses a post without it), every response is ``no-store``, and unknown links are counted per client
address so that trying tokens is slowed down as guessing passwords is (it cannot succeed anyway: 192 bits).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from alerts.delivery.providers.base import Provider
from alerts.delivery.providers.registry import create_provider
from alerts.public import throttle
from alerts.public.settings import PublicSettings, public_settings
from alerts.public.verification import CodeSender, provider_sender
from alerts.web.context import WebContext, client_address, web_context
from alerts.web.templating import page

T = TypeVar("T")

#: Unknown or expired links one client may open per hour before being refused for a while.
BAD_LINKS_PER_HOUR = 30


def settings_of(ctx: WebContext) -> PublicSettings:
    cached = ctx.extras.get("public_settings")
    if cached is None:
        cached = ctx.extras["public_settings"] = public_settings(ctx.config)
    return cached


def provider_of(ctx: WebContext) -> Provider:
    """The configured provider (tests may pass one in ``extras["provider"]``)."""
    provider = ctx.extras.get("provider")
    if provider is None:
        provider = ctx.extras["provider"] = create_provider(ctx.config.provider.kind, ctx.config.provider.settings)
    return provider


def sender_of(ctx: WebContext) -> CodeSender:
    sender = ctx.extras.get("code_sender")
    if sender is None:
        sender = ctx.extras["code_sender"] = provider_sender(ctx.config, provider_of(ctx), settings_of(ctx))
    return sender


def links_throttled(session: Session, request: Request) -> bool:
    ctx = web_context(request)
    key = f"link:client:{throttle.digest('client', client_address(request))}"
    return throttle.count(session, key, now=ctx.now()) >= BAD_LINKS_PER_HOUR


def count_bad_link(session: Session, request: Request) -> None:
    ctx = web_context(request)
    throttle.add(session, f"link:client:{throttle.digest('client', client_address(request))}", now=ctx.now())


def public_page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    ctx = web_context(request)
    return page(request, template, status_code=status_code, sender_name=ctx.config.sender_name, **context)


def gone(request: Request, *, throttled: bool = False) -> HTMLResponse:
    """The same answer for an unknown, expired or someone else's link: nothing to learn from it."""
    return public_page(request, "public_gone.html", status_code=429 if throttled else 404, throttled=throttled)


def resolve_link(request: Request, session: Session, token: str,
                 resolve: Callable[[Session, str, datetime], T | None]) -> T | Response:
    """What a personal link names (``resolve``: the ack or manage resolver), or the page to answer instead: the
    same "gone" page for an unknown, expired or throttled link, and a bad link counts toward the throttle."""
    if links_throttled(session, request):
        return gone(request, throttled=True)
    found = resolve(session, token, web_context(request).now())
    if found is None:
        count_bad_link(session, request)
        session.commit()
        return gone(request)
    return found
