"""USGS earthquake GeoJSON summary feeds (``earthquake.usgs.gov/earthquakes/feed/v1.0/summary/*.geojson``).

Mapping decisions (USGS publishes no CAP severity; documented here so operators can predict them):

* Identity: ``sender`` ``earthquake.usgs.gov``, ``identifier`` = feature ``id``, ``sent`` =
  ``properties.updated`` (falling back to ``time``), both epoch **milliseconds**. A quake is revised many
  times (magnitude, location, review): each revision has a new ``sent`` and so a new CAP identity, and
  ``thread_key`` ``usgs:{id}`` joins them — a revision (``updated`` later than ``time``) is an ``Update``,
  ``status: deleted`` is a ``Cancel``.
* Severity from magnitude: < 5.0 Minor, < 6.5 Moderate, < 7.5 Severe, else Extreme; raised to the PAGER
  ``alert`` colour when that is higher (green Minor, yellow Moderate, orange Severe, red Extreme).
  ``tsunami`` = 1 raises severity to at least Severe and urgency to Immediate (otherwise urgency is
  ``Past``: the shaking is over, as in USGS's own CAP). Certainty Observed.
* Area: a circle at the epicentre (GeoJSON ``[lon, lat, depth]`` -> lat, lon) with a rough *felt*
  radius ``log10(R km) = 0.5 M - 0.6`` (M3 ~ 8 km, M5 ~ 80 km, M7 ~ 800 km), clamped to [1, 1000] km;
  option ``radius_km`` overrides it. It says who may have felt it, not where damage is.
* ``expires`` = origin time + option ``expires_hours`` (default 24): a quake report has no natural end
  and would otherwise stay live forever.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from feeds.base import FeedParser, ParseError, ParseResult
from feeds.jsonsafe import (
    FieldError,
    as_dict,
    clean_id,
    epoch_ms,
    load_json,
    number,
    required_text,
    text,
    where,
)
from feeds.model import SEVERITY_RANK, Alert, Area, Circle, Info

WHAT = "USGS earthquake GeoJSON"
SENDER = "earthquake.usgs.gov"
PAGER_SEVERITY = {"green": "Minor", "yellow": "Moderate", "orange": "Severe", "red": "Extreme"}


def magnitude_severity(mag: float | None) -> str:
    if mag is None:
        return "Unknown"
    if mag < 5.0:
        return "Minor"
    if mag < 6.5:
        return "Moderate"
    if mag < 7.5:
        return "Severe"
    return "Extreme"


def felt_radius_km(mag: float | None) -> float:
    if mag is None:
        return 0.0
    return round(min(1000.0, max(1.0, 10 ** (0.5 * mag - 0.6))), 1)


def _max_severity(*values: str) -> str:
    return max(values, key=lambda s: SEVERITY_RANK.get(s, 0))


class UsgsParser(FeedParser):
    kind = "usgs"

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        doc = load_json(data, origin=origin, what=WHAT)
        if not isinstance(doc, dict):
            raise ParseError(f"{where(origin)}{WHAT}: expected a JSON object, got {type(doc).__name__}")
        if "features" in doc:
            features = doc["features"]
        elif doc.get("type") == "Feature":
            features = [doc]
        else:
            raise ParseError(f"{where(origin)}{WHAT}: no 'features' (not a USGS GeoJSON feed)")
        if not isinstance(features, list):
            raise ParseError(f"{where(origin)}{WHAT}: 'features' is {type(features).__name__}, "
                             f"expected a list")
        radius_opt = self.options.get("radius_km")
        radius_override = number(radius_opt) if radius_opt is not None else None
        hours = number(self.options.get("expires_hours", 24))
        if radius_opt is not None and (radius_override is None or radius_override < 0):
            raise ParseError(f"{where(origin)}{WHAT}: option radius_km must be a number >= 0")
        if hours is None or not 0 < hours <= 24 * 366:
            raise ParseError(f"{where(origin)}{WHAT}: option expires_hours must be a number in (0, 8784]")
        result = ParseResult()
        for index, feature in enumerate(features, start=1):
            try:
                result.alerts.append(self._alert(feature, radius_override, hours))
            except FieldError as exc:
                label = text(feature.get("id")) if isinstance(feature, dict) else None
                suffix = f" ({label})" if label else ""
                result.errors.append(f"{where(origin)}{WHAT} feature {index}{suffix}: {exc}; skipped")
        return result

    def _alert(self, raw: Any, radius_override: float | None, hours: float) -> Alert:
        feature = as_dict(raw, "feature")
        props = as_dict(feature.get("properties"), "properties")
        event_id = clean_id(required_text(feature, "id"))
        origin_time = epoch_ms(props.get("time"), "time")
        updated = epoch_ms(props["updated"], "updated") if props.get("updated") is not None else origin_time
        geometry = as_dict(feature.get("geometry"), "geometry")
        coords = geometry.get("coordinates")
        if geometry.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2:
            raise FieldError("geometry is not a Point [lon, lat, depth]")
        lon, lat = number(coords[0]), number(coords[1])
        if lon is None or lat is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise FieldError(f"epicentre {coords[:2]!r} out of range")
        depth = number(coords[2]) if len(coords) > 2 else None
        warnings: list[str] = []
        mag = number(props.get("mag"))
        if mag is None:
            warnings.append("no magnitude: severity Unknown, point area")
        tsunami = text(props.get("tsunami")) in ("1", "true")
        pager = (text(props.get("alert")) or "").lower()
        severity = _max_severity(magnitude_severity(mag), PAGER_SEVERITY.get(pager, "Unknown"))
        urgency = "Past"
        if tsunami:
            severity = _max_severity(severity, "Severe")
            urgency = "Immediate"
        status = (text(props.get("status")) or "").lower()
        if status == "deleted":
            msg_type = "Cancel"
        elif updated > origin_time:
            msg_type = "Update"
        else:
            msg_type = "Alert"
        parameters: dict[str, list[str]] = {}
        for name, value in (("magnitude", props.get("mag")), ("magType", props.get("magType")),
                            ("tsunami", "1" if tsunami else "0"), ("alert", props.get("alert")),
                            ("usgs_status", props.get("status")), ("place", props.get("place")),
                            ("sig", props.get("sig")), ("depth_km", depth), ("net", props.get("net")),
                            ("origin_time", origin_time.isoformat())):
            value_text = text(value)
            if value_text is not None:
                parameters[name] = [value_text]
        kind = text(props.get("type")) or "earthquake"
        title = text(props.get("title")) or f"M {mag} {text(props.get('place')) or ''}".strip()
        url = text(props.get("url"))
        radius = radius_override if radius_override is not None else felt_radius_km(mag)
        info = Info(
            event=kind[:1].upper() + kind[1:],
            category=["Geo"],
            urgency=urgency,
            severity=severity,
            certainty="Observed",
            language="en-US",
            effective=origin_time,
            onset=origin_time,
            expires=origin_time + timedelta(hours=hours),
            sender_name="USGS Earthquake Hazards Program",
            headline=title,
            description=f"{title}. Depth {depth:g} km." if depth is not None else title,
            web=url if url and url.startswith(("http://", "https://")) else None,
            parameters=parameters,
            areas=[Area(desc=text(props.get("place")) or title, circles=[Circle(lat, lon, radius)])],
        )
        return Alert(
            sender=SENDER,
            identifier=event_id,
            sent=updated,
            msg_type=msg_type,
            source="earthquake.usgs.gov",
            infos=[info],
            thread_key=f"usgs:{event_id}",
            warnings=warnings,
        )
