"""The one small interface every source format implements.

A parser is a pure function of bytes: it neither fetches nor stores, so the same class serves the
poller, ``alimcast feeds parse`` and the fuzz tests. Documents that only *link* to CAP (index feeds)
return the links; the poller fetches them with the same limits and hands them to the ``cap`` parser.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from feeds.model import Alert


class ParseError(Exception):
    """The only exception a parser may let escape: its message is the one-line reason shown to operators."""


@dataclass(slots=True)
class ParseResult:
    alerts: list[Alert] = field(default_factory=list)
    #: One line per entry that was skipped (bad entry in an otherwise good feed): the rest still counts.
    errors: list[str] = field(default_factory=list)
    #: CAP documents an index feed points to, to be fetched and parsed as ``cap``.
    links: list[str] = field(default_factory=list)
    #: A WebSub hub the feed advertises (``<link rel="hub">``) and the topic to subscribe to (its ``self``).
    hub: str | None = None
    topic: str | None = None


class FeedParser(ABC):
    """Base class of every source format; subclasses are described by class attributes (Apprise style)."""

    #: The ``kind`` name used in config.toml and ``--kind``.
    kind: ClassVar[str]
    #: True for "what is active now" sources (KMA API Hub now): a warning missing from the latest
    #: snapshot has ended.
    snapshot: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        #: Per-feed options from config.toml (e.g. incident-json field mapping, extra geocode names).
        self.options: Mapping[str, Any] = options or {}

    @abstractmethod
    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        """Turn one fetched document into alerts. ``origin`` (URL or path) is only for messages.

        Raise :class:`ParseError` when the whole document is unusable; report bad entries in
        ``ParseResult.errors`` and go on with the rest.
        """
