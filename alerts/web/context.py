"""What every request handler needs: the config, the database, the clock, the console settings.

One :class:`WebContext` per app, kept on ``app.state.web``; handlers reach it with ``Depends(web_context)``
and open a unit of work with ``Depends(db)``. The clock is injectable so tests can move time (session
expiry, login throttles) without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from alerts.config import Config
from alerts.db import session_scope
from alerts.web.settings import WebSettings

Clock = Callable[[], datetime]


@dataclass
class WebContext:
    config: Config
    engine: Engine
    clock: Clock
    settings: WebSettings
    #: Things other parts attach (a match trigger, a pipeline): see ``create_app``'s ``extras``.
    extras: dict[str, Any] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock()


def web_context(request: Request) -> WebContext:
    return request.app.state.web


def db(request: Request) -> Iterator[Session]:
    """One transaction per request, committed when the handler returns without error."""
    with session_scope(web_context(request).engine) as session:
        yield session


def client_address(request: Request) -> str:
    """The peer address (proxies are not trusted: a forwarded header is the client's to invent)."""
    return (request.client.host if request.client else "unknown")[:64]


#: The request's unit of work, committed BEFORE the response goes out (``scope="function"``): a client that
#: got "303 logged in" must find the session row on its very next request.
DB = Annotated[Session, Depends(db, scope="function")]
