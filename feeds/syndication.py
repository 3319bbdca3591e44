"""What Atom and RSS CAP feeds have in common: an envelope of entries, each carrying CAP or pointing to it.

feedparser reads the envelope (ids, links with xml:base resolution, titles, dates) because it knows every
dialect of both formats; it is useless for the CAP inside (it flattens ``cap:*`` elements and keeps only the
last polygon), so the CAP is read from the same bytes with the hardened lxml tree and
:func:`feeds.cap.parse_cap_element`. The document is parsed by lxml first, so a DTD/XXE document is refused
before feedparser ever sees it.

feedparser is only asked when its answer is used: the links of an entry without inline CAP ("index"
entries, escaped CAP). When every entry carries its CAP inline ("fat" feeds: NWS, MeteoAlarm) nothing of
the envelope but the entry id is read, and the lxml tree gives that: feedparser costs about 1 ms per entry,
ten times the CAP parse itself (benchmarks/bench_feed_parse.py).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urljoin, urlparse

import feedparser
from lxml import etree

from feeds.base import FeedParser, ParseError, ParseResult
from feeds.cap import CAP_ALERT_TAGS, CAP_NAMESPACES, PolygonChecks, is_cap_alert, parse_cap_element
from feeds.signature import SignaturePolicy
from feeds.xmlsafe import local_name, namespace, parse_xml

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM03_NS = "http://purl.org/atom/ns#"
RSS1_NS = "http://purl.org/rss/1.0/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

#: feedparser costs about 1 ms per entry; past this many (no real CAP feed is near it) the lxml tree alone
#: names the entries, so a hostile 5 MB feed of tiny entries cannot stall a poll for minutes.
FEEDPARSER_MAX_ENTRIES = 2000

CAP_MIME_TYPES = ("application/cap+xml", "application/common-alerting-protocol+xml")


@dataclass(slots=True)
class Link:
    href: str
    rel: str = "alternate"
    type: str = ""


@dataclass(slots=True)
class Envelope:
    """The feedparser view of one entry: just enough to name it and to follow it."""

    id: str | None = None
    title: str | None = None
    links: list[Link] = field(default_factory=list)


def _prefix(origin: str) -> str:
    return f"{origin}: " if origin else ""


def atom_entries(root: etree._Element, origin: str) -> list[etree._Element]:
    if local_name(root) != "feed" or namespace(root) not in (ATOM_NS, ATOM03_NS):
        raise ParseError(f"{_prefix(origin)}not an Atom feed: root element <{local_name(root) or '?'}> "
                         f"(namespace {namespace(root) or 'none'})")
    return [child for child in root if isinstance(child.tag, str) and local_name(child) == "entry"
            and namespace(child) == namespace(root)]


def rss_entries(root: etree._Element, origin: str) -> list[etree._Element]:
    if local_name(root) == "rss" and namespace(root) is None:
        channel = root.find("channel")
        return [] if channel is None else channel.findall("item")
    if local_name(root) == "RDF" and namespace(root) == RDF_NS:
        return root.findall(f"{{{RSS1_NS}}}item")
    raise ParseError(f"{_prefix(origin)}not an RSS feed: root element <{local_name(root) or '?'}> "
                     f"(namespace {namespace(root) or 'none'})")


def _envelopes_from_feedparser(data: bytes, origin: str, rss_guid_is_link: bool) -> list[Envelope] | None:
    headers = {"content-location": origin} if urlparse(origin).scheme in ("http", "https") else {}
    try:
        parsed = feedparser.parse(data, response_headers=headers, sanitize_html=False,
                                  resolve_relative_uris=True)
    except Exception:  # noqa: BLE001 - feedparser is only a convenience here; lxml already holds the tree
        return None
    out: list[Envelope] = []
    for entry in parsed.get("entries", []):
        links = [Link(str(link.get("href", "")), str(link.get("rel", "alternate")), str(link.get("type", "")))
                 for link in entry.get("links", []) if link.get("href")]
        # feedparser copies the entry id into ``link`` when there is no link ("guidislink"). An RSS
        # permalink guid is a URL by definition; an Atom id is only a name and is never followed.
        if not links and entry.get("link") and (rss_guid_is_link or not entry.get("guidislink")):
            links.append(Link(str(entry["link"])))
        out.append(Envelope(id=_clean(entry.get("id")), title=_clean(entry.get("title")), links=links))
    return out


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value or None


def _envelope_from_tree(entry: etree._Element, *, id_only: bool = False) -> Envelope:
    """Fallback when feedparser fails or disagrees with lxml on the entry count (rare, but never fatal),
    and the whole envelope of a fat entry (``id_only``: its id names it in messages, nothing else is read)."""
    env = Envelope()
    for child in entry:
        if not isinstance(child.tag, str):
            continue
        name = local_name(child)
        if name in ("id", "guid") and env.id is None:
            env.id = _clean("".join(child.itertext()))
            if id_only:
                return env
        elif name == "title" and env.title is None:
            env.title = _clean("".join(child.itertext()))
        elif name == "link":
            href = child.get("href") or _clean("".join(child.itertext()))
            if href:
                env.links.append(Link(href, child.get("rel", "alternate"), child.get("type", "")))
        elif name == "enclosure" and child.get("url"):
            env.links.append(Link(child.get("url", ""), "enclosure", child.get("type", "")))
    return env


def _absolute(links: list[Link], origin: str) -> list[Link]:
    """Links we can fetch: http(s) only, relative ones resolved against an http(s) origin."""
    base = origin if urlparse(origin).scheme in ("http", "https") else ""
    out: list[Link] = []
    for link in links:
        href = urljoin(base, link.href) if base else link.href
        if urlparse(href).scheme in ("http", "https") and urlparse(href).netloc:
            out.append(Link(href, link.rel, link.type))
    return out


def cap_link(links: list[Link]) -> str | None:
    """The link most likely to be the CAP document: a CAP media type, then a .cap/.xml path, then the page."""
    for link in links:
        if link.type.split(";")[0].strip().lower() in CAP_MIME_TYPES:
            return link.href
    for link in links:
        if urlparse(link.href).path.lower().endswith((".cap", ".xml")):
            return link.href
    for link in links:
        if link.rel in ("alternate", ""):
            return link.href
    return links[0].href if links else None


def _escaped_cap(entry: etree._Element, origin: str) -> list[etree._Element]:
    """CAP sent as escaped text inside content/description rather than as inline XML."""
    found: list[etree._Element] = []
    for child in entry:
        if not isinstance(child.tag, str) or local_name(child) not in ("content", "description", "summary"):
            continue
        text = (child.text or "").strip()
        if text.startswith("<") and any(ns in text for ns in CAP_NAMESPACES):
            inner = parse_xml(text.encode("utf-8"), origin=origin)
            if is_cap_alert(inner):
                found.append(inner)
    return found


def parse_feed(data: bytes, *, origin: str, entries_of: Callable[[etree._Element, str], list[etree._Element]],
               noun: str, signatures: SignaturePolicy | None = None) -> ParseResult:
    """Alerts from "fat" entries, links from "index" entries, one error line per unusable entry."""
    root = parse_xml(data, origin=origin)
    entries = entries_of(root, origin)
    inline = [list(entry.iter(*CAP_ALERT_TAGS)) for entry in entries]
    envelopes = None
    if not all(inline) and len(entries) <= FEEDPARSER_MAX_ENTRIES:
        envelopes = _envelopes_from_feedparser(data, origin, rss_guid_is_link=noun == "item")
    if envelopes is None or len(envelopes) != len(entries):
        fat = all(inline)
        envelopes = [_envelope_from_tree(entry, id_only=fat) for entry in entries]
    result = ParseResult()
    checks = PolygonChecks()  # one vectorised validity check for every polygon of the feed
    seen_links: set[str] = set()
    for number, (entry, env, caps) in enumerate(zip(entries, envelopes, inline, strict=True), start=1):
        name = f"{noun} {env.id}" if env.id else f"{noun} #{number}"
        where = f"{origin} {name}" if origin else name
        try:
            if not caps:
                caps = _escaped_cap(entry, where)
            if caps:
                # all or nothing per entry: a half-read entry would hide which of its alerts went missing
                alerts = [parse_cap_element(elem, origin=where, checks=checks, signatures=signatures)
                          for elem in caps]
                result.alerts.extend(alerts)
                continue
        except ParseError as exc:
            result.errors.append(str(exc))
            continue
        link = cap_link(_absolute(env.links, origin))
        if link is None:
            result.errors.append(f"{where}: no embedded CAP alert and no http(s) link to one")
            continue
        if link not in seen_links:
            seen_links.add(link)
            result.links.append(link)
    checks.run()
    result.hub, result.topic = websub_links(root, origin)
    return result


def websub_links(root: etree._Element, origin: str) -> tuple[str | None, str | None]:
    """The WebSub hub and topic a feed advertises: Atom ``<link rel="hub|self">`` on the feed, or the same
    Atom links inside an RSS ``<channel>``. Only http(s) hubs count; the topic defaults to where the feed
    was fetched from."""
    scope = root.find("channel") if local_name(root) == "rss" else root
    hub = topic = None
    for link in [] if scope is None else scope:
        if not isinstance(link.tag, str) or local_name(link) != "link" or namespace(link) not in (ATOM_NS, None):
            continue
        rel, href = (link.get("rel") or "").strip(), (link.get("href") or "").strip()
        if rel == "hub" and hub is None and urlparse(href).scheme in ("http", "https"):
            hub = href
        elif rel == "self" and topic is None and href:
            topic = urljoin(origin, href)
    if hub is None:
        return None, None
    return hub, topic or (origin if urlparse(origin).scheme in ("http", "https") else None)


class SyndicationParser(FeedParser):
    """Atom and RSS share everything but how entries are found: subclasses name ``entries_of`` and ``noun``.

    Options: ``signature`` and ``trusted_certs`` apply to every embedded or linked CAP alert.
    """

    noun: ClassVar[str]

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.signatures = SignaturePolicy.from_options(self.options)

    @staticmethod
    @abstractmethod
    def entries_of(root: etree._Element, origin: str) -> list[etree._Element]:
        """The feed's entries (Atom ``entry``, RSS ``item``)."""

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        return parse_feed(data, origin=origin, entries_of=self.entries_of, noun=self.noun,
                          signatures=self.signatures)
