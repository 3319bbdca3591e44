"""Push ingest: partners POST alerts instead of waiting to be polled.

A port authority, a VTS centre or a neighbouring agency that issues a warning should not wait for our next
poll. ``alimcast serve`` takes CAP 1.2 (or the incident JSON) by ``POST /push/<feed>`` for every feed with a
``push`` table, and each push goes through the same door as a polled document: the feed's own parser (the
hardened XML/JSON readers, the feed's signature policy), then :func:`alerts.ingest.ingest`, whose identity
check makes a replayed push a duplicate, never a second warning.

Each partner proves the push is theirs, per feed:

- ``token``: ``Authorization: Bearer <secret>``; the simplest for a partner, safe over HTTPS only;
- ``hmac``: ``X-Alimcast-Signature: sha256=<hex HMAC-SHA256(secret, body)>`` (the WebSub / GitHub form): the
  secret never travels, and a body changed on the way fails;
- ``signature``: every CAP alert carries the partner's XML signature, checked under the feed's
  ``signature = "require"`` policy; no shared secret at all.

Matching and sending are the running job's: it notices a stored alert within half a second
(:mod:`alerts.new_alert_watch`), so a pushed warning goes out as fast as one the job polled itself, on SQLite
(one writer process) as on PostgreSQL. Answers are JSON with a one-line reason; an unknown feed and a feed
that takes no pushes look the same (404), and nothing is said about a refused secret but that it was refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from alerts.config import Config, FeedConfig
from alerts.db import session_scope
from alerts.ingest import ingest
from feeds.base import ParseError
from feeds.registry import get_parser
from subscribers.sqltypes import utcnow

log = logging.getLogger("alimcast.push")

SIGNATURE_HEADER = "x-alimcast-signature"


class PushRefused(Exception):
    """A push that is not taken: ``status`` is the HTTP answer, the message its one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(slots=True)
class PushResult:
    feed: str
    new: int = 0
    duplicates: int = 0
    #: Alerts in the document that were refused (a bad signature, a bad entry); the rest were taken.
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"feed": self.feed, "new": self.new, "duplicates": self.duplicates, "errors": self.errors}


class PushIntake:
    """The feeds that take pushes, and what a push goes through before it is stored."""

    def __init__(self, config: Config, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self.feeds: dict[str, FeedConfig] = {f.name: f for f in config.feeds if f.push is not None and f.enabled}

    def feed(self, name: str) -> FeedConfig:
        feed = self.feeds.get(name)
        if feed is None:
            raise PushRefused(404, f"no push feed named {name!r}")
        return feed

    def check_size(self, feed: FeedConfig, length: int) -> None:
        assert feed.push is not None
        if length > feed.push.max_bytes:
            raise PushRefused(413, f"feed {feed.name}: the push is over the {feed.push.max_bytes} byte limit")

    def authenticate(self, feed: FeedConfig, body: bytes, headers: Mapping[str, str]) -> None:
        """Token and HMAC are checked before a byte is parsed; compare_digest keeps the time constant."""
        push = feed.push
        assert push is not None
        if push.auth == "signature":
            return  # each alert's XML signature is checked by the feed's parser
        assert push.secret is not None
        if push.auth == "token":
            given = headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), push.secret.encode()):
                raise PushRefused(401, f"feed {feed.name}: missing or wrong bearer token")
            return
        claimed = headers.get(SIGNATURE_HEADER, "")
        algorithm, _, digest = claimed.partition("=")
        expected = hmac.new(push.secret.encode(), body, hashlib.sha256).hexdigest()
        if algorithm.lower() != "sha256" or not hmac.compare_digest(digest.strip().lower(), expected):
            raise PushRefused(401, f"feed {feed.name}: missing or wrong {SIGNATURE_HEADER} (sha256=<hex HMAC>)")

    def accept(self, feed_name: str, body: bytes, headers: Mapping[str, str], *, client: str = "") -> PushResult:
        """Authenticate, parse through the feed's own parser, store. Raises :class:`PushRefused`."""
        feed = self.feed(feed_name)
        self.check_size(feed, len(body))
        try:
            self.authenticate(feed, body, headers)
        except PushRefused as refused:
            log.warning("push to %s from %s refused: %s", feed.name, client or "?", refused)
            raise
        origin = f"push to {feed.name}"
        try:
            parsed = get_parser(feed.kind, feed.options).parse(body, origin=origin)
        except ParseError as exc:
            log.warning("push to %s from %s: %s", feed.name, client or "?", exc)
            raise PushRefused(422, str(exc)) from None
        result = PushResult(feed=feed.name, errors=list(parsed.errors))
        if parsed.links:
            result.errors.append(f"{origin}: linked documents are not fetched from a push "
                                 f"({len(parsed.links)} links ignored)")
        if not parsed.alerts:
            raise PushRefused(422, result.errors[0] if result.errors else f"{origin}: no alert in the document")
        with session_scope(self.engine) as session:
            report = ingest(session, parsed.alerts, feed=feed.name, now=self.clock())
        result.new, result.duplicates = len(report.new_ids), report.duplicates
        log.info("push to %s from %s: %d alerts, %d new, %d already known%s", feed.name, client or "?",
                 len(parsed.alerts), result.new, result.duplicates,
                 f", {len(result.errors)} refused" if result.errors else "")
        return result
