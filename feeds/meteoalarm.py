"""MeteoAlarm JSON feed (``/api/v1/warnings/feeds-<country>``): CAP 1.2 serialised as JSON.

Each ``warnings[]`` entry wraps one CAP alert under ``alert``; the field names are CAP's, so the mapping
is one-to-one and threading uses CAP ``references`` (no ``thread_key``). Polygons are usually absent
(feeds.md): areas are matched by the ``EMMA_ID``/``WARNCELLID`` geocodes, which are kept as given, and
an area without geometry is never dropped. ``awareness_level`` ("3; orange; Severe") stays a parameter
for renderers that show MeteoAlarm colours. Entries that lack CAP identity go to ``errors``.
"""

from __future__ import annotations

import re
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
    Circle,
    Info,
)
from feeds.nws import enum, references, strict_enum

WHAT = "MeteoAlarm JSON"


def value_pairs(raw: Any) -> dict[str, list[str]]:
    """CAP ``[{valueName, value}]`` (or a ``{name: value}`` object) -> name -> values, repeats kept."""
    out: dict[str, list[str]] = {}
    if isinstance(raw, dict) and "valueName" not in raw:
        items = [{"valueName": k, "value": v} for k, v in raw.items()]
    else:
        items = as_list(raw)
    for item in items:
        if not isinstance(item, dict):
            continue
        name, value = text(item.get("valueName")), text(item.get("value"))
        if name is not None and value is not None:
            out.setdefault(name, []).append(value)
    return out


def cap_polygon(raw: Any, warnings: list[str]) -> list[tuple[float, float]]:
    """CAP ``"lat,lon lat,lon ..."`` -> closed ring, or [] with a warning."""
    points: list[tuple[float, float]] = []
    for pair in (text(raw) or "").split():
        parts = pair.split(",")
        lat, lon = (number(parts[0]), number(parts[1])) if len(parts) == 2 else (None, None)
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            warnings.append(f"polygon point {pair!r} unreadable; polygon ignored")
            return []
        points.append((lat, lon))
    if len(points) >= 3 and points[0] != points[-1]:
        points.append(points[0])
        warnings.append("unclosed polygon closed")
    if len(points) < 4:
        if points:
            warnings.append("polygon with fewer than 4 points ignored")
        return []
    return points


def cap_circle(raw: Any, warnings: list[str]) -> Circle | None:
    match = re.fullmatch(r"\s*([-+\d.]+)\s*,\s*([-+\d.]+)\s+([-+\d.]+)\s*", text(raw) or "")
    values = [number(g) for g in match.groups()] if match else []
    if len(values) != 3 or None in values:
        warnings.append(f"circle {text(raw)!r} unreadable; ignored")
        return None
    lat, lon, radius = values  # type: ignore[misc]
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and radius >= 0):  # type: ignore[operator]
        warnings.append(f"circle {text(raw)!r} out of range; ignored")
        return None
    return Circle(lat, lon, radius)  # type: ignore[arg-type]


def _area(raw: Any, warnings: list[str]) -> Area:
    obj = as_dict(raw, "area")
    area = Area(desc=text(obj.get("areaDesc")) or "", geocodes=value_pairs(obj.get("geocode")),
                altitude=number(obj.get("altitude")), ceiling=number(obj.get("ceiling")))
    for polygon in as_list(obj.get("polygon")):
        ring = cap_polygon(polygon, warnings)
        if ring:
            area.polygons.append(ring)
    for circle in as_list(obj.get("circle")):
        parsed = cap_circle(circle, warnings)
        if parsed is not None:
            area.circles.append(parsed)
    return area


def _info(raw: Any, warnings: list[str]) -> Info:
    obj = as_dict(raw, "info")
    categories = [enum(c, CATEGORIES, "category", "Other", warnings) for c in as_list(obj.get("category"))]
    areas: list[Area] = []
    for area in as_list(obj.get("area")):
        try:
            areas.append(_area(area, warnings))
        except FieldError as exc:
            warnings.append(f"{exc}; area ignored")
    return Info(
        event=text(obj.get("event")) or "Unknown event",
        category=categories or ["Other"],
        urgency=enum(obj.get("urgency"), URGENCIES, "urgency", "Unknown", warnings),
        severity=enum(obj.get("severity"), SEVERITIES, "severity", "Unknown", warnings),
        certainty=enum(obj.get("certainty"), CERTAINTIES, "certainty", "Unknown", warnings),
        language=text(obj.get("language")) or "en-US",
        response_type=[t for t in (text(r) for r in as_list(obj.get("responseType"))) if t],
        audience=text(obj.get("audience")),
        event_codes=value_pairs(obj.get("eventCode")),
        effective=optional_iso_time(obj.get("effective"), "effective", warnings),
        onset=optional_iso_time(obj.get("onset"), "onset", warnings),
        expires=optional_iso_time(obj.get("expires"), "expires", warnings),
        sender_name=text(obj.get("senderName")),
        headline=text(obj.get("headline")),
        description=text(obj.get("description")),
        instruction=text(obj.get("instruction")),
        web=text(obj.get("web")),
        contact=text(obj.get("contact")),
        parameters=value_pairs(obj.get("parameter")),
        areas=areas,
    )


def cap_json_alert(raw: Any, *, source: str) -> Alert:
    """One CAP-as-JSON alert object -> :class:`Alert` (FieldError when CAP identity is missing)."""
    obj = as_dict(raw, "alert")
    warnings: list[str] = []
    infos: list[Info] = []
    for info in as_list(obj.get("info")):
        try:
            infos.append(_info(info, warnings))
        except FieldError as exc:
            warnings.append(f"{exc}; info ignored")
    return Alert(
        sender=required_text(obj, "sender"),
        identifier=required_text(obj, "identifier"),
        sent=iso_time(obj.get("sent"), "sent"),
        status=strict_enum(obj.get("status"), STATUSES, "status"),
        msg_type=strict_enum(obj.get("msgType"), MSG_TYPES, "msgType"),
        scope=enum(obj.get("scope"), SCOPES, "scope", "Public", warnings),
        source=text(obj.get("source")) or source,
        restriction=text(obj.get("restriction")),
        addresses=text(obj.get("addresses")),
        code=[t for t in (text(c) for c in as_list(obj.get("code"))) if t],
        note=text(obj.get("note")),
        references=references(obj.get("references"), warnings),
        incidents=text(obj.get("incidents")),
        infos=infos,
        warnings=warnings,
    )


class MeteoAlarmParser(FeedParser):
    kind = "meteoalarm"

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        doc = load_json(data, origin=origin, what=WHAT)
        if not isinstance(doc, dict) or "warnings" not in doc:
            raise ParseError(f"{where(origin)}{WHAT}: no 'warnings' list (not a MeteoAlarm feed)")
        warnings = doc["warnings"]
        if not isinstance(warnings, list):
            raise ParseError(f"{where(origin)}{WHAT}: 'warnings' is {type(warnings).__name__}, "
                             f"expected a list")
        result = ParseResult()
        for index, entry in enumerate(warnings, start=1):
            uuid = text(entry.get("uuid")) if isinstance(entry, dict) else None
            try:
                alert = cap_json_alert(as_dict(entry, "warning").get("alert"), source="meteoalarm.org")
            except FieldError as exc:
                label = f" ({uuid})" if uuid else ""
                result.errors.append(f"{where(origin)}{WHAT} warning {index}{label}: {exc}; skipped")
                continue
            if uuid:
                for info in alert.infos:
                    info.parameters.setdefault("meteoalarm_uuid", [uuid])
            result.alerts.append(alert)
        return result
