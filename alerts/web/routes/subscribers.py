"""Subscribers: search, masked phones, pause/resume/remove, CSV import with a per-line report.

Phone numbers are masked for everyone but admins, in the page and in search: a non-admin may look a person
up by their whole number or its last four digits (both already shown masked), never by partial middle
digits, which would let the number be read out digit by digit. Rows are addressed by id, never by number,
so no full number travels in a URL or form.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from alerts.db import session_scope
from alerts.web import audit
from alerts.web.auth import CurrentUser, current_user, require_role
from alerts.web.context import DB, WebContext, client_address, web_context
from alerts.web.phones import mask_phone, shown_phone
from alerts.web.templating import NAV, page
from subscribers import store, zones
from subscribers.csv_import import CsvImportError, import_csv
from subscribers.models import Subscriber, Subscription
from subscribers.phone import PhoneError, normalize

router = APIRouter()
NAV.add((40, "/subscribers", "Subscribers", "viewer"))
PAGE_SIZE = 100
#: The biggest CSV accepted through the browser (the CLI has no limit).
MAX_UPLOAD = 50 * 1024 * 1024


def _search(session: Session, q: str, status: str, zone: str, *, admin: bool, offset: int):  # noqa: ANN202
    query = select(Subscriber)
    q = q.strip()
    if q:
        digits = "".join(ch for ch in q if ch.isdigit())
        if digits and len(digits) == len(q.replace("-", "").replace(" ", "")):
            try:
                full = normalize(q)
            except PhoneError:
                full = None
            if full is not None:
                query = query.where(Subscriber.phone == full)
            elif admin:
                query = query.where(col(Subscriber.phone).contains(digits))
            elif len(digits) == 4:
                query = query.where(col(Subscriber.phone).endswith(digits))
            else:
                raise HTTPException(400, "search by the whole number or its last four digits")
        else:
            query = query.where(col(Subscriber.name).contains(q))
    if status:
        query = query.where(Subscriber.status == status)
    if zone:
        try:
            leaves = zones.expand_many([zone])
        except zones.ZoneError as exc:
            raise HTTPException(400, str(exc)) from None
        ids = select(Subscription.subscriber_id).where(Subscription.kind == "zone",
                                                       col(Subscription.zone_code).in_(leaves))
        query = query.where(col(Subscriber.id).in_(ids))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = list(session.exec(query.order_by(col(Subscriber.id)).offset(offset).limit(PAGE_SIZE)))
    return rows, total


@router.get("/subscribers")
def subscribers_page(request: Request, session: DB, q: str = "", status: str = "", zone: str = "", offset: int = 0,
                     user: CurrentUser = Depends(current_user)) -> Response:
    rows, total = _search(session, q, status, zone, admin=user.is_admin, offset=max(0, offset))
    by_id = store.zones_by_subscriber(session, [r.id for r in rows if r.id is not None])
    counts = store.count(session)
    people = [{"id": r.id, "phone": shown_phone(r.phone, admin=user.is_admin), "name": r.name, "status": r.status,
               "min_severity": r.min_severity, "language": r.language, "created_at": r.created_at,
               "zones": [_zone_label(c) for c in by_id.get(r.id or 0, [])]} for r in rows]
    return page(request, "subscribers.html", title="Subscribers", people=people, total=total, counts=counts, q=q,
                status=status, zone=zone, offset=offset, page_size=PAGE_SIZE, report=None)


def _zone_label(code: str) -> str:
    try:
        return zones.name(code)
    except Exception:  # noqa: BLE001 - an unknown code is shown as stored
        return code


@router.post("/subscribers/{subscriber_id}/{action}")
def change(subscriber_id: int, action: str, request: Request, session: DB,
           user: CurrentUser = Depends(require_role("operator")), ctx: WebContext = Depends(web_context)) -> Response:
    if action not in ("pause", "resume", "remove"):
        raise HTTPException(404, "unknown action")
    person = session.get(Subscriber, subscriber_id)
    if person is None:
        raise HTTPException(404, "no such subscriber")
    try:
        if action == "remove":
            store.remove(session, person.phone)
        else:
            store.set_status(session, person.phone, "paused" if action == "pause" else "active")
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    audit.record(session, at=ctx.now(), actor=user.name, action=f"subscriber.{action}",
                 target=f"subscriber {subscriber_id} ({mask_phone(person.phone)})", client=client_address(request))
    back = request.headers.get("referer", "")
    return RedirectResponse(back if back.startswith(str(request.base_url)) else "/subscribers", status_code=303)


@router.post("/subscribers/import")
async def import_file(request: Request, file: UploadFile = File(...),
                      user: CurrentUser = Depends(require_role("operator")),
                      ctx: WebContext = Depends(web_context)) -> Response:
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, f"{file.filename}: larger than {MAX_UPLOAD // 1024 // 1024} MB; use the CLI")
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_import, request, file.filename or "upload.csv", data, user, ctx)


def _import(request: Request, filename: str, data: bytes, user: CurrentUser, ctx: WebContext) -> Response:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(filename).name
        path.write_bytes(data)
        try:
            report = import_csv(ctx.engine, path, consent_source="console",
                                consent_text=f"imported from {path.name} by {user.name} in the console")
            error = None
        except CsvImportError as exc:
            report, error = None, str(exc)
    with session_scope(ctx.engine) as session:
        audit.record(session, at=ctx.now(), actor=user.name, action="subscriber.import", target=filename[:200],
                     client=client_address(request),
                     detail={"error": error} if report is None else {
                         "inserted": report.inserted, "updated": report.updated, "unchanged": report.unchanged,
                         "skipped": report.skipped, "merged": report.merged})
        counts = store.count(session)
    return page(request, "subscribers.html", status_code=400 if error else 200, title="Subscribers", people=[],
                total=0, counts=counts, q="", status="", zone="", offset=0, page_size=PAGE_SIZE, report=report,
                report_error=error, report_file=filename)


