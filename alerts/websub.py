"""WebSub: where an Atom or RSS feed advertises a hub, subscribe and take its pushes; polling stays.

A hub pushes a feed's new content the moment the publisher pings it, instead of at our next poll. Per feed
(``websub = true`` on an atom/rss ``[[feeds]]`` entry, with a ``[websub]`` table), after each poll that finds a
``<link rel="hub">`` the running job subscribes (again before the lease runs out) with a callback under
``[websub] callback_url`` and a secret of its own for that feed. ``alimcast serve`` answers the hub's intent
check and takes the content it distributes: only with a valid ``X-Hub-Signature`` (an HMAC of the body under
that secret) does it go through the feed's own parser and into the store. Anything else is ignored, yet
answered 202 as the WebSub recommendation says, so that a forger learns nothing. Polling goes on at the
feed's interval: a hub that dies or drops the subscription costs latency, never a warning.

The per-feed secret is derived (HMAC of the feed name under ``[websub] secret``, from the environment), so the
job that subscribes and the server that checks agree without sharing state, and a leaked one names one feed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from alerts.config import Config, ConfigError, _secret
from alerts.db import session_scope
from alerts.ingest import ingest
from alerts.push import PushRefused, PushResult
from feeds.base import ParseError
from feeds.poller import FeedSpec, PollOutcome
from feeds.registry import get_parser
from subscribers.sqltypes import utcnow

log = logging.getLogger("alimcast.websub")

#: ``X-Hub-Signature`` methods WebSub allows, by the name the hub writes.
SIGNATURE_METHODS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
                     "sha512": hashlib.sha512}
WEBSUB_KINDS = ("atom", "rss")


@dataclass(frozen=True, slots=True)
class WebSubSettings:
    callback_url: str
    master_secret: str
    lease_seconds: int = 86_400
    feeds: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_config(cls, config: Config) -> WebSubSettings | None:
        """``[websub] callback_url``, ``secret`` (env:), ``lease_seconds``; feeds with ``websub = true``.
        None when no feed asks for WebSub. Errors are one-line :class:`ConfigError` naming the key."""
        wanted: set[str] = set()
        for entry in config.raw.get("feeds", []) or []:
            if not isinstance(entry, dict) or "websub" not in entry:
                continue
            name = entry.get("name", "?")
            if not isinstance(entry["websub"], bool):
                raise ConfigError(f"[[feeds]] {name} websub", "must be true or false")
            if entry["websub"]:
                if entry.get("kind") not in WEBSUB_KINDS:
                    raise ConfigError(f"[[feeds]] {name} websub", "only atom and rss feeds advertise WebSub hubs")
                wanted.add(str(name))
        if not wanted:
            return None
        table: Any = config.raw.get("websub")
        if not isinstance(table, dict):
            raise ConfigError("[websub]", "feeds with websub = true need a [websub] table "
                              "(callback_url, secret = \"env:VARIABLE\")")
        url = table.get("callback_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ConfigError("[websub] callback_url", "must be the public http(s) address of /websub on "
                              "alimcast serve, e.g. https://alerts.example.org/websub")
        secret = _secret(table.get("secret"), "[websub] secret", required=True)
        assert secret is not None
        lease = table.get("lease_seconds", 86_400)
        if isinstance(lease, bool) or not isinstance(lease, int) or lease < 60:
            raise ConfigError("[websub] lease_seconds", "must be a whole number of seconds, at least 60")
        return cls(url.rstrip("/"), secret, lease, frozenset(wanted))

    def secret_for(self, feed: str) -> str:
        return hmac.new(self.master_secret.encode(), b"websub:" + feed.encode(), hashlib.sha256).hexdigest()

    def callback_for(self, feed: str) -> str:
        return f"{self.callback_url}/{feed}"


class WebSubSubscriber:
    """The running job's side: subscribe after a poll that shows a hub, and again before the lease ends."""

    def __init__(self, settings: WebSubSettings, *, client: httpx.Client | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.client = client or httpx.Client(timeout=10)
        self.clock = clock
        #: feed -> (hub, topic, when to renew)
        self._subscribed: dict[str, tuple[str, str, float]] = {}

    def after_poll(self, spec: FeedSpec, outcome: PollOutcome) -> bool:
        """Subscribe when due; returns whether a subscription request was made (and accepted by the hub)."""
        if spec.name not in self.settings.feeds:
            return False
        known = self._subscribed.get(spec.name)
        hub, topic = outcome.hub, outcome.topic
        if hub is None and outcome.not_modified and known is not None:
            hub, topic = known[0], known[1]  # a 304 carries no document: the hub is the one last seen
        if not hub or not topic:
            return False
        if known is not None and known[:2] == (hub, topic) and self.clock() < known[2]:
            return False
        form = {"hub.mode": "subscribe", "hub.topic": topic,
                "hub.callback": self.settings.callback_for(spec.name),
                "hub.secret": self.settings.secret_for(spec.name),
                "hub.lease_seconds": str(self.settings.lease_seconds)}
        try:
            answer = self.client.post(hub, data=form)
        except httpx.HTTPError as exc:
            log.warning("feed %s: WebSub hub %s unreachable (%s); polling carries on", spec.name, hub, exc)
            return False
        if answer.status_code not in (202, 204):
            log.warning("feed %s: WebSub hub %s refused the subscription: HTTP %d; polling carries on",
                        spec.name, hub, answer.status_code)
            return False
        renew_at = self.clock() + self.settings.lease_seconds * 0.8
        self._subscribed[spec.name] = (hub, topic, renew_at)
        log.info("feed %s: subscribed at WebSub hub %s for %s", spec.name, hub, topic)
        return True

    def close(self) -> None:
        self.client.close()


class WebSubIntake:
    """``alimcast serve``'s side: the hub's intent check, and its signed content into the store."""

    def __init__(self, config: Config, settings: WebSubSettings, engine: Engine, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.feeds = {f.name: f for f in config.feeds if f.name in settings.feeds and f.enabled}

    def verify_intent(self, feed: str, params: Mapping[str, str]) -> str:
        """The challenge to echo for a (un)subscription of ours; :class:`PushRefused` 404 otherwise."""
        mode = params.get("hub.mode", "")
        if feed not in self.feeds:
            raise PushRefused(404, f"no WebSub feed named {feed!r}")
        if mode == "denied":
            log.warning("feed %s: WebSub hub denied the subscription (%s); polling carries on", feed,
                        params.get("hub.reason", "no reason given"))
            return ""
        challenge = params.get("hub.challenge", "")
        if mode not in ("subscribe", "unsubscribe") or not challenge:
            raise PushRefused(404, f"feed {feed}: not a WebSub intent check")
        return challenge

    def accept(self, feed_name: str, body: bytes, headers: Mapping[str, str]) -> PushResult | None:
        """Store what a hub distributed when its signature is right; None when it is ignored."""
        feed = self.feeds.get(feed_name)
        if feed is None:
            raise PushRefused(404, f"no WebSub feed named {feed_name!r}")
        method, _, digest = headers.get("x-hub-signature", "").partition("=")
        algorithm = SIGNATURE_METHODS.get(method.lower())
        secret = self.settings.secret_for(feed.name).encode()
        if algorithm is None or not hmac.compare_digest(digest.strip().lower(),
                                                        hmac.new(secret, body, algorithm).hexdigest()):
            log.warning("feed %s: WebSub content with a missing or wrong X-Hub-Signature ignored", feed.name)
            return None
        origin = f"WebSub push to {feed.name}"
        try:
            parsed = get_parser(feed.kind, feed.options).parse(body, origin=origin)
        except ParseError as exc:
            log.warning("%s", exc)
            return PushResult(feed=feed.name, errors=[str(exc)])
        result = PushResult(feed=feed.name, errors=list(parsed.errors))
        if parsed.alerts:
            with session_scope(self.engine) as session:
                report = ingest(session, parsed.alerts, feed=feed.name, now=self.clock())
            result.new, result.duplicates = len(report.new_ids), report.duplicates
        log.info("feed %s: WebSub content: %d alerts, %d new (linked documents wait for the next poll)",
                 feed.name, len(parsed.alerts), result.new)
        return result
