"""Canonical alert -> CAP 1.2 XML, for the notices the console composes (downloads and the public Atom feed).

Written with lxml in the element order the CAP 1.2 schema requires; times in KST with their offset and no
fractions of a second, as CAP's dateTime profile wants. Reading the result back with alimcast's own CAP
parser gives the same alert (tested), so a partner polling our feed threads updates and 해제 correctly.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lxml import etree

from feeds.model import Alert, Area, Info

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
KST = timezone(timedelta(hours=9))


def cap_time(value: datetime) -> str:
    return value.astimezone(KST).replace(microsecond=0).isoformat()


def _add(parent: etree._Element, tag: str, text: str | None) -> None:
    if text is not None and text != "":
        etree.SubElement(parent, f"{{{CAP_NS}}}{tag}").text = text


def _area(parent: etree._Element, area: Area) -> None:
    node = etree.SubElement(parent, f"{{{CAP_NS}}}area")
    _add(node, "areaDesc", area.desc or "-")
    for ring in area.polygons:
        _add(node, "polygon", " ".join(f"{lat:.5f},{lon:.5f}" for lat, lon in ring))
    for circle in area.circles:
        _add(node, "circle", f"{circle.lat:.5f},{circle.lon:.5f} {circle.radius_km:g}")
    for name, values in area.geocodes.items():
        for value in values:
            geocode = etree.SubElement(node, f"{{{CAP_NS}}}geocode")
            _add(geocode, "valueName", name)
            _add(geocode, "value", value)


def _info(parent: etree._Element, info: Info) -> None:
    node = etree.SubElement(parent, f"{{{CAP_NS}}}info")
    _add(node, "language", info.language)
    for category in info.category:
        _add(node, "category", category)
    _add(node, "event", info.event)
    for response in info.response_type:
        _add(node, "responseType", response)
    _add(node, "urgency", info.urgency)
    _add(node, "severity", info.severity)
    _add(node, "certainty", info.certainty)
    for field, value in (("effective", info.effective), ("onset", info.onset), ("expires", info.expires)):
        if value is not None:
            _add(node, field, cap_time(value))
    _add(node, "senderName", info.sender_name)
    _add(node, "headline", info.headline)
    _add(node, "description", info.description)
    _add(node, "instruction", info.instruction)
    _add(node, "web", info.web)
    _add(node, "contact", info.contact)
    for name, values in info.parameters.items():
        for value in values:
            parameter = etree.SubElement(node, f"{{{CAP_NS}}}parameter")
            _add(parameter, "valueName", name)
            _add(parameter, "value", value)
    for area in info.areas:
        _area(node, area)


def to_cap_xml(alert: Alert) -> bytes:
    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})
    _add(root, "identifier", alert.identifier)
    _add(root, "sender", alert.sender)
    _add(root, "sent", cap_time(alert.sent))
    _add(root, "status", alert.status)
    _add(root, "msgType", alert.msg_type)
    _add(root, "source", alert.source)
    _add(root, "scope", alert.scope)
    _add(root, "note", alert.note)
    if alert.references:
        _add(root, "references", " ".join(f"{r.sender},{r.identifier},{cap_time(r.sent)}" for r in alert.references))
    for info in alert.infos:
        _info(root, info)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
