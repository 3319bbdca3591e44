"""Feeds: bytes from the outside world in, canonical alert records out.

One module per source format behind :class:`feeds.base.FeedParser`; fetching (httpx) and scheduling
(APScheduler) live here too. This package never imports ``alerts``.
"""

from feeds.base import FeedParser, ParseError, ParseResult
from feeds.model import Alert, Area, Circle, Info, Reference

__all__ = ["Alert", "Area", "Circle", "FeedParser", "Info", "ParseError", "ParseResult", "Reference"]
