"""The canonical alert record every feed module produces.

Everything downstream (storage, lifecycle, matching, rendering) reads only these classes, so a new
source format is one parser module and nothing else. The shape follows CAP 1.2 because CAP is the
richest of the formats we ingest: the others (KMA rows, NWS GeoJSON, NGA text) map into a subset.

Times are timezone-aware ``datetime`` objects (any offset); :func:`to_utc` normalises them for storage.
Coordinates are WGS-84 ``(lat, lon)`` pairs, latitude first, as in CAP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
              "CBRNE", "Other")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

#: Rank used for "minimum severity" preferences and dispatch priority; Unknown ranks lowest.
SEVERITY_RANK = {"Unknown": 0, "Minor": 1, "Moderate": 2, "Severe": 3, "Extreme": 4}
URGENCY_RANK = {"Unknown": 0, "Past": 0, "Future": 1, "Expected": 2, "Immediate": 3}

#: The geocode valueName that carries a KMA 특보구역 code (``L`` or ``S`` and seven digits).
KMA_ZONE = "KMA_ZONE"


def to_utc(value: datetime) -> datetime:
    """Aware datetime in UTC; naive input is refused because a guessed offset is a wrong warning time."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: every alert time must carry an offset")
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``sender,identifier,sent`` triplet of a CAP ``<references>`` list."""

    sender: str
    identifier: str
    sent: datetime

    def key(self) -> tuple[str, str, datetime]:
        return (self.sender, self.identifier, to_utc(self.sent))


@dataclass(slots=True)
class Circle:
    lat: float
    lon: float
    radius_km: float


@dataclass(slots=True)
class Area:
    desc: str
    #: Each polygon is a closed ring of (lat, lon) pairs. Several per area are normal (NOAA multi-polygons).
    polygons: list[list[tuple[float, float]]] = field(default_factory=list)
    circles: list[Circle] = field(default_factory=list)
    #: valueName -> values; repeated valueNames accumulate (an area may name many zones).
    geocodes: dict[str, list[str]] = field(default_factory=dict)
    altitude: float | None = None
    ceiling: float | None = None

    def zone_codes(self, value_names: tuple[str, ...] = (KMA_ZONE,)) -> list[str]:
        out: list[str] = []
        for name in value_names:
            out.extend(self.geocodes.get(name, []))
        return out


@dataclass(slots=True)
class Resource:
    """A CAP ``<resource>``: a file that goes with the warning (a map, an image, a bulletin PDF).

    Kept as sent, so an operator or a later channel can use it; AlimTalk messages do not carry it.
    ``deref_uri`` is the file itself, base64, when the sender embedded it.
    """

    desc: str
    mime_type: str | None = None
    size: int | None = None
    uri: str | None = None
    deref_uri: str | None = None
    digest: str | None = None


@dataclass(slots=True)
class Info:
    event: str
    category: list[str] = field(default_factory=lambda: ["Other"])
    urgency: str = "Unknown"
    severity: str = "Unknown"
    certainty: str = "Unknown"
    language: str = "en-US"
    response_type: list[str] = field(default_factory=list)
    audience: str | None = None
    event_codes: dict[str, list[str]] = field(default_factory=dict)
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: dict[str, list[str]] = field(default_factory=dict)
    areas: list[Area] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)

    def parameter(self, name: str) -> str | None:
        values = self.parameters.get(name)
        return values[0] if values else None


@dataclass(slots=True)
class Alert:
    sender: str
    identifier: str
    sent: datetime
    status: str = "Actual"
    msg_type: str = "Alert"
    scope: str = "Public"
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    code: list[str] = field(default_factory=list)
    note: str | None = None
    references: list[Reference] = field(default_factory=list)
    incidents: str | None = None
    infos: list[Info] = field(default_factory=list)
    #: Sources without CAP references (KMA rows, NGA warnings) name the warning they belong to here, e.g.
    #: ``kma:S1251100:풍랑``; the lifecycle threads alerts with the same key. CAP alerts leave it ``None``.
    thread_key: str | None = None
    #: Lenient-parse findings (element order, repaired polygons, unknown codes). Never fatal.
    warnings: list[str] = field(default_factory=list)

    def key(self) -> tuple[str, str, datetime]:
        """CAP identity: the same triplet from two feeds, or twice, is one alert."""
        return (self.sender, self.identifier, to_utc(self.sent))

    def end_time(self) -> datetime | None:
        """When the alert stops being live: the latest info end, honouring NWS ``eventEndingTime``.

        ``None`` means no stated end (the alert lives until updated or cancelled).
        """
        ends: list[datetime] = []
        for info in self.infos:
            ending = info.parameter("eventEndingTime")
            parsed = _parse_time_lenient(ending) if ending else None
            if parsed is not None:
                ends.append(parsed)
            elif info.expires is not None:
                ends.append(info.expires)
            else:
                return None
        return max((to_utc(e) for e in ends), default=None)

    def max_severity(self) -> str:
        ranks = [info.severity for info in self.infos] or ["Unknown"]
        return max(ranks, key=lambda s: SEVERITY_RANK.get(s, 0))

    def max_urgency(self) -> str:
        ranks = [info.urgency for info in self.infos] or ["Unknown"]
        return max(ranks, key=lambda s: URGENCY_RANK.get(s, 0))

    def zone_codes(self, value_names: tuple[str, ...] = (KMA_ZONE,)) -> list[str]:
        seen: dict[str, None] = {}
        for info in self.infos:
            for area in info.areas:
                for code in area.zone_codes(value_names):
                    seen[code] = None
        return list(seen)

    def to_json(self) -> dict[str, Any]:
        """The JSON shape promised by ``alimcast feeds parse --json`` (and stored in the database)."""
        return {
            "sender": self.sender,
            "identifier": self.identifier,
            "sent": iso(self.sent),
            "status": self.status,
            "msg_type": self.msg_type,
            "scope": self.scope,
            "source": self.source,
            "restriction": self.restriction,
            "addresses": self.addresses,
            "code": list(self.code),
            "note": self.note,
            "references": [[r.sender, r.identifier, iso(r.sent)] for r in self.references],
            "incidents": self.incidents,
            "thread_key": self.thread_key,
            "warnings": list(self.warnings),
            "infos": [_info_json(i) for i in self.infos],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        """Read :meth:`to_json`'s shape, or the dataclass itself as a JSON encoder writes it (the stored body).

        The two differ only in references: ``[sender, identifier, sent]`` lists here, objects there.
        """
        return cls(
            sender=data["sender"],
            identifier=data["identifier"],
            sent=datetime.fromisoformat(data["sent"]),
            status=data.get("status", "Actual"),
            msg_type=data.get("msg_type", "Alert"),
            scope=data.get("scope", "Public"),
            source=data.get("source"),
            restriction=data.get("restriction"),
            addresses=data.get("addresses"),
            code=list(data.get("code") or []),
            note=data.get("note"),
            references=[_reference_from_json(r) for r in data.get("references") or []],
            incidents=data.get("incidents"),
            thread_key=data.get("thread_key"),
            warnings=list(data.get("warnings") or []),
            infos=[_info_from_json(i) for i in data.get("infos") or []],
        )


def _reference_from_json(data: list[str] | dict[str, str]) -> Reference:
    if isinstance(data, dict):
        return Reference(data["sender"], data["identifier"], datetime.fromisoformat(data["sent"]))
    sender, identifier, sent = data
    return Reference(sender, identifier, datetime.fromisoformat(sent))


def _parse_time_lenient(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _opt_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _info_json(info: Info) -> dict[str, Any]:
    return {
        "language": info.language,
        "category": list(info.category),
        "event": info.event,
        "response_type": list(info.response_type),
        "urgency": info.urgency,
        "severity": info.severity,
        "certainty": info.certainty,
        "audience": info.audience,
        "event_codes": {k: list(v) for k, v in info.event_codes.items()},
        "effective": iso(info.effective),
        "onset": iso(info.onset),
        "expires": iso(info.expires),
        "sender_name": info.sender_name,
        "headline": info.headline,
        "description": info.description,
        "instruction": info.instruction,
        "web": info.web,
        "contact": info.contact,
        "parameters": {k: list(v) for k, v in info.parameters.items()},
        "areas": [
            {
                "desc": a.desc,
                "polygons": [[[lat, lon] for lat, lon in ring] for ring in a.polygons],
                "circles": [{"lat": c.lat, "lon": c.lon, "radius_km": c.radius_km} for c in a.circles],
                "geocodes": {k: list(v) for k, v in a.geocodes.items()},
                "altitude": a.altitude,
                "ceiling": a.ceiling,
            }
            for a in info.areas
        ],
        "resources": [
            {"desc": r.desc, "mime_type": r.mime_type, "size": r.size, "uri": r.uri, "deref_uri": r.deref_uri,
             "digest": r.digest}
            for r in info.resources
        ],
    }


def _info_from_json(data: dict[str, Any]) -> Info:
    return Info(
        event=data["event"],
        category=list(data.get("category") or ["Other"]),
        urgency=data.get("urgency", "Unknown"),
        severity=data.get("severity", "Unknown"),
        certainty=data.get("certainty", "Unknown"),
        language=data.get("language", "en-US"),
        response_type=list(data.get("response_type") or []),
        audience=data.get("audience"),
        event_codes={k: list(v) for k, v in (data.get("event_codes") or {}).items()},
        effective=_opt_time(data.get("effective")),
        onset=_opt_time(data.get("onset")),
        expires=_opt_time(data.get("expires")),
        sender_name=data.get("sender_name"),
        headline=data.get("headline"),
        description=data.get("description"),
        instruction=data.get("instruction"),
        web=data.get("web"),
        contact=data.get("contact"),
        parameters={k: list(v) for k, v in (data.get("parameters") or {}).items()},
        areas=[
            Area(
                desc=a.get("desc", ""),
                polygons=[[(float(p[0]), float(p[1])) for p in ring] for ring in a.get("polygons") or []],
                circles=[Circle(c["lat"], c["lon"], c["radius_km"]) for c in a.get("circles") or []],
                geocodes={k: list(v) for k, v in (a.get("geocodes") or {}).items()},
                altitude=a.get("altitude"),
                ceiling=a.get("ceiling"),
            )
            for a in data.get("areas") or []
        ],
        resources=[
            Resource(desc=r.get("desc", ""), mime_type=r.get("mime_type"), size=r.get("size"), uri=r.get("uri"),
                     deref_uri=r.get("deref_uri"), digest=r.get("digest"))
            for r in data.get("resources") or []
        ],
    )
