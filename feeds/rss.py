"""RSS 2.0 (and RSS 1.0/RDF) feeds of CAP: mostly indexes whose items link to the CAP document."""

from __future__ import annotations

from lxml import etree

from feeds.syndication import SyndicationParser, rss_entries


class RssParser(SyndicationParser):
    """RSS items: embedded CAP becomes alerts, CAP links (enclosure, .cap/.xml, item link) become links."""

    kind = "rss"
    noun = "item"

    @staticmethod
    def entries_of(root: etree._Element, origin: str) -> list[etree._Element]:
        return rss_entries(root, origin)
