"""Atom feeds of CAP: NWS, MeteoAlarm, Krisinformation, Google alert-hub style, "fat" or "index"."""

from __future__ import annotations

from lxml import etree

from feeds.syndication import SyndicationParser, atom_entries


class AtomParser(SyndicationParser):
    """Atom 1.0 (and 0.3) feeds: embedded CAP becomes alerts, CAP links become ``ParseResult.links``."""

    kind = "atom"
    noun = "entry"

    @staticmethod
    def entries_of(root: etree._Element, origin: str) -> list[etree._Element]:
        return atom_entries(root, origin)
