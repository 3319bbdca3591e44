"""getPwnCd over the real data.go.kr excerpt, the guide's XML example and hand-built edge envelopes."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from feeds.base import ParseError
from feeds.kma_pwncd import KmaPwnCdParser

KST = timezone(timedelta(hours=9))


def _envelope(items: object, code: object = "00", msg: str = "NORMAL_SERVICE") -> bytes:
    body = {"dataType": "JSON", "items": {"item": items}, "pageNo": 1, "numOfRows": 10, "totalCount": 1}
    return json.dumps({"response": {"header": {"resultCode": code, "resultMsg": msg}, "body": body}},
                      ensure_ascii=False).encode()


def _row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {"allEndTime": 0, "areaCode": "S1251100", "areaName": "인천·경기북부앞바다",
                              "cancel": "0", "command": "1", "endTime": 0, "stnId": "109",
                              "tmFc": 202612150400, "tmSeq": 12, "warnVar": 6, "warnStress": 0,
                              "startTime": 202612150600}
    row.update(over)
    return row


@pytest.fixture(scope="module")
def excerpt(shared_dir: Path) -> bytes:
    return (shared_dir / "corpus/kma/datagokr_getPwnCd_excerpt_2026-07-29_to_09-02.json").read_bytes()


def test_real_excerpt_every_row_kept(excerpt: bytes) -> None:
    result = KmaPwnCdParser().parse(excerpt, origin="excerpt.json")
    assert result.errors == []
    assert len(result.alerts) == 51
    assert len({a.identifier for a in result.alerts}) == 51
    zones = Counter(a.zone_codes()[0] for a in result.alerts)
    assert {"L1072610", "L1072620", "L1083410", "L1082800"} <= set(zones)
    first = result.alerts[0]
    assert first.identifier == "KMA-PWN-108-202609021600-16-L1083410-12-0-2"
    assert first.sent == datetime(2026, 9, 2, 16, 0, tzinfo=KST)
    assert first.sent.utcoffset() == timedelta(hours=9)
    assert first.msg_type == "Cancel"
    assert first.thread_key == "kma:L1083410:폭염"
    info = first.infos[0]
    assert (info.event, info.language, info.category) == ("폭염주의보", "ko-KR", ["Met"])
    assert info.areas[0].desc == "합천군서북부"
    assert info.areas[0].geocodes == {"KMA_ZONE": ["L1083410"]}
    assert info.parameter("KMA_WARN_VAR") == "12" and info.parameter("KMA_STN") == "108"


def test_real_excerpt_unknown_codes_kept_raw(excerpt: bytes) -> None:
    alerts = KmaPwnCdParser().parse(excerpt).alerts
    var13 = [a for a in alerts if a.infos[0].parameter("KMA_WARN_VAR") == "13"]
    stress2 = [a for a in alerts if a.infos[0].parameter("KMA_WARN_STRESS") == "2"]
    assert len(var13) == 8 and len(stress2) == 7
    assert all(any("warnVar '13'" in w for w in a.warnings) for a in var13)
    assert {a.thread_key for a in var13} >= {"kma:L1072610:warnVar13"}
    assert all(a.infos[0].severity == "Severe" and "warnStress '2'" in a.warnings[0] for a in stress2)
    # a raw stress-2 heat row still threads with the heat warning of its zone
    assert stress2[0].thread_key == f"kma:{stress2[0].zone_codes()[0]}:폭염"


@pytest.mark.parametrize(("var", "stress", "command", "cancel", "event", "msg_type", "severity"), [
    (6, 0, "1", "0", "풍랑주의보", "Alert", "Moderate"),
    (6, 1, "7", "0", "풍랑경보", "Update", "Severe"),
    (2, 1, "3", "0", "호우경보", "Update", "Severe"),
    (2, 0, "6", "0", "호우주의보", "Update", "Moderate"),
    (1, 0, "2", "0", "강풍주의보", "Cancel", "Moderate"),
    (8, 1, "8", "0", "대설경보", "Cancel", "Severe"),
    (7, 1, "1", "1", "태풍경보", "Cancel", "Severe"),
])
def test_code_table(var: int, stress: int, command: str, cancel: str, event: str, msg_type: str,
                    severity: str) -> None:
    alert = KmaPwnCdParser().parse(_envelope(_row(warnVar=var, warnStress=stress, command=command,
                                                  cancel=cancel))).alerts[0]
    assert (alert.infos[0].event, alert.msg_type, alert.infos[0].severity) == (event, msg_type, severity)
    assert (alert.note is not None) == (cancel == "1")


def test_replayed_sequence_threads_issue_change_lift() -> None:
    rows = [
        _row(command="1", warnStress=0, tmFc=202612150400, tmSeq=12),
        _row(command="7", warnStress=1, tmFc=202612151000, tmSeq=20, startTime=202612151000),
        _row(command="2", warnStress=1, tmFc=202612151600, tmSeq=31, startTime=0, endTime=202612151600),
    ]
    alerts = KmaPwnCdParser().parse(_envelope(rows)).alerts
    assert [a.msg_type for a in alerts] == ["Alert", "Update", "Cancel"]
    assert {a.thread_key for a in alerts} == {"kma:S1251100:풍랑"}
    assert [a.infos[0].event for a in alerts] == ["풍랑주의보", "풍랑경보", "풍랑경보"]
    assert alerts[0].infos[0].effective == datetime(2026, 12, 15, 6, 0, tzinfo=KST)
    assert alerts[0].infos[0].expires is None and alerts[0].end_time() is None
    assert alerts[2].infos[0].expires == datetime(2026, 12, 15, 16, 0, tzinfo=KST)


def test_single_object_item_and_string_numbers() -> None:
    row = _row(tmFc="202612150400", warnVar="6", warnStress="0", tmSeq="12", stnId=109)
    result = KmaPwnCdParser().parse(_envelope(row))
    assert len(result.alerts) == 1
    assert result.alerts[0].identifier == "KMA-PWN-109-202612150400-12-S1251100-6-0-1"


def test_bad_row_reported_rest_kept() -> None:
    result = KmaPwnCdParser().parse(_envelope([_row(tmFc="tomorrow"), _row(areaCode=None), _row()]),
                                    origin="u")
    assert len(result.alerts) == 1
    assert len(result.errors) == 2 and result.errors[0].startswith("u: KMA getPwnCd item 1")


def test_no_data_is_empty() -> None:
    doc = {"response": {"header": {"resultCode": "03", "resultMsg": "NO_DATA"}}}
    assert KmaPwnCdParser().parse(json.dumps(doc).encode()).alerts == []


@pytest.mark.parametrize(("code", "needle"), [("22", "request limit"), ("99", "99"), ("10", "invalid request")])
def test_error_result_codes(code: str, needle: str) -> None:
    with pytest.raises(ParseError, match=needle):
        KmaPwnCdParser().parse(_envelope([], code=code, msg="LIMITED"), origin="pwn")


def test_gateway_error_envelope(shared_dir: Path) -> None:
    data = (shared_dir / "corpus/kma/datagokr_error_30_unregistered_key.json").read_bytes()
    with pytest.raises(ParseError, match=r"err30\.json: .*error 30 .*SERVICE_KEY_IS_NOT_REGISTERED_ERROR"):
        KmaPwnCdParser().parse(data, origin="err30.json")


def test_gateway_error_envelope_as_xml() -> None:
    data = (b"<OpenAPI_ServiceResponse><cmmMsgHeader><errMsg>SERVICE ERROR</errMsg><returnAuthMsg>"
            b"LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR</returnAuthMsg><returnReasonCode>22"
            b"</returnReasonCode></cmmMsgHeader></OpenAPI_ServiceResponse>")
    with pytest.raises(ParseError, match="22 .request limit exceeded"):
        KmaPwnCdParser().parse(data)


def test_guide_xml_example(shared_dir: Path) -> None:
    examples = etree.parse(str(shared_dir / "corpus/kma/kma_official_guide_xml_examples.xml")).getroot()
    pwn = next(r for r in examples.findall("response") if r.find(".//areaCode") is not None)
    alerts = KmaPwnCdParser().parse(etree.tostring(pwn, encoding="utf-8")).alerts
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.thread_key == "kma:S1322200:풍랑" and alert.msg_type == "Cancel"
    assert alert.infos[0].areas[0].desc == "남해서부동쪽먼바다"
    assert alert.sent == datetime(2017, 6, 7, 7, 30, tzinfo=KST)


def test_xml_with_doctype_refused() -> None:
    data = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><response>&x;</response>'
    with pytest.raises(ParseError, match="DOCTYPE"):
        KmaPwnCdParser().parse(data)


def test_html_page_refused() -> None:
    with pytest.raises(ParseError, match="got an HTML page"):
        KmaPwnCdParser().parse(b"<!DOCTYPE html><html><body>Moved</body></html>", origin="x")


@pytest.mark.parametrize(("total", "page_no", "rows", "missing"), [(7, 1, 3, 4), (3, 1, 3, 0), (10, 2, 5, 0)])
def test_rows_on_later_pages_are_reported(total: int, page_no: int, rows: int, missing: int) -> None:
    """One page per poll: rows beyond it would be missed without a word, so the shortfall is an error."""
    body = json.loads(_envelope([_row(tmSeq=n) for n in range(rows)]))
    body["response"]["body"].update(totalCount=total, pageNo=page_no, numOfRows=rows)
    result = KmaPwnCdParser().parse(json.dumps(body).encode(), origin="pwn")
    assert len(result.alerts) == rows
    if missing:
        assert result.errors == [f"pwn: KMA getPwnCd: this page holds {missing} fewer rows than totalCount; raise "
                                 "numOfRows in the feed URL (rows on later pages are not read)"]
    else:
        assert result.errors == []
