"""Notices composed in the console: the form -> a CAP 1.2 alert from the agency -> the ordinary pipeline.

A notice is ingested exactly like a polled alert (``alerts.ingest.ingest`` with ``feed="console"``), so
matching, dispatch, the SMS fallback, costs, update and 해제 threading are the engine's own. The preview uses
the same rendering (``alerts.render``), fallback rules (``alerts.delivery.sms``) and audience
(``alerts.audience.Audience``) the job uses, so what the operator reads is what recipients will read.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alerts.audience import Audience
from alerts.config import Config
from alerts.delivery.sms import build_fallback, euckr_len
from alerts.ingest import ingest
from alerts.models import AlertRecord
from alerts.render import parameters_for, render
from feeds.model import CATEGORIES, KMA_ZONE, SEVERITIES, URGENCIES, Alert, Area, Circle, Info, Reference
from subscribers import zones
from subscribers.preferences import Action

FEED = "console"
CERTAINTIES = ("Observed", "Likely", "Possible")
MAX_TEXT = 1000


class NoticeError(ValueError):
    """A form value that cannot make a valid notice; the message names the field."""


@dataclass
class NoticeForm:
    event: str = ""
    category: str = "Safety"
    severity: str = "Severe"
    urgency: str = "Immediate"
    certainty: str = "Observed"
    zones: str = ""
    #: "lat,lon lat,lon ..." (closed or not) drawn on the map or typed.
    polygon: str = ""
    #: "lat,lon radius_km".
    circle: str = ""
    area_desc: str = ""
    headline: str = ""
    description: str = ""
    instruction: str = ""
    expires_hours: float = 6.0

    @classmethod
    def from_form(cls, data: dict[str, str]) -> NoticeForm:
        values = {k: str(data.get(k, "")).strip() for k in cls.__dataclass_fields__ if k != "expires_hours"}
        form = cls(**values)
        try:
            form.expires_hours = float(data.get("expires_hours") or 6)
        except ValueError:
            raise NoticeError(f"expires_hours: not a number: {data.get('expires_hours')!r}") from None
        return form

    @classmethod
    def from_alert(cls, alert: Alert) -> NoticeForm:
        info = alert.infos[0]
        codes = [c for a in info.areas for c in a.geocodes.get(KMA_ZONE, [])]
        polygons = [r for a in info.areas for r in a.polygons]
        circles = [c for a in info.areas for c in a.circles]
        hours = 6.0
        if info.expires is not None:
            hours = max(0.5, round((info.expires - alert.sent).total_seconds() / 3600, 1))
        return cls(event=info.event, category=(info.category or ["Safety"])[0], severity=info.severity,
                   urgency=info.urgency, certainty=info.certainty, zones=", ".join(codes),
                   polygon=" ".join(f"{lat:.5f},{lon:.5f}" for lat, lon in polygons[0]) if polygons else "",
                   circle=f"{circles[0].lat:.5f},{circles[0].lon:.5f} {circles[0].radius_km:g}" if circles else "",
                   area_desc=info.areas[0].desc if info.areas else "", headline=info.headline or "",
                   description=info.description or "", instruction=info.instruction or "", expires_hours=hours)


def resolve_zone_list(text: str) -> list[str]:
    """Codes, names and broad names (서해중부먼바다), separated by commas or new lines -> zone codes."""
    codes: list[str] = []
    for item in [p.strip() for p in text.replace("\n", ",").split(",")]:
        if not item:
            continue
        try:
            found = zones.resolve(item)
        except zones.ZoneError as exc:
            raise NoticeError(f"zones: {exc}") from None
        codes.extend(c for c in found if c not in codes)
    return codes


def parse_polygon(text: str) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for pair in text.split():
        try:
            lat_s, lon_s = pair.split(",")
            lat, lon = float(lat_s), float(lon_s)
        except ValueError:
            raise NoticeError(f"polygon: {pair!r} is not lat,lon") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise NoticeError(f"polygon: {pair!r} is off the globe")
        points.append((lat, lon))
    if len(points) < 3:
        raise NoticeError("polygon: at least three points")
    if points[0] != points[-1]:
        points.append(points[0])
    return points


def parse_circle(text: str) -> Circle:
    try:
        centre, radius = text.split()
        lat_s, lon_s = centre.split(",")
        circle = Circle(float(lat_s), float(lon_s), float(radius))
    except ValueError:
        raise NoticeError(f"circle: {text!r} is not 'lat,lon radius_km'") from None
    if not (0 < circle.radius_km <= 500) or not (-90 <= circle.lat <= 90 and -180 <= circle.lon <= 180):
        raise NoticeError("circle: radius 0-500 km around a point on the globe")
    return circle


def new_identifier(now: datetime) -> str:
    return f"alimcast-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def build_alert(form: NoticeForm, *, sender: str, sender_name: str, now: datetime, msg_type: str = "Alert",
                references: list[Reference] | None = None) -> Alert:
    """The CAP alert a form describes; raises NoticeError naming the first bad field."""
    if not form.event:
        raise NoticeError("event: required (e.g. 해상 실종선박 수색, 항만 폐쇄, 유류 유출)")
    if len(form.event) > 100:
        raise NoticeError("event: at most 100 characters")
    for name, allowed in (("severity", SEVERITIES), ("urgency", URGENCIES), ("certainty", CERTAINTIES),
                          ("category", CATEGORIES)):
        if getattr(form, name) not in allowed:
            raise NoticeError(f"{name}: must be one of {', '.join(allowed)}")
    for name in ("headline", "description", "instruction"):
        if len(getattr(form, name)) > MAX_TEXT:
            raise NoticeError(f"{name}: at most {MAX_TEXT} characters")
    if not (0.25 <= form.expires_hours <= 24 * 14):
        raise NoticeError("expires_hours: between 0.25 and 336 hours")
    codes = resolve_zone_list(form.zones)
    polygon = parse_polygon(form.polygon) if form.polygon else None
    circle = parse_circle(form.circle) if form.circle else None
    if not codes and polygon is None and circle is None:
        raise NoticeError("zones: pick zones, or draw a polygon or a circle")
    desc = form.area_desc or ", ".join(zones.name(c) for c in codes[:6]) or "지정 해역"
    area = Area(desc=desc, polygons=[polygon] if polygon else [], circles=[circle] if circle else [],
                geocodes={KMA_ZONE: codes} if codes else {})
    sent = now.replace(microsecond=0)
    info = Info(event=form.event, category=[form.category], urgency=form.urgency, severity=form.severity,
                certainty=form.certainty, language="ko-KR", effective=sent,
                expires=sent + timedelta(hours=form.expires_hours), sender_name=sender_name,
                headline=form.headline or None, description=form.description or None,
                instruction=form.instruction or None, areas=[area])
    return Alert(sender=sender, identifier=new_identifier(sent), sent=sent, msg_type=msg_type, scope="Public",
                 references=list(references or []), infos=[info])


def cancel_of(previous: Alert, *, now: datetime, note: str = "") -> Alert:
    """The 해제 of a notice: a CAP Cancel referencing its latest version, same areas, for the same people."""
    sent = now.replace(microsecond=0)
    infos = []
    for info in previous.infos:
        infos.append(Info(event=info.event, category=list(info.category), urgency="Past", severity=info.severity,
                          certainty=info.certainty, language=info.language, effective=sent, expires=None,
                          sender_name=info.sender_name, headline=f"{info.event} 해제",
                          description=note or None, instruction=None, areas=list(info.areas)))
    return Alert(sender=previous.sender, identifier=new_identifier(sent), sent=sent, msg_type="Cancel",
                 scope=previous.scope, note=note or "해제", references=[Reference(*previous.key())], infos=infos)


@dataclass
class Preview:
    kind: str
    text: str
    length: int
    fallback_kind: str
    fallback_text: str
    fallback_bytes: int
    replaced: list[str]
    reached: int
    held: int
    cost_krw: float
    baseline_krw: float
    zone_names: list[str] = field(default_factory=list)


def zone_name(code: str) -> str | None:
    try:
        return zones.name(code)
    except Exception:  # noqa: BLE001 - unknown: area description instead
        return None


def preview(session: Session, engine: Engine, config: Config, alert: Alert, now: datetime, *,
            kind: str = "alert") -> Preview:
    """What recipients will read and how many will read it, computed by the engine's own code."""
    params = parameters_for(alert, kind, "ko", config.zone_value_names, zone_name, config.sender_name)
    text = render(config.templates[kind].text, params).text
    fallback, replaced = build_fallback(text)
    audience = Audience(engine, buffer_nm=config.vessel_buffer_nm,
                        stale_after=timedelta(hours=config.vessel_stale_after_hours))
    recipients = audience.recipients(session, alert, config.zone_value_names, at=now)
    reached = [r for r in recipients if r.decision.action is not Action.SKIP]
    held = sum(1 for r in reached if r.decision.action is Action.HOLD)
    price = config.prices.of("alimtalk")
    baseline = config.prices.of(fallback.kind.lower())
    return Preview(kind=kind, text=text, length=len(text), fallback_kind=fallback.kind,
                   fallback_text=fallback.content, fallback_bytes=euckr_len(fallback.content), replaced=replaced,
                   reached=len(reached), held=held, cost_krw=price * len(reached),
                   baseline_krw=baseline * len(reached),
                   zone_names=[n for n in (zone_name(c) for c in alert.zone_codes()) if n])


def publish(session: Session, alert: Alert, now: datetime) -> int:
    """Ingest the notice like a polled alert; returns its alert id."""
    report = ingest(session, [alert], feed=FEED, now=now)
    if not report.new_ids:
        raise NoticeError("this notice was already sent")
    return report.new_ids[0]


def latest_version(session: Session, record: AlertRecord) -> AlertRecord:
    """The thread's newest version (what an update or 해제 must reference)."""
    if record.thread_id is None:
        return record
    return session.exec(select(AlertRecord).where(AlertRecord.thread_id == record.thread_id)
                        .order_by(col(AlertRecord.sent).desc(), col(AlertRecord.id).desc()).limit(1)).one()
