"""A generic JSON incident feed whose field mapping the operator writes in config.toml.

Coast guards receive incident lists from partner systems (port authorities, VTS, fisheries) that follow
no standard, so instead of one parser per partner the mapping is data::

    [feeds.port_incidents]
    kind = "incident-json"
    options = { items = "data.incidents", identifier = "id", sender = "const:coastguard.example",
                sent = "reported_at", event = "type", severity = "level", lat = "position.lat",
                lon = "position.lon", radius_km = "const:5", headline = "title", description = "details",
                zone = "zone_code", severity_map = { high = "Severe" } }

Values are dotted paths into each item (``a.b.0.c``; list indexes allowed) or ``const:`` literals.
Required options: ``items``, ``identifier``, ``sender``, ``sent``, ``event`` (a missing one is a
ParseError naming it). Optional: ``severity``/``urgency``/``certainty`` with ``*_map`` tables (values
already in CAP's vocabulary pass unmapped; others become Unknown with a warning), ``category`` (CAP
category, default Safety), ``status``, ``msg_type``, ``expires``, ``effective``, ``onset``, ``lat``, ``lon``,
``radius_km``, ``zone`` (string or list) with ``zone_name`` (geocode valueName, default ``KMA_ZONE``),
``area_desc``, ``headline``, ``description``, ``instruction``, ``web``, ``language``, ``timezone`` (for
times without an offset: ``+09:00`` or an IANA name; without it such items are errors, never guessed).
Times are ISO 8601 or epoch numbers (seconds; values above 1e11 are taken as milliseconds).
An item missing a required field goes to ``errors`` naming it; the others continue.
``thread_key`` is ``incident:{sender}:{identifier}`` so revisions of one incident thread together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from feeds.base import FeedParser, ParseError, ParseResult
from feeds.jsonsafe import FieldError, as_list, clean_id, load_json, number, text, where
from feeds.model import (
    CATEGORIES,
    CERTAINTIES,
    KMA_ZONE,
    MSG_TYPES,
    SEVERITIES,
    STATUSES,
    URGENCIES,
    Alert,
    Area,
    Circle,
    Info,
)

WHAT = "incident JSON"
REQUIRED = ("items", "identifier", "sender", "sent", "event")
_MISSING = object()


def resolve(obj: Any, spec: str) -> Any:
    """``const:x`` -> "x"; ``a.b.0`` -> obj["a"]["b"][0]; missing -> the ``_MISSING`` sentinel."""
    if spec.startswith("const:"):
        return spec[len("const:"):]
    current = obj
    for part in (p for p in spec.split(".") if p):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and re.fullmatch(r"-?\d{1,9}", part) and \
                -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _tz(spec: Any) -> tzinfo | None:
    raw = text(spec)
    if raw is None:
        return None
    if raw[:1] in "+-" and len(raw) == 6 and raw[3] == ":":
        sign = -1 if raw[0] == "-" else 1
        return timezone(sign * timedelta(hours=int(raw[1:3]), minutes=int(raw[4:6])))
    return ZoneInfo(raw)


def _time(value: Any, name: str, tz: tzinfo | None) -> datetime:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    numeric = numeric or (isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value) is not None)
    num = number(value) if numeric else None
    if num is not None:
        seconds = num / 1000 if abs(num) > 1e11 else num
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise FieldError(f"{name} {value!r} is out of range") from None
    raw = text(value)
    if raw is None:
        raise FieldError(f"{name} is empty")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise FieldError(f"{name} {raw!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        if tz is None:
            raise FieldError(f"{name} {raw!r} has no UTC offset (set option timezone)")
        parsed = parsed.replace(tzinfo=tz)
    return parsed


class IncidentJsonParser(FeedParser):
    kind = "incident-json"

    def _opt(self, name: str) -> str | None:
        value = self.options.get(name)
        return value if isinstance(value, str) and value else None

    def _map(self, name: str) -> Mapping[str, Any]:
        value = self.options.get(name) or {}
        return value if isinstance(value, Mapping) else {}

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        missing = [name for name in REQUIRED if self._opt(name) is None]
        if missing:
            raise ParseError(f"{where(origin)}{WHAT}: feed options missing {', '.join(missing)} "
                             f"(set them in config.toml options)")
        try:
            tz = _tz(self.options.get("timezone"))
        except (ValueError, KeyError, OSError) as exc:
            raise ParseError(f"{where(origin)}{WHAT}: option timezone {self.options.get('timezone')!r} "
                             f"unknown ({exc.__class__.__name__})") from None
        doc = load_json(data, origin=origin, what=WHAT)
        items_path = self._opt("items") or ""
        items = resolve(doc, "" if items_path == "." else items_path)
        if items is _MISSING:
            raise ParseError(f"{where(origin)}{WHAT}: items path {items_path!r} not found in the document")
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            raise ParseError(f"{where(origin)}{WHAT}: items path {items_path!r} is {type(items).__name__}, "
                             f"expected a list")
        result = ParseResult()
        for index, item in enumerate(items, start=1):
            try:
                result.alerts.append(self._alert(item, tz))
            except FieldError as exc:
                ident = resolve(item, self._opt("identifier") or "") if isinstance(item, dict) else _MISSING
                label = f" (identifier {text(ident)})" if ident is not _MISSING and text(ident) else ""
                result.errors.append(f"{where(origin)}{WHAT} item {index}{label}: {exc}; skipped")
        return result

    def _get(self, item: Any, name: str, *, required: bool = False) -> Any:
        spec = self._opt(name)
        if spec is None:
            return None
        value = resolve(item, spec)
        if value is _MISSING or value is None or value == "":
            if required:
                raise FieldError(f"missing {spec!r} ({name})")
            return None
        return value

    def _enum(self, item: Any, name: str, allowed: tuple[str, ...], default: str, warnings: list[str]) -> str:
        raw = text(self._get(item, name))
        if raw is None:
            return default
        table = {str(k).lower(): v for k, v in self._map(f"{name}_map").items()}
        mapped = text(table.get(raw.lower(), raw)) or raw
        for option in allowed:
            if mapped.lower() == option.lower():
                return option
        warnings.append(f"{name} {raw!r} has no CAP mapping; using {default}")
        return default

    def _status(self, item: Any) -> str:
        """An unmappable status skips the item (unlike other enums): guessing Actual may broadcast a drill."""
        raw = text(self._get(item, "status"))
        if raw is None:
            return "Actual"
        table = {str(k).lower(): v for k, v in self._map("status_map").items()}
        mapped = text(table.get(raw.lower(), raw)) or raw
        for option in STATUSES:
            if mapped.lower() == option.lower():
                return option
        raise FieldError(f"status {raw!r} has no CAP mapping (set status_map)")

    def _alert(self, item: Any, tz: tzinfo | None) -> Alert:
        if not isinstance(item, dict):
            raise FieldError(f"item is {type(item).__name__}, expected an object")
        warnings: list[str] = []
        identifier = text(self._get(item, "identifier", required=True))
        sender = text(self._get(item, "sender", required=True))
        event = text(self._get(item, "event", required=True))
        if identifier is None or sender is None or event is None:
            raise FieldError("identifier, sender and event must be text or numbers")
        identifier, sender = clean_id(identifier), clean_id(sender)
        sent = _time(self._get(item, "sent", required=True), "sent", tz)

        def opt_time(name: str) -> datetime | None:
            value = self._get(item, name)
            if value is None:
                return None
            try:
                return _time(value, name, tz)
            except FieldError as exc:
                warnings.append(f"{exc}; ignored")
                return None

        area = Area(desc="")
        lat, lon = number(self._get(item, "lat")), number(self._get(item, "lon"))
        if lat is not None and lon is not None:
            if -90 <= lat <= 90 and -180 <= lon <= 180:
                radius = number(self._get(item, "radius_km")) or 0.0
                area.circles.append(Circle(lat, lon, max(0.0, radius)))
            else:
                warnings.append(f"position {lat},{lon} out of range; ignored")
        zones = [z for z in (text(v) for v in as_list(self._get(item, "zone"))) if z]
        if zones:
            area.geocodes[text(self.options.get("zone_name")) or KMA_ZONE] = zones
        area.desc = text(self._get(item, "area_desc")) or ", ".join(zones) or (
            f"{area.circles[0].lat},{area.circles[0].lon}" if area.circles else "")
        if not area.circles and not zones:
            warnings.append("item has no position or zone")
        category = self._enum(item, "category", CATEGORIES, "Safety", warnings)
        info = Info(
            event=event,
            category=[category],
            urgency=self._enum(item, "urgency", URGENCIES, "Unknown", warnings),
            severity=self._enum(item, "severity", SEVERITIES, "Unknown", warnings),
            certainty=self._enum(item, "certainty", CERTAINTIES, "Unknown", warnings),
            language=text(self._get(item, "language")) or "en-US",
            effective=opt_time("effective"),
            onset=opt_time("onset"),
            expires=opt_time("expires"),
            headline=text(self._get(item, "headline")),
            description=text(self._get(item, "description")),
            instruction=text(self._get(item, "instruction")),
            web=text(self._get(item, "web")),
            areas=[area] if (area.circles or area.geocodes or area.desc) else [],
        )
        return Alert(
            sender=sender,
            identifier=identifier,
            sent=sent,
            status=self._status(item),
            msg_type=self._enum(item, "msg_type", MSG_TYPES, "Alert", warnings),
            source=WHAT,
            infos=[info],
            thread_key=f"incident:{sender}:{identifier}",
            warnings=warnings,
        )
