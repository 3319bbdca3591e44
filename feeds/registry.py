"""Kind name -> parser class. Lazy imports keep ``alimcast --help`` fast and let one broken module
fail only the feeds of its own kind."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from feeds.base import FeedParser, ParseError

#: kind -> "module:Class". One module per source format.
PARSERS: dict[str, str] = {
    "cap": "feeds.cap:CapParser",
    "atom": "feeds.atom:AtomParser",
    "rss": "feeds.rss:RssParser",
    "kma-pwncd": "feeds.kma_pwncd:KmaPwnCdParser",
    "kma-apihub-now": "feeds.kma_apihub:KmaApiHubNowParser",
    "nws": "feeds.nws:NwsParser",
    "meteoalarm": "feeds.meteoalarm:MeteoAlarmParser",
    "nga-msi": "feeds.nga_msi:NgaMsiParser",
    "usgs": "feeds.usgs:UsgsParser",
    "incident-json": "feeds.incident_json:IncidentJsonParser",
}


def kinds() -> list[str]:
    return list(PARSERS)


def parser_class(kind: str) -> type[FeedParser]:
    target = PARSERS.get(kind)
    if target is None:
        raise ParseError(f"unknown feed kind {kind!r} (known: {', '.join(PARSERS)})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ParseError(f"feed kind {kind!r} is not implemented yet") from exc
        raise
    cls: type[FeedParser] = getattr(module, class_name)
    return cls


def get_parser(kind: str, options: Mapping[str, Any] | None = None) -> FeedParser:
    return parser_class(kind)(options)


def detect_kind(data: bytes) -> str:
    """Guess the kind of a document from its first bytes, for ``feeds parse`` without ``--kind``."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"{", b"[")):
        text = data[:20000]
        if b'"broadcast-warn"' in text:
            return "nga-msi"
        if b'"warnings"' in text and b'"alert"' in text:
            return "meteoalarm"
        if b'"OpenAPI_ServiceResponse"' in text or (b'"response"' in text and b'"header"' in text):
            return "kma-pwncd"
        if b"usgs" in text.lower() or b'"mag"' in text:
            return "usgs"
        if b'"features"' in text:
            return "nws"
        raise ParseError("JSON document of unknown kind: pass --kind")
    if head.startswith(b"#"):
        return "kma-apihub-now"
    if b"<rss" in head:
        return "rss"
    if b"<feed" in head:
        return "atom"
    if b"<" in head:
        return "cap"
    raise ParseError("not XML or JSON: cannot guess the kind, pass --kind")
