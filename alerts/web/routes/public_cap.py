"""The agency's own notices for other alerting systems: a CAP Atom feed and each notice as CAP 1.2 XML.

Public by design (CAP feeds are polled by aggregators without accounts); only notices composed in this
console (``feed == "console"``) are published, never alerts alimcast received from others.
"""

from __future__ import annotations

from datetime import UTC

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from lxml import etree
from sqlmodel import col, select

from alerts.models import AlertRecord
from alerts.web.capxml import to_cap_xml
from alerts.web.context import DB, WebContext, web_context
from alerts.web.notices import FEED
from feeds.model import Alert

router = APIRouter()
ATOM = "http://www.w3.org/2005/Atom"
FEED_SIZE = 50


def _base(request: Request, ctx: WebContext) -> str:
    return (ctx.settings.public_url or str(request.base_url)).rstrip("/")


@router.get("/cap/atom.xml")
def atom(request: Request, session: DB, ctx: WebContext = Depends(web_context)) -> Response:
    records = list(session.exec(select(AlertRecord).where(AlertRecord.feed == FEED)
                                .order_by(col(AlertRecord.sent).desc(), col(AlertRecord.id).desc()).limit(FEED_SIZE)))
    base = _base(request, ctx)
    root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    etree.SubElement(root, f"{{{ATOM}}}id").text = f"{base}/cap/atom.xml"
    etree.SubElement(root, f"{{{ATOM}}}title").text = f"{ctx.settings.agency_name} CAP alerts"
    updated = max((r.sent for r in records), default=ctx.now())
    etree.SubElement(root, f"{{{ATOM}}}updated").text = updated.astimezone(UTC).isoformat()
    etree.SubElement(root, f"{{{ATOM}}}link", rel="self", href=f"{base}/cap/atom.xml")
    author = etree.SubElement(root, f"{{{ATOM}}}author")
    etree.SubElement(author, f"{{{ATOM}}}name").text = ctx.settings.agency_name
    for record in records:
        entry = etree.SubElement(root, f"{{{ATOM}}}entry")
        etree.SubElement(entry, f"{{{ATOM}}}id").text = f"urn:oid:{record.sender}:{record.identifier}"
        etree.SubElement(entry, f"{{{ATOM}}}title").text = (
            f"{record.headline or record.event} ({record.msg_type}, {record.severity})")
        etree.SubElement(entry, f"{{{ATOM}}}updated").text = record.sent.astimezone(UTC).isoformat()
        etree.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", type="application/cap+xml",
                         href=f"{base}/cap/{record.id}.xml")
        etree.SubElement(entry, f"{{{ATOM}}}summary").text = record.event
    return Response(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True),
                    media_type="application/atom+xml")


@router.get("/cap/{alert_id}.xml")
def cap(alert_id: int, session: DB) -> Response:
    record = session.get(AlertRecord, alert_id)
    if record is None or record.feed != FEED:
        raise HTTPException(404, "no such notice")
    return Response(to_cap_xml(Alert.from_json(record.body)), media_type="application/cap+xml")
