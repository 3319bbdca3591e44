"""NGA MSI broadcast warnings (``/api/publications/broadcast-warn?output=json``): NAVAREA IV/XII, HYDROPAC,
HYDROLANT, HYDROARC.

A warning's identity is (navArea, msgNumber, msgYear); the positions exist only inside the free text.
Mapping decisions (documented because the source has no CAP vocabulary):

* ``identifier`` ``NGA-{SERIES}-{number}-{year}`` (``NGA-HYDROPAC-1244-2023``, ``NGA-NAVAREA4-1177-2022``),
  ``sender`` ``msi.nga.mil``, ``sent`` = ``issueDate`` (``141453Z APR 2023``, UTC),
  ``thread_key`` ``nga:{navArea}:{number}/{year}``.
* event "Navigational warning", category Safety + Transport, certainty Observed, urgency Expected,
  severity ``Moderate`` (option ``severity``): NGA grades nothing, and Unknown would hide every warning from
  subscribers with a minimum-severity preference.
* Positions (``28-39.92N 080-38.33W``, ``25-27.3N 141-14.3E``, ``8-39N 80-38W``, optional seconds) become
  points (circles of option ``point_radius_km``, default 0), or the circle radius stated by
  "WITHIN n MILES OF"; a run of three or more positions in a paragraph that says "AREA(S) BOUND(ED) BY"
  becomes a polygon.
* ``CANCEL THIS MSG 200900Z APR 23`` is the warning's own scheduled end -> ``expires``, not a cancel now.
  ``CANCEL HYDROPAC 1234/22`` / ``CANCEL NAVAREA IV 1165/22, 1139/22`` inside a warning -> one extra
  ``Cancel`` alert per named warning, on *that* warning's thread (its ``sent`` is unknown, so no CAP
  reference). Series NGA does not number (NAVAREA XI = Japan) are kept in a parameter with a warning.
* A record with ``cancelDate`` (``status=cancelled`` queries) -> a ``Cancel`` of its own thread that
  references the original's (sender, identifier, sent).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from feeds.base import FeedParser, ParseError, ParseResult
from feeds.jsonsafe import FieldError, as_dict, load_json, number, required_text, text, where
from feeds.model import SEVERITIES, Alert, Area, Circle, Info, Reference

WHAT = "NGA MSI broadcast-warn JSON"
SENDER = "msi.nga.mil"
EVENT = "Navigational warning"
NM_KM = 1.852
#: Real warnings are a few hundred characters; scanning is bounded so a hostile record cannot stall a poll.
MAX_TEXT = 20_000

#: navArea code -> (label used in identifiers, name used in texts)
SERIES: dict[str, tuple[str, str]] = {
    "4": ("NAVAREA4", "NAVAREA IV"),
    "12": ("NAVAREA12", "NAVAREA XII"),
    "P": ("HYDROPAC", "HYDROPAC"),
    "C": ("HYDROLANT", "HYDROLANT"),
    "A": ("HYDROARC", "HYDROARC"),
}
_TEXT_SERIES = {"NAVAREA IV": "4", "NAVAREA XII": "12", "HYDROPAC": "P", "HYDROLANT": "C", "HYDROARC": "A"}
_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                                       "NOV", "DEC"), start=1)}

_DTG = re.compile(r"\b(\d{2})(\d{2})(\d{2})Z\s+([A-Z]{3})\s+(\d{4}|\d{2})\b")
_POSITION = re.compile(
    r"(?<![\d.])(\d{1,2})-(\d{1,2}(?:\.\d+)?)(?:-(\d{1,2}(?:\.\d+)?))?\s*([NS])"
    r"[\s,]{0,3}"
    r"(\d{1,3})-(\d{1,2}(?:\.\d+)?)(?:-(\d{1,2}(?:\.\d+)?))?\s*([EW])\b"
)
_RUN_GAP = re.compile(r"^[\s,.;]*(AND|TO|THEN)?[\s,.;]*$")
_PARAGRAPH = re.compile(r"(?:^|\n)\s*\d{1,2}\.\s")
_BOUND = re.compile(r"\b(BOUND|BOUNDED|BOUNDARIES)\b")
_WITHIN = re.compile(
    r"WITHIN\s+(\d+(?:\.\d+)?)\s*(NM|MILES?|KM|KILOMETERS?|YARDS?|METERS?)\s+(?:RADIUS\s+)?OF\s*$"
)
_CANCEL_SELF = re.compile(r"\bTHIS\s+MSG\s+(\d{6}Z\s+[A-Z]{3}\s+\d{2,4})")
_CANCEL_CLAUSE = re.compile(r"\bCANCEL\b(.*?)(?:\.(?:\s|$)|$)", re.S)
_SERIES_NUMBERS = re.compile(
    r"(NAVAREA\s+[IVXL]+|HYDROPAC|HYDROLANT|HYDROARC)\s+((?:\d{1,4}/\d{2}(?:\s*,\s*|\s+AND\s+|\s+)?)+)"
)


def dtg(value: str) -> datetime:
    """``072239Z NOV 2022`` / ``200900Z APR 23`` -> aware UTC datetime (ValueError otherwise)."""
    match = _DTG.search(value.upper())
    if match is None:
        raise ValueError(f"{value!r} is not a DDHHMMZ MON YYYY time")
    day, hour, minute, month, year = match.groups()
    if month not in _MONTHS:
        raise ValueError(f"{value!r}: unknown month {month}")
    full_year = int(year) + 2000 if len(year) == 2 else int(year)
    return datetime(full_year, _MONTHS[month], int(day), int(hour), int(minute), tzinfo=UTC)


def _degrees(deg: str, minutes: str, seconds: str | None, hemi: str, limit: float) -> float | None:
    d, m = float(deg), float(minutes)
    s = float(seconds) if seconds else 0.0
    if m >= 60 or s >= 60:
        return None
    value = d + m / 60 + s / 3600
    if value > limit:
        return None
    return -value if hemi in "SW" else value


def positions(text_: str) -> Iterator[tuple[int, int, float, float]]:
    """(start, end, lat, lon) for every well-formed position in the text."""
    for match in _POSITION.finditer(text_):
        g = match.groups()
        lat = _degrees(g[0], g[1], g[2], g[3], 90)
        lon = _degrees(g[4], g[5], g[6], g[7], 180)
        if lat is not None and lon is not None:
            yield match.start(), match.end(), round(lat, 6), round(lon, 6)


def geometry(body: str, point_radius_km: float, warnings: list[str]) -> tuple[list[list[tuple[float, float]]],
                                                                             list[Circle]]:
    """Polygons for "AREA BOUND BY" runs, circles for every other position."""
    found = list(positions(body))
    runs: list[list[tuple[int, int, float, float]]] = []
    for pos in found:
        if runs and _RUN_GAP.match(body[runs[-1][-1][1]:pos[0]]):
            runs[-1].append(pos)
        else:
            runs.append([pos])
    polygons: list[list[tuple[float, float]]] = []
    circles: list[Circle] = []
    for run in runs:
        start = run[0][0]
        paragraph_start = max((m.end() for m in _PARAGRAPH.finditer(body, 0, start)), default=0)
        context = body[paragraph_start:start]
        points = [(lat, lon) for _, _, lat, lon in run]
        distinct = list(dict.fromkeys(points))
        if _BOUND.search(context) and len(distinct) >= 3:
            ring = distinct + [distinct[0]]
            polygons.append(ring)
            continue
        within = _WITHIN.search(body[max(0, start - 60):start])
        radius = point_radius_km
        if within is not None and len(run) == 1:
            radius = _to_km(float(within.group(1)), within.group(2))
        circles.extend(Circle(lat, lon, radius) for lat, lon in points)
    if not found and re.search(r"\d{1,3}-\d{1,2}(\.\d+)?[NSEW]", body):
        warnings.append("text mentions coordinates but none could be read")
    return polygons, circles


def _to_km(value: float, unit: str) -> float:
    if unit.startswith(("MILE", "NM")):
        return round(value * NM_KM, 3)
    if unit.startswith("YARD"):
        return round(value * 0.0009144, 3)
    if unit.startswith("METER"):
        return round(value / 1000, 3)
    return value


def region_lines(body: str) -> list[str]:
    """The leading ``WESTERN NORTH PACIFIC. / YELLOW SEA. / CHINA.`` lines (up to the first digit)."""
    out: list[str] = []
    for line in body.splitlines():
        line = line.strip()
        if not line:
            continue
        if re.search(r"\d", line) or len(out) == 4:
            break
        out.append(line)
    return out


def cancelled_warnings(body: str) -> list[tuple[str, str, str]]:
    """``CANCEL NAVAREA IV 1165/22, 1139/22`` -> [(series name, number, yy), ...] (not "CANCEL THIS MSG")."""
    out: list[tuple[str, str, str]] = []
    for clause in _CANCEL_CLAUSE.finditer(body):
        for match in _SERIES_NUMBERS.finditer(clause.group(1)):
            series = re.sub(r"\s+", " ", match.group(1))
            for number_, yy in re.findall(r"(\d{1,4})/(\d{2})", match.group(2)):
                out.append((series, str(int(number_)), yy))
    return out


class NgaMsiParser(FeedParser):
    kind = "nga-msi"

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        doc = load_json(data, origin=origin, what=WHAT)
        if isinstance(doc, dict):
            if "broadcast-warn" not in doc:
                raise ParseError(f"{where(origin)}{WHAT}: no 'broadcast-warn' list (not an NGA MSI reply)")
            records = doc["broadcast-warn"]
        else:
            records = doc
        if not isinstance(records, list):
            raise ParseError(f"{where(origin)}{WHAT}: 'broadcast-warn' is {type(records).__name__}, "
                             f"expected a list")
        severity = text(self.options.get("severity")) or "Moderate"
        if severity not in SEVERITIES:
            raise ParseError(f"{where(origin)}{WHAT}: option severity {severity!r} is not a CAP severity")
        radius = number(self.options.get("point_radius_km", 0))
        if radius is None or radius < 0:
            raise ParseError(f"{where(origin)}{WHAT}: option point_radius_km must be a number >= 0")
        result = ParseResult()
        for index, record in enumerate(records, start=1):
            try:
                result.alerts.extend(self._record(record, severity, radius))
            except FieldError as exc:
                label = ""
                if isinstance(record, dict):
                    label = f" ({text(record.get('navArea'))} {text(record.get('msgNumber'))}/" \
                            f"{text(record.get('msgYear'))})"
                result.errors.append(f"{where(origin)}{WHAT} record {index}{label}: {exc}; skipped")
        return result

    def _record(self, raw: Any, severity: str, radius: float) -> list[Alert]:
        obj = as_dict(raw, "record")
        nav_area = required_text(obj, "navArea").upper()
        msg_number = required_text(obj, "msgNumber")
        msg_year = required_text(obj, "msgYear")
        if not (msg_number.isdigit() and msg_year.isdigit() and len(msg_year) == 4):
            raise FieldError(f"msgNumber/msgYear {msg_number!r}/{msg_year!r} are not numbers")
        msg_number = str(int(msg_number))
        try:
            sent = dtg(required_text(obj, "issueDate"))
        except ValueError as exc:
            raise FieldError(str(exc)) from None
        fallback = (f"NAVAREA{re.sub(r'[^A-Z0-9]', '', nav_area)}", f"NAVAREA {nav_area}")
        label, name = SERIES.get(nav_area, fallback)
        identifier = f"NGA-{label}-{msg_number}-{msg_year}"
        body = (text(obj.get("text")) or "").upper()
        warnings: list[str] = []
        if len(body) > MAX_TEXT:
            body = body[:MAX_TEXT]
            warnings.append(f"text longer than {MAX_TEXT} characters: only the start was searched")
        if nav_area not in SERIES:
            warnings.append(f"unknown navArea {nav_area!r} kept raw")
        expires = None
        self_cancel = _CANCEL_SELF.search(body)
        if self_cancel is not None:
            try:
                expires = dtg(self_cancel.group(1))
            except ValueError:
                warnings.append(f"unreadable self-cancel time {self_cancel.group(1)!r}")
        polygons, circles = geometry(body, radius, warnings)
        region = " ".join(region_lines(body))
        short = f"{name} {msg_number}/{msg_year[2:]}"
        parameters = {
            "NGA_NAVAREA": [nav_area], "NGA_MSG_NUMBER": [msg_number], "NGA_MSG_YEAR": [msg_year],
        }
        for key, field_ in (("NGA_SUBREGION", "subregion"), ("NGA_AUTHORITY", "authority"),
                            ("NGA_STATUS", "status")):
            value = text(obj.get(field_))
            if value:
                parameters[key] = [value]
        area = Area(desc=region or short, polygons=polygons, circles=circles)
        info = Info(
            event=EVENT,
            category=["Safety", "Transport"],
            urgency="Expected",
            severity=severity,
            certainty="Observed",
            language="en-US",
            expires=expires,
            sender_name=text(obj.get("authority")) or "NGA Maritime Safety Information",
            headline=f"{short} {region}".strip()[:160],
            description=text(obj.get("text")),
            web="https://msi.nga.mil/NavWarnings",
            parameters=parameters,
            areas=[area] if (polygons or circles) else [Area(desc=region or short)],
        )
        thread_key = f"nga:{nav_area}:{msg_number}/{msg_year}"
        alerts: list[Alert] = []
        cancel_date = text(obj.get("cancelDate"))
        if cancel_date:
            try:
                cancel_sent = dtg(cancel_date)
            except ValueError:
                cancel_sent = sent
                warnings.append(f"unreadable cancelDate {cancel_date!r}; using issueDate")
            by = " ".join(t for t in (text(obj.get("cancelNavArea")), text(obj.get("cancelMsgNumber")),
                                      text(obj.get("cancelMsgYear"))) if t)
            alerts.append(Alert(
                sender=SENDER, identifier=f"{identifier}-CANCEL", sent=cancel_sent, msg_type="Cancel",
                source="msi.nga.mil broadcast-warn", references=[Reference(SENDER, identifier, sent)],
                note=f"{short} cancelled{f' by {by}' if by else ''}", infos=[info], thread_key=thread_key,
                warnings=warnings,
            ))
            return alerts
        alerts.append(Alert(sender=SENDER, identifier=identifier, sent=sent, msg_type="Alert",
                            source="msi.nga.mil broadcast-warn", infos=[info], thread_key=thread_key,
                            warnings=warnings))
        for series, number_, yy in cancelled_warnings(body):
            code = _TEXT_SERIES.get(series)
            if code is None:
                info.parameters.setdefault("NGA_CANCELS_OTHER", []).append(f"{series} {number_}/{yy}")
                warnings.append(f"cancels {series} {number_}/{yy}, not an NGA series: not threaded")
                continue
            year = str(2000 + int(yy))
            target_label, target_name = SERIES[code]
            info.parameters.setdefault("NGA_CANCELS", []).append(f"{target_name} {number_}/{yy}")
            alerts.append(Alert(
                sender=SENDER, identifier=f"{identifier}-CANCELS-{target_label}-{number_}-{year}", sent=sent,
                msg_type="Cancel", source="msi.nga.mil broadcast-warn",
                note=f"{target_name} {number_}/{yy} cancelled by {short}",
                infos=[Info(event=EVENT, category=["Safety", "Transport"], urgency="Past", severity=severity,
                            certainty="Observed", sender_name=info.sender_name,
                            headline=f"{target_name} {number_}/{yy} cancelled by {short}",
                            parameters={"NGA_NAVAREA": [code], "NGA_MSG_NUMBER": [number_],
                                        "NGA_MSG_YEAR": [year]})],
                thread_key=f"nga:{code}:{number_}/{year}",
            ))
        return alerts
