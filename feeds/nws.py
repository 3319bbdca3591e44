"""US NWS ``api.weather.gov/alerts`` GeoJSON (FeatureCollection, single Feature, or JSON-LD ``@graph``).

The properties are CAP under other names, so identity comes straight from them (``sender``, ``id``,
``sent``) and ``references`` thread updates the CAP way (no ``thread_key``). Things that bite (feeds.md):
most features have ``geometry: null`` and live by UGC/SAME zone codes, so an area is kept even without
a polygon; GeoJSON is ``[lon, lat]`` while CAP and our model are ``(lat, lon)``; ``expires`` can come
before the event ends — the ``eventEndingTime`` parameter (or, when absent, the ``ends`` property, copied
into that parameter) is what ``Alert.end_time()`` honours; the KEEPALIVE record is ``status: Test`` and
stays Test so it never fans out. An error reply (``application/problem+json``) becomes a ParseError.
"""

from __future__ import annotations

from typing import Any

from feeds.base import FeedParser, ParseError, ParseResult
from feeds.jsonsafe import (
    FieldError,
    as_dict,
    as_list,
    iso_time,
    load_json,
    number,
    optional_iso_time,
    required_text,
    text,
    where,
)
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
    Info,
)
from feeds.model import Reference as Ref

WHAT = "NWS alerts GeoJSON"


def enum(value: Any, allowed: tuple[str, ...], name: str, default: str, warnings: list[str]) -> str:
    """Case-insensitive match against a CAP enumeration; anything else -> default with a warning."""
    raw = text(value)
    if raw is None:
        return default
    for option in allowed:
        if raw.lower() == option.lower():
            return option
    warnings.append(f"{name} {raw!r} is not a CAP value; using {default}")
    return default


def strict_enum(value: Any, allowed: tuple[str, ...], name: str) -> str:
    """For ``status``/``msgType``: they decide who gets the alert, so an unknown value skips the entry."""
    raw = text(value)
    if raw is None:
        raise FieldError(f"missing {name}")
    for option in allowed:
        if raw.lower() == option.lower():
            return option
    raise FieldError(f"{name} {raw!r} is not a CAP value")


def geojson_rings(geometry: Any, warnings: list[str]) -> list[list[tuple[float, float]]]:
    """Polygon/MultiPolygon outer rings as closed ``(lat, lon)`` rings; holes are dropped with a warning."""
    if geometry is None:
        return []
    if not isinstance(geometry, dict):
        warnings.append("geometry is not an object; ignored")
        return []
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon":
        polygons = coords if isinstance(coords, list) else None
    elif kind == "GeometryCollection":
        rings: list[list[tuple[float, float]]] = []
        for part in as_list(geometry.get("geometries"))[:100]:
            if isinstance(part, dict) and part.get("type") in ("Polygon", "MultiPolygon"):
                rings.extend(geojson_rings(part, warnings))
        return rings
    else:
        warnings.append(f"geometry type {kind!r} ignored")
        return []
    out: list[list[tuple[float, float]]] = []
    for polygon in polygons or []:
        if not isinstance(polygon, list) or not polygon:
            warnings.append("empty or malformed polygon ignored")
            continue
        if len(polygon) > 1:
            warnings.append("polygon holes dropped (CAP polygons have none)")
        ring = _ring(polygon[0], warnings)
        if ring:
            out.append(ring)
    return out


def _ring(raw: Any, warnings: list[str]) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for position in raw if isinstance(raw, list) else []:
        if not isinstance(position, list) or len(position) < 2:
            warnings.append("malformed position in polygon; polygon ignored")
            return []
        lon, lat = number(position[0]), number(position[1])
        if lon is None or lat is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            warnings.append(f"position {position[:2]!r} out of range; polygon ignored")
            return []
        points.append((lat, lon))
    if len(points) >= 3 and points[0] != points[-1]:
        points.append(points[0])
        warnings.append("unclosed polygon ring closed")
    if len(points) < 4:
        warnings.append("polygon with fewer than 4 points ignored")
        return []
    return points


def references(raw: Any, warnings: list[str]) -> list[Ref]:
    """NWS list of ``{sender, identifier, sent}`` objects, or CAP's space-separated triplet string."""
    out: list[Ref] = []
    if isinstance(raw, str):
        entries: list[Any] = [dict(zip(("sender", "identifier", "sent"), t.split(","), strict=False))
                              for t in raw.split()]
    else:
        entries = as_list(raw)
    for entry in entries:
        try:
            obj = as_dict(entry, "reference")
            out.append(Ref(required_text(obj, "sender"), required_text(obj, "identifier"),
                           iso_time(obj.get("sent"), "reference sent")))
        except FieldError as exc:
            warnings.append(f"reference skipped: {exc}")
    return out


def _parameters(raw: Any, warnings: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if raw is None:
        return out
    if not isinstance(raw, dict):
        warnings.append("parameters is not an object; ignored")
        return out
    for key, values in raw.items():
        kept = [t for t in (text(v) for v in as_list(values)) if t is not None]
        if kept:
            out[str(key)] = kept
    return out


def _features(doc: Any, origin: str) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        raise ParseError(f"{where(origin)}{WHAT}: expected a JSON object, got {type(doc).__name__}")
    if "features" in doc:
        features = doc["features"]
        if not isinstance(features, list):
            raise ParseError(f"{where(origin)}{WHAT}: 'features' is {type(features).__name__}, "
                             f"expected a list")
        return features
    if "@graph" in doc:
        return [{"properties": p} for p in as_list(doc["@graph"])]
    if doc.get("type") == "Feature" or "properties" in doc:
        return [doc]
    if "title" in doc and ("detail" in doc or "status" in doc):
        raise ParseError(f"{where(origin)}{WHAT}: api.weather.gov error {text(doc.get('status')) or ''} "
                         f"{text(doc.get('title')) or ''}: {text(doc.get('detail')) or ''}".rstrip(": "))
    raise ParseError(f"{where(origin)}{WHAT}: no 'features' (not an alerts FeatureCollection)")


def _alert(feature: Any) -> Alert:
    feature = as_dict(feature, "feature")
    props = as_dict(feature.get("properties"), "properties")
    warnings: list[str] = []
    identifier = text(props.get("id")) or text(props.get("identifier"))
    if identifier is None:
        raise FieldError("missing id")
    sender = required_text(props, "sender")
    sent = iso_time(props.get("sent"), "sent")
    status = strict_enum(props.get("status"), STATUSES, "status")
    msg_type = strict_enum(props.get("messageType") or props.get("msgType"), MSG_TYPES, "messageType")
    scope = enum(props.get("scope"), SCOPES, "scope", "Public", warnings)
    parameters = _parameters(props.get("parameters"), warnings)
    ends = optional_iso_time(props.get("ends"), "ends", warnings)
    if ends is not None:
        parameters.setdefault("NWS_ends", [ends.isoformat()])
        parameters.setdefault("eventEndingTime", [ends.isoformat()])
    geocodes = {}
    raw_geocode = props.get("geocode")
    if isinstance(raw_geocode, dict):
        for key, values in raw_geocode.items():
            kept = [t for t in (text(v) for v in as_list(values)) if t is not None]
            if kept:
                geocodes[str(key)] = kept
    area = Area(
        desc=text(props.get("areaDesc")) or "",
        polygons=geojson_rings(feature.get("geometry"), warnings),
        geocodes=geocodes,
    )
    categories = [enum(c, CATEGORIES, "category", "Other", warnings) for c in as_list(props.get("category"))]
    responses = [t for t in (text(r) for r in as_list(props.get("response"))) if t]
    web = text(feature.get("id")) or text(props.get("@id"))
    info = Info(
        event=text(props.get("event")) or "Unknown event",
        category=categories or ["Other"],
        urgency=enum(props.get("urgency"), URGENCIES, "urgency", "Unknown", warnings),
        severity=enum(props.get("severity"), SEVERITIES, "severity", "Unknown", warnings),
        certainty=enum(props.get("certainty"), CERTAINTIES, "certainty", "Unknown", warnings),
        language=text(props.get("language")) or "en-US",
        response_type=responses,
        effective=optional_iso_time(props.get("effective"), "effective", warnings),
        onset=optional_iso_time(props.get("onset"), "onset", warnings),
        expires=optional_iso_time(props.get("expires"), "expires", warnings),
        sender_name=text(props.get("senderName")),
        headline=text(props.get("headline")),
        description=text(props.get("description")),
        instruction=text(props.get("instruction")),
        web=web if web and web.startswith(("http://", "https://")) else None,
        parameters=parameters,
        areas=[area] if (area.desc or area.polygons or area.geocodes) else [],
    )
    return Alert(
        sender=sender,
        identifier=identifier,
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=scope,
        source="api.weather.gov",
        references=references(props.get("references"), warnings),
        infos=[info],
        warnings=warnings,
    )


class NwsParser(FeedParser):
    kind = "nws"

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        result = ParseResult()
        features = _features(load_json(data, origin=origin, what=WHAT), origin)
        for index, feature in enumerate(features, start=1):
            try:
                result.alerts.append(_alert(feature))
            except FieldError as exc:
                result.errors.append(f"{where(origin)}{WHAT} feature {index}: {exc}; skipped")
        return result
