"""RSS 2.0 (and RSS 1.0/RDF) feeds of CAP: mostly indexes whose items link to the CAP document."""

from __future__ import annotations

from feeds.base import FeedParser, ParseResult
from feeds.syndication import parse_feed, rss_entries


class RssParser(FeedParser):
    """RSS items: embedded CAP becomes alerts, CAP links (enclosure, .cap/.xml, item link) become links."""

    kind = "rss"

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        return parse_feed(data, origin=origin, entries_of=rss_entries, noun="item")
