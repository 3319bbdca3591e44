"""One alert: its versions (update, 해제), zones, live delivery counts, the rendered message, the cost so far
against the old SMS/LMS route; and the list of recent alerts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from alerts.models import AlertRecord, AlertThread, Delivery
from alerts.public.ack_stats import warned_leaves
from alerts.render import parameters_for, render
from alerts.web.ack_view import ack_view, age, boats_map
from alerts.web.basemap import alert_layer, render_map
from alerts.web.capxml import to_cap_xml
from alerts.web.context import DB, WebContext, web_context
from alerts.web.live import cost_of, progress_by, zone_outlines
from alerts.web.notices import FEED, zone_name
from alerts.web.templating import NAV, live_fragment, page
from feeds.model import Alert

router = APIRouter()
NAV.add((20, "/alerts", "Alerts", "viewer"))


def _record(session: Session, alert_id: int) -> AlertRecord:
    record = session.get(AlertRecord, alert_id)
    if record is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return record


@router.get("/alerts")
def alert_list(request: Request, session: DB, limit: int = 100) -> Response:
    records = list(session.exec(select(AlertRecord).order_by(col(AlertRecord.received_at).desc(),
                                                             col(AlertRecord.id).desc()).limit(min(limit, 500))))
    threads = {t.id: t for t in session.exec(select(AlertThread).where(
        col(AlertThread.id).in_([r.thread_id for r in records if r.thread_id])))}
    progress = progress_by(session, Delivery.alert_id, [r.id for r in records if r.id is not None])
    return page(request, "alerts.html", title="Alerts", records=records, threads=threads, progress=progress)


def _detail(session: Session, ctx: WebContext, record: AlertRecord) -> dict:
    thread = session.get(AlertThread, record.thread_id) if record.thread_id else None
    versions = list(session.exec(select(AlertRecord).where(AlertRecord.thread_id == record.thread_id)
                                 .order_by(col(AlertRecord.sent), col(AlertRecord.id)))) if thread else [record]
    ids = [v.id for v in versions if v.id is not None]
    per_version = progress_by(session, Delivery.alert_id, ids)
    whole = progress_by(session, Delivery.thread_id, [thread.id])[thread.id] if thread and thread.id else None
    alert = Alert.from_json(record.body)
    sample = session.exec(select(Delivery.text).where(Delivery.alert_id == record.id).limit(1)).first()
    kind = {"Update": "update", "Cancel": "cancel"}.get(record.msg_type, "alert")
    rendered = sample or render(ctx.config.templates[kind].text, parameters_for(
        alert, kind, "ko", ctx.config.zone_value_names, zone_name, ctx.config.sender_name)).text
    outlines = zone_outlines(session)
    layer = alert_layer(record.body, outlines, css=f"sev-{record.severity}", title=record.event,
                        value_names=ctx.config.zone_value_names)
    latest = versions[-1]
    acks = ack_view(session, thread, ctx.config, ctx.now(), zone_name,
                    ctx.extras.setdefault("ack_rates_cache", {})) if thread else None
    leaves = warned_leaves(session, thread, ctx.config.zone_value_names) if thread else []
    return {"record": record, "thread": thread, "versions": versions, "per_version": per_version,
            "progress": whole or per_version[record.id], "alert": alert, "message": rendered,
            "message_is_sample": sample is None, "layer": layer, "map_svg": render_map([layer]),
            "cost": cost_of(session, thread_id=thread.id) if thread else cost_of(session, alert_id=record.id),
            "zones": [(c, zone_name(c)) for c in alert.zone_codes(ctx.config.zone_value_names)],
            "is_notice": record.feed == FEED, "latest": latest,
            "can_change": record.feed == FEED and latest.msg_type != "Cancel"
            and (thread is None or thread.state == "active"),
            "acks": acks, "age": age,
            "boats_svg": boats_map(layer, outlines, leaves, acks.boats) if acks and acks.boats else ""}


@router.get("/alerts/{alert_id}")
def alert_page(alert_id: int, request: Request, session: DB, ctx: WebContext = Depends(web_context)) -> Response:
    record = _record(session, alert_id)
    return page(request, "alert.html", title=record.headline or record.event, **_detail(session, ctx, record))


@router.get("/alerts/{alert_id}/live")
def alert_live(alert_id: int, request: Request, session: DB, ctx: WebContext = Depends(web_context)) -> Response:
    return live_fragment(request, "_alert_live.html", **_detail(session, ctx, _record(session, alert_id)))


@router.get("/alerts/{alert_id}/cap.xml")
def alert_cap(alert_id: int, session: DB) -> Response:
    record = _record(session, alert_id)
    return Response(to_cap_xml(Alert.from_json(record.body)), media_type="application/cap+xml",
                    headers={"Content-Disposition": f'attachment; filename="alert-{alert_id}.xml"'})
