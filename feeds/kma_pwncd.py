"""data.go.kr ``WthrWrnInfoService/getPwnCd`` (특보코드조회): one alert per zone row, JSON or XML.

getPwnCd is the only data.go.kr operation with structured per-zone rows, so it is the KMA source the
matcher can trust. The quirks handled here are all from real responses (kma.md §1): numbers and strings
mixed for the same fields, ``items.item`` as one object, ``resultCode`` "03" meaning "no data", the
gateway's different error envelope (``OpenAPI_ServiceResponse``), and codes the guide does not define
(``warnVar`` 13, ``warnStress`` 2), which are kept raw with a warning instead of dropping the row.

Identity: ``sender`` is ``kma.go.kr``; ``identifier`` is
``KMA-PWN-{stnId}-{tmFc}-{tmSeq}-{areaCode}-{warnVar}-{warnStress}-{command}`` (unique per row, stable
across polls); ``sent`` is ``tmFc`` in KST. ``thread_key`` is ``kma:{areaCode}:{hazard}`` without the
level, so 주의보 -> 경보 (변경발표) replaces within one thread and 해제 closes it.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from feeds.base import FeedParser, ParseError, ParseResult
from feeds.jsonsafe import FieldError, as_dict, as_list, check_body, load_json, required_text, text, where
from feeds.kma_codes import (
    PWN_COMMAND,
    PWN_WARN_STRESS,
    PWN_WARN_VAR,
    KmaRow,
    ascii_token,
    build_alert,
    kst_time,
)
from feeds.model import Alert

WHAT = "KMA getPwnCd"

#: resultCode -> meaning, for error messages (kma.md §1).
RESULT_CODES = {
    "01": "application error", "02": "database error", "04": "HTTP error", "05": "service timeout",
    "10": "invalid request parameter", "11": "missing required request parameter",
    "12": "no such service or service retired", "20": "service access denied",
    "22": "request limit exceeded", "30": "service key not registered", "31": "service key expired",
    "32": "unregistered IP", "99": "unknown error (query window longer than ~6 days?)",
}
_NO_DATA = {"03", "3"}
_OK = {"00", "0"}


def secure_xml(data: bytes, *, origin: str, what: str) -> etree._Element:
    """Parse XML with network/entity features off; a DOCTYPE is refused outright (XXE, billion laughs)."""
    if re.search(rb"<!DOCTYPE", data[:65536], re.I) or re.search(rb"<!ENTITY", data, re.I):
        raise ParseError(f"{where(origin)}{what}: XML with a DOCTYPE/ENTITY declaration refused")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ParseError(f"{where(origin)}{what}: XML not well-formed: {exc}") from None
    except ValueError as exc:
        raise ParseError(f"{where(origin)}{what}: unreadable XML: {exc}") from None
    if root is None:
        raise ParseError(f"{where(origin)}{what}: empty XML document")
    return root


def xml_to_obj(element: etree._Element, depth: int = 0) -> Any:
    """Element -> the JSON shape data.go.kr would have sent (repeated children become lists)."""
    if depth > 64:
        raise FieldError("XML nested too deeply")
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return (element.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        tag = etree.QName(child).localname
        value = xml_to_obj(child, depth + 1)
        if tag in out:
            previous = out[tag]
            out[tag] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[tag] = value
    return out


def load_envelope(data: bytes, *, origin: str, what: str) -> dict[str, Any]:
    """JSON or XML body -> ``{"response": ...}`` or ``{"OpenAPI_ServiceResponse": ...}`` dict."""
    body = check_body(data, origin=origin, what=what)
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        root = secure_xml(head, origin=origin, what=what)
        try:
            return {etree.QName(root).localname: xml_to_obj(root)}
        except FieldError as exc:
            raise ParseError(f"{where(origin)}{what}: {exc}") from None
    obj = load_json(body, origin=origin, what=what)
    if not isinstance(obj, dict):
        raise ParseError(f"{where(origin)}{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def items_of(envelope: dict[str, Any], *, origin: str, what: str) -> list[Any]:
    """Check the header and return the item list; errors raise, "no data" is an empty list."""
    gateway = envelope.get("OpenAPI_ServiceResponse")
    if gateway is not None:
        header = gateway.get("cmmMsgHeader") if isinstance(gateway, dict) else None
        header = header if isinstance(header, dict) else {}
        code = text(header.get("returnReasonCode")) or "?"
        msg = text(header.get("returnAuthMsg")) or text(header.get("errMsg")) or ""
        err = text(header.get("errMsg")) or ""
        meaning = RESULT_CODES.get(code.zfill(2), "gateway error")
        detail = " / ".join(dict.fromkeys(m for m in (err, msg) if m))
        raise ParseError(f"{where(origin)}{what}: data.go.kr error {code} ({meaning}): {detail}".rstrip(": "))
    response = envelope.get("response")
    if not isinstance(response, dict):
        raise ParseError(f"{where(origin)}{what}: no 'response' object (not a data.go.kr reply)")
    header = response.get("header")
    if not isinstance(header, dict):
        raise ParseError(f"{where(origin)}{what}: 'response.header' missing")
    code = text(header.get("resultCode"))
    msg = text(header.get("resultMsg")) or ""
    if code is None:
        raise ParseError(f"{where(origin)}{what}: 'response.header.resultCode' missing")
    if code in _NO_DATA:
        return []
    if code not in _OK:
        meaning = RESULT_CODES.get(code.zfill(2), "unknown result code")
        raise ParseError(f"{where(origin)}{what}: resultCode {code} ({meaning}): {msg}".rstrip(": "))
    body = response.get("body")
    if body is None or body == "":
        return []
    if not isinstance(body, dict):
        raise ParseError(f"{where(origin)}{what}: 'response.body' is {type(body).__name__}, "
                         f"expected an object")
    items = body.get("items")
    if items is None or items == "" or items == {}:
        return []
    if isinstance(items, list):  # some gateways flatten items into a list
        return items
    if not isinstance(items, dict):
        raise ParseError(f"{where(origin)}{what}: 'response.body.items' is {type(items).__name__}")
    return as_list(items.get("item"))


def _row(item: Any) -> KmaRow:
    obj = as_dict(item, "item")
    area = required_text(obj, "areaCode")
    var = required_text(obj, "warnVar")
    stress = required_text(obj, "warnStress")
    command = required_text(obj, "command")
    stn = text(obj.get("stnId")) or "0"
    seq = text(obj.get("tmSeq")) or "0"
    cancel = text(obj.get("cancel")) or "0"
    try:
        sent = kst_time(obj.get("tmFc"))
        start = kst_time(obj.get("startTime"))
        end = kst_time(obj.get("endTime"))
        all_end = kst_time(obj.get("allEndTime"))
    except ValueError as exc:
        raise FieldError(str(exc)) from None
    if sent is None:
        raise FieldError("missing tmFc")
    warnings: list[str] = []
    hazard = PWN_WARN_VAR.get(var)
    if hazard is None:
        hazard = f"warnVar{ascii_token(var)}"
        warnings.append(f"unknown warnVar {var!r} kept raw")
    level = PWN_WARN_STRESS.get(stress)
    level_known = level is not None
    if level is None:
        level = f"(warnStress {stress})"
        warnings.append(f"unknown warnStress {stress!r} kept raw; ranked Severe")
    word, msg_type = PWN_COMMAND.get(command, (f"command {command}", "Update"))
    if command not in PWN_COMMAND:
        warnings.append(f"unknown command {command!r} kept raw; treated as Update")
    event = None
    if var not in PWN_WARN_VAR or not level_known:
        event = f"기상특보 {hazard} {level}" if var not in PWN_WARN_VAR else f"{hazard}특보 {level}"
    note = None
    if cancel == "1":
        msg_type = "Cancel"
        note = "KMA withdrew this warning (cancel=1)"
    parameters = {
        "KMA_WARN_VAR": [var], "KMA_WARN_STRESS": [stress], "KMA_COMMAND": [command], "KMA_STN": [stn],
        "KMA_TM_SEQ": [seq], "KMA_CANCEL": [cancel], "KMA_HAZARD": [hazard], "KMA_LEVEL": [level],
    }
    if all_end is not None:
        parameters["KMA_ALL_END_TIME"] = [all_end.isoformat()]
    parts = ("KMA-PWN", stn, text(obj.get("tmFc")) or "", seq, area, var, stress, command)
    identifier = "-".join(ascii_token(p) for p in parts)
    return KmaRow(
        identifier=identifier,
        zone=area,
        zone_name=text(obj.get("areaName")) or area,
        hazard=hazard,
        level=level,
        level_known=level_known,
        command_word=word,
        msg_type=msg_type,
        sent=sent,
        effective=start,
        expires=end,
        parameters=parameters,
        note=note,
        event=event,
        warnings=warnings,
    )


class KmaPwnCdParser(FeedParser):
    kind = "kma-pwncd"

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        envelope = load_envelope(data, origin=origin, what=WHAT)
        result = ParseResult()
        seen: set[str] = set()
        for index, item in enumerate(items_of(envelope, origin=origin, what=WHAT), start=1):
            try:
                row = _row(item)
            except FieldError as exc:
                label = text(item.get("areaCode")) if isinstance(item, dict) else None
                result.errors.append(f"{where(origin)}{WHAT} item {index}"
                                     f"{f' ({label})' if label else ''}: {exc}; skipped")
                continue
            if row.identifier in seen:
                continue
            seen.add(row.identifier)
            alert: Alert = build_alert(row, source="data.go.kr WthrWrnInfoService/getPwnCd")
            result.alerts.append(alert)
        missing = _rows_beyond_this_page(envelope)
        if missing:
            result.errors.append(f"{where(origin)}{WHAT}: this page holds {missing} fewer rows than totalCount; "
                                 "raise numOfRows in the feed URL (rows on later pages are not read)")
        return result


def _rows_beyond_this_page(envelope: dict[str, Any]) -> int:
    """How many of ``totalCount`` rows lie on later pages. We read one page per poll: a warning on page 2
    would be missed without a word, so the shortfall is reported as an error (which also keeps the poll
    from counting as complete)."""
    body = (envelope.get("response") or {}).get("body") if isinstance(envelope.get("response"), dict) else None
    if not isinstance(body, dict):
        return 0
    try:
        total = int(text(body.get("totalCount")) or 0)
        page_no = int(text(body.get("pageNo")) or 1)
        per_page = int(text(body.get("numOfRows")) or 0)
    except ValueError:
        return 0
    if per_page <= 0:
        return 0
    return max(0, total - page_no * per_page)
