"""``/a/<token>``: the whole warning for one person, and the 확인 button that records their acknowledgement.

Opening the page records nothing (link previews and scanners open links); only pressing 확인 (a POST with
the CSRF token) does. The link expires with the warning: an ended, lifted or expired warning, an unknown
token and another purpose's token all get the same "no longer valid" page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from alerts.public.acks import acked_at, acknowledge_link
from alerts.public.links import AckTarget, resolve_ack
from alerts.public.self_service import vessels_of
from alerts.render import SEVERITY_KO, format_kst, pick_info, zone_words
from alerts.web.context import DB, WebContext, web_context
from alerts.web.public_common import public_page, resolve_link
from alerts.web.zone_svg import zone_map
from feeds.model import Alert
from subscribers.geo_models import Vessel
from subscribers.matching import alert_leaves

router = APIRouter()


def _zone_name(code: str) -> str | None:
    from subscribers import zones

    try:
        return zones.name(code)
    except ValueError:
        return None


@router.get("/a/{token}")
def warning(request: Request, token: str, session: DB, ctx: WebContext = Depends(web_context)) -> Response:
    found = resolve_link(request, session, token, resolve_ack)
    if isinstance(found, Response):
        return found
    alert = Alert.from_json(found.record.body)
    language = found.subscriber.language or "ko"
    info = pick_info(alert, language)
    leaves = alert_leaves(alert.zone_codes(ctx.config.zone_value_names))
    severity = info.severity if info else found.record.severity
    start = (info.effective or info.onset) if info else None
    confirmed = acked_at(session, found.thread.id, found.subscriber.id)  # type: ignore[arg-type]
    return public_page(
        request, "ack.html", token=token, info=info, record=found.record, severity=severity,
        severity_label=SEVERITY_KO.get(severity, severity),
        zones=zone_words(alert, info, ctx.config.zone_value_names, _zone_name) if info else "",
        effective=format_kst(start or found.record.sent, language), expires=format_kst(alert.end_time(), language),
        map=zone_map(session, leaves, points=_boats(session, found)), acked_at=confirmed,
        acked_text=format_kst(confirmed, "ko") if confirmed else "")


def _boats(session: Session, found: AckTarget) -> list[tuple[float, float, str]]:
    """The person's own vessels' latest fixes, drawn on the map (nobody else's)."""
    mmsis = vessels_of(session, found.subscriber.id)  # type: ignore[arg-type]
    if not mmsis:
        return []
    rows = session.exec(select(Vessel).where(col(Vessel.mmsi).in_(mmsis))).all()
    return [(v.last_lat, v.last_lon, v.name or str(v.mmsi)) for v in rows
            if v.last_lat is not None and v.last_lon is not None]


@router.post("/a/{token}")
def confirm(request: Request, token: str, session: DB, ctx: WebContext = Depends(web_context)) -> Response:
    found = resolve_link(request, session, token, resolve_ack)
    if isinstance(found, Response):
        return found
    acknowledge_link(session, token, now=ctx.now())
    return RedirectResponse(f"/a/{token}", status_code=303)
