"""Atom feeds of CAP: NWS, MeteoAlarm, Krisinformation, Google alert-hub style, "fat" or "index"."""

from __future__ import annotations

from feeds.base import FeedParser, ParseResult
from feeds.syndication import atom_entries, parse_feed


class AtomParser(FeedParser):
    """Atom 1.0 (and 0.3) feeds: embedded CAP becomes alerts, CAP links become ``ParseResult.links``."""

    kind = "atom"

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        return parse_feed(data, origin=origin, entries_of=atom_entries, noun="entry")
