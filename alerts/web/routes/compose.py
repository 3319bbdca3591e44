"""Compose a notice, preview it exactly as recipients will read it, send it; update or lift (해제) it later.

Extreme notices wait for a second operator when ``[web] extreme_needs_approval`` is true. Every step is
audited. Sending ingests a CAP alert through the ordinary pipeline (``alerts.web.notices``).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from alerts.models import AlertRecord
from alerts.web import audit
from alerts.web.auth import CurrentUser, require_role
from alerts.web.basemap import render_map
from alerts.web.context import DB, WebContext, client_address, web_context
from alerts.web.jobs import jobs_of
from alerts.web.models import ConsoleNotice
from alerts.web.notices import (
    CERTAINTIES,
    FEED,
    NoticeError,
    NoticeForm,
    build_alert,
    cancel_of,
    latest_version,
    preview,
    publish,
)
from alerts.web.templating import NAV, page
from feeds.model import CATEGORIES, SEVERITIES, URGENCIES, Alert, Reference
from subscribers import zones

router = APIRouter()
NAV.add((30, "/compose", "Compose", "operator"))
OPERATOR = Depends(require_role("operator"))


def _zone_choices() -> list[tuple[str, str]]:
    """(value, label) for the zone list: marine zones first (broad names too), then land."""
    out = [(z.code, f"{z.name} ({z.code})") for z in zones.list_zones(marine=True)]
    out += [(name, f"{name} (넓은 이름)") for name in ("서해중부먼바다", "서해남부먼바다", "동해중부먼바다",
                                                     "동해남부먼바다", "남해동부먼바다")]
    out += [(z.code, f"{z.name} ({z.code})") for z in zones.list_zones(marine=False)]
    return out


def _render(request: Request, *, form: NoticeForm, update_of: AlertRecord | None = None, error: str | None = None,
            shown=None, status_code: int = 200, session: Session | None = None) -> Response:  # noqa: ANN001
    pending = []
    if session is not None:
        pending = list(session.exec(select(ConsoleNotice).where(ConsoleNotice.state == "pending")
                                    .order_by(col(ConsoleNotice.id))))
    ctx: WebContext = request.app.state.web
    return page(request, "compose.html", status_code=status_code, title="Compose a notice", form=form,
                update_of=update_of, error=error, preview=shown, pending=pending,
                severities=SEVERITIES[:-1], urgencies=URGENCIES[:-1], certainties=CERTAINTIES,
                categories=CATEGORIES, zone_choices=_zone_choices(), map_svg=render_map([], interactive=True),
                needs_approval=ctx.settings.extreme_needs_approval)


def _record(session: Session, alert_id: int) -> AlertRecord:
    record = session.get(AlertRecord, alert_id)
    if record is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return record


@router.get("/compose")
def compose_form(request: Request, session: DB, update: int | None = None, user: CurrentUser = OPERATOR) -> Response:
    if update is None:
        return _render(request, form=NoticeForm(), session=session)
    record = latest_version(session, _record(session, update))
    if record.feed != FEED:
        raise HTTPException(400, "only notices composed here can be updated here")
    return _render(request, form=NoticeForm.from_alert(Alert.from_json(record.body)), update_of=record,
                   session=session)


def _now(ctx: WebContext) -> datetime:
    return ctx.now()


@router.post("/compose")
async def compose(request: Request, user: CurrentUser = OPERATOR, ctx: WebContext = Depends(web_context)) -> Response:
    data = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_compose, request, data, user, ctx)


def _compose(request: Request, data: dict[str, str], user: CurrentUser, ctx: WebContext) -> Response:
    from alerts.db import session_scope

    action = data.get("action", "preview")
    now = _now(ctx)
    with session_scope(ctx.engine) as session:
        update_of = _record(session, int(data["update_of"])) if data.get("update_of") else None
        try:
            form = NoticeForm.from_form(data)
        except NoticeError as exc:
            return _render(request, form=NoticeForm(), error=str(exc), status_code=400, session=session)
        references: list[Reference] = []
        msg_type = "Alert"
        if update_of is not None:
            update_of = latest_version(session, update_of)
            if update_of.feed != FEED:
                raise HTTPException(400, "only notices composed here can be updated here")
            references = [Reference(*Alert.from_json(update_of.body).key())]
            msg_type = "Update"
        try:
            alert = build_alert(form, sender=ctx.settings.agency_sender, sender_name=ctx.settings.agency_name,
                                now=now, msg_type=msg_type, references=references)
            shown = preview(session, ctx.engine, ctx.config, alert, now, kind="update" if update_of else "alert")
        except NoticeError as exc:
            return _render(request, form=form, update_of=update_of, error=str(exc), status_code=400,
                           session=session)
        if action != "send":
            return _render(request, form=form, update_of=update_of, shown=shown, session=session)
        client = client_address(request)
        if alert.max_severity() == "Extreme" and ctx.settings.extreme_needs_approval:
            notice = ConsoleNotice(created_at=now, created_by=user.name, msg_type=alert.msg_type,
                                   body=alert.to_json())
            session.add(notice)
            session.flush()
            audit.record(session, at=now, actor=user.name, action="notice.submit", target=f"notice {notice.id}",
                         client=client, detail={"event": form.event, "identifier": alert.identifier})
            return RedirectResponse(f"/compose?submitted={notice.id}", status_code=303)
        alert_id = publish(session, alert, now)
        session.add(ConsoleNotice(created_at=now, created_by=user.name, state="sent", msg_type=alert.msg_type,
                                  body={}, decided_by=user.name, decided_at=now, alert_id=alert_id))
        audit.record(session, at=now, actor=user.name, action=f"notice.{alert.msg_type.lower()}",
                     target=f"alert {alert_id}", client=client,
                     detail={"event": form.event, "severity": form.severity, "identifier": alert.identifier,
                             "zones": alert.zone_codes(), "reached": shown.reached})
    jobs_of(ctx.extras, ctx.config).match_now()
    return RedirectResponse(f"/alerts/{alert_id}", status_code=303)


@router.post("/alerts/{alert_id}/lift")
def lift(alert_id: int, request: Request, session: DB, user: CurrentUser = OPERATOR,
         ctx: WebContext = Depends(web_context)) -> Response:
    record = latest_version(session, _record(session, alert_id))
    if record.feed != FEED:
        raise HTTPException(400, "only notices composed here can be lifted here")
    if record.msg_type == "Cancel":
        raise HTTPException(409, "this notice was already lifted")
    now = ctx.now()
    cancel = cancel_of(Alert.from_json(record.body), now=now)
    cancel_id = publish(session, cancel, now)
    audit.record(session, at=now, actor=user.name, action="notice.lift", target=f"alert {cancel_id}",
                 client=client_address(request), detail={"lifts": record.id, "identifier": cancel.identifier})
    session.commit()
    jobs_of(ctx.extras, ctx.config).match_now()
    return RedirectResponse(f"/alerts/{cancel_id}", status_code=303)


@router.post("/notices/{notice_id}/{decision}")
def decide(notice_id: int, decision: str, request: Request, session: DB, user: CurrentUser = OPERATOR,
           ctx: WebContext = Depends(web_context)) -> Response:
    """A second operator approves (sends) or rejects an Extreme notice waiting for approval."""
    if decision not in ("approve", "reject"):
        raise HTTPException(404, "unknown decision")
    notice = session.get(ConsoleNotice, notice_id)
    if notice is None or notice.state != "pending":
        raise HTTPException(404, "no such notice waiting for approval")
    if notice.created_by == user.name:
        raise HTTPException(403, "a second operator must approve: you composed this notice")
    now = ctx.now()
    notice.decided_by, notice.decided_at = user.name, now
    target = f"notice {notice_id}"
    if decision == "reject":
        notice.state = "rejected"
        session.add(notice)
        audit.record(session, at=now, actor=user.name, action="notice.reject", target=target,
                     client=client_address(request))
        return RedirectResponse("/compose", status_code=303)
    alert = Alert.from_json(notice.body)
    notice.alert_id = publish(session, alert, now)
    notice.state = "sent"
    session.add(notice)
    audit.record(session, at=now, actor=user.name, action="notice.approve", target=target,
                 client=client_address(request), detail={"alert": notice.alert_id, "composer": notice.created_by})
    session.commit()
    jobs_of(ctx.extras, ctx.config).match_now()
    return RedirectResponse(f"/alerts/{notice.alert_id}", status_code=303)
