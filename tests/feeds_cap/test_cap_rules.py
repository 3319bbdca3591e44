"""CapParser: each rule of shared/reference/cap.md exercised with a minimal document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from feeds_cap_builders import CAP10, CAP11, CAP12, area_xml, cap_xml, info_xml

from feeds.base import ParseError
from feeds.cap import CapParser, parse_cap_element
from feeds.model import Resource
from feeds.xmlsafe import parse_xml

KST = timezone(timedelta(hours=9))
SELF_REF = "alerts@example.org,TEST-0001,2026-11-27T05:00:00+09:00"


def parse(data: bytes):
    result = CapParser().parse(data, origin="t.cap")
    assert result.errors == []
    assert len(result.alerts) == 1
    return result.alerts[0]


REJECTIONS = [
    # required alert elements
    *[pytest.param(cap_xml(**{name: None}), f"missing <{name}>", id=f"missing-{name}")
      for name in ("identifier", "sender", "sent", "status", "msgType", "scope")],
    pytest.param(cap_xml(scope=""), "empty <scope>", id="empty-scope"),
    pytest.param(cap_xml(prefix="<identifier>DUP</identifier>"), "duplicate <identifier>", id="duplicate-identifier"),
    # enums
    pytest.param(cap_xml(status="Actul"), "invalid <status> 'Actul'", id="status"),
    pytest.param(cap_xml(msgType="Warning"), "invalid <msgType> 'Warning'", id="msgType"),
    pytest.param(cap_xml(scope="Everyone"), "invalid <scope> 'Everyone'", id="scope"),
    pytest.param(cap_xml(infos=(info_xml(category="Weather"),)), "invalid <category> 'Weather' in <info> 1",
                 id="category"),
    pytest.param(cap_xml(infos=(info_xml(urgency="Soon"),)), "invalid <urgency> 'Soon'", id="urgency"),
    pytest.param(cap_xml(infos=(info_xml(severity="High"),)), "invalid <severity> 'High'", id="severity"),
    pytest.param(cap_xml(infos=(info_xml(certainty="Sure"),)), "invalid <certainty> 'Sure'", id="certainty"),
    pytest.param(cap_xml(infos=(info_xml(urgency=""),)), "invalid <urgency> ''", id="urgency-empty"),
    pytest.param(cap_xml(infos=(info_xml(), info_xml(severity="Bad"))), "invalid <severity> 'Bad' in <info> 2",
                 id="second-info"),
    # required info elements
    *[pytest.param(cap_xml(infos=(info_xml(**{name: None}),)), f"missing <{name}> in <info> 1", id=f"info-{name}")
      for name in ("category", "event", "urgency", "severity", "certainty")],
    pytest.param(cap_xml(infos=(info_xml(event=" "),)), "empty <event> in <info> 1", id="empty-event"),
    # identifier / sender characters
    pytest.param(cap_xml(identifier="TEST 0001"), "invalid <identifier> 'TEST 0001'", id="identifier-space"),
    pytest.param(cap_xml(identifier="INVALID,"), "invalid <identifier> 'INVALID,'", id="identifier-comma"),
    pytest.param(cap_xml(identifier="a&lt;b"), "invalid <identifier> 'a<b'", id="identifier-lt"),
    pytest.param(cap_xml(identifier="a&amp;b"), "invalid <identifier> 'a&b'", id="identifier-amp"),
    pytest.param(cap_xml(sender="kma, kr"), "invalid <sender> 'kma, kr'", id="sender-comma"),
    # references
    pytest.param(cap_xml(msgType="Update", tail="<references/>"), "empty <references> on msgType Update",
                 id="references-empty-update"),
    pytest.param(cap_xml(msgType="Cancel", tail="<references> </references>"), "empty <references> on msgType Cancel",
                 id="references-blank-cancel"),
    pytest.param(cap_xml(msgType="Update", tail="<references>a@b,ID-1</references>"),
                 "invalid <references> entry 'a@b,ID-1'", id="references-pair"),
    pytest.param(cap_xml(msgType="Update", tail="<references>a@b,,2026-11-27T05:00:00+09:00</references>"),
                 "invalid <references> entry", id="references-empty-part"),
    pytest.param(cap_xml(msgType="Update", tail=f"<references>{SELF_REF}</references>"),
                 "<references> refers to the alert itself", id="references-self"),
    pytest.param(cap_xml(msgType="Update", tail="<references>a@b,X,2026-11-27T05:00:00</references>"),
                 "<references> time '2026-11-27T05:00:00' has no UTC offset", id="references-naive"),
    # times
    pytest.param(cap_xml(sent="2026-11-27T05:00:00"), "<sent> '2026-11-27T05:00:00' has no UTC offset",
                 id="sent-naive"),
    pytest.param(cap_xml(sent="27 Nov 2026 05:00 KST"), "invalid <sent> '27 Nov 2026 05:00 KST'", id="sent-garbage"),
    pytest.param(cap_xml(sent="2026-13-27T05:00:00+09:00"), "invalid <sent> '2026-13-27T05:00:00+09:00'",
                 id="sent-month-13"),
    pytest.param(cap_xml(sent="0001-01-01T00:00:00+01:00"), "invalid <sent>", id="sent-overflows-utc"),
    pytest.param(cap_xml(infos=(info_xml(expires="2026-11-28T05:00:00"),)),
                 "<expires> in <info> 1 '2026-11-28T05:00:00' has no UTC offset", id="expires-naive"),
    # scope rules
    pytest.param(cap_xml(scope="Private"), "<scope> Private needs <addresses>", id="private-no-addresses"),
    pytest.param(cap_xml(scope="Restricted"), "<scope> Restricted needs a <restriction>", id="restricted"),
    # namespace / root
    pytest.param(cap_xml(ns="urn:oasis:names:tc:emergency:alerts:1.2"),
                 "unknown namespace urn:oasis:names:tc:emergency:alerts:1.2", id="namespace"),
    pytest.param(b"<alert><identifier>x</identifier></alert>", "unknown namespace (none)", id="no-namespace"),
    pytest.param(f'<alerts xmlns="{CAP12}"/>'.encode(), "root element <alerts>", id="alerts-wrapper"),
]


@pytest.mark.parametrize(("data", "reason"), REJECTIONS)
def test_rejections_name_the_rule(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        CapParser().parse(data, origin="t.cap")
    message = str(info.value)
    assert message.startswith("t.cap: ")
    assert reason in message, message
    assert "\n" not in message


def test_private_and_restricted_pass_with_their_companions() -> None:
    private = parse(cap_xml(scope="Private", tail="<addresses>ops@example.org</addresses>"))
    assert (private.scope, private.addresses) == ("Private", "ops@example.org")
    restricted = parse(cap_xml(scope="Restricted", tail="<restriction>coast guard only</restriction>"))
    assert (restricted.scope, restricted.restriction) == ("Restricted", "coast guard only")


def ring(*points: str) -> str:
    return f"<polygon>{' '.join(points)}</polygon>"


LENIENT = [
    pytest.param(cap_xml(sent="2026-11-26T20:00:00Z"), "uses 'Z' instead of an offset",
                 lambda a: a.sent == datetime(2026, 11, 26, 20, tzinfo=UTC), id="z-time"),
    pytest.param(cap_xml(infos=(info_xml(certainty="Very Likely"),)), "'Very Likely' read as 'Likely'",
                 lambda a: a.infos[0].certainty == "Likely", id="very-likely"),
    pytest.param(cap_xml(msgType="Alert", tail="<references/>"), "empty <references> ignored",
                 lambda a: a.references == [], id="empty-references-on-alert"),
    pytest.param(cap_xml(prefix="<scope>Public</scope>", scope=None),
                 "alert: element order: <identifier> after <scope> (and 4 more)",
                 lambda a: a.scope == "Public", id="alert-order"),
    pytest.param(cap_xml(infos=(info_xml(extra="<headline>h</headline><senderName>s</senderName>" + area_xml()),)),
                 "info 1: element order: <senderName> after <headline>",
                 lambda a: (a.infos[0].headline, a.infos[0].sender_name) == ("h", "s"), id="info-order"),
    pytest.param(cap_xml(tail="<foo>bar</foo>"), "alert: unknown element <foo> ignored",
                 lambda a: a.identifier == "TEST-0001", id="unknown-element"),
    pytest.param(cap_xml(msgType="Update"), "msgType Update without <references>",
                 lambda a: a.msg_type == "Update", id="update-without-references"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml(ring("37,126", "37,127", "38,127"))),)),
                 "ring not closed", lambda a: a.infos[0].areas[0].polygons == [
                     [(37.0, 126.0), (37.0, 127.0), (38.0, 127.0), (37.0, 126.0)]], id="unclosed-ring"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml(ring("37,126", "38,127", "37,127", "38,126", "37,126"))),)),
                 "invalid polygon kept as sent (Self-intersection",
                 lambda a: len(a.infos[0].areas[0].polygons[0]) == 5, id="bowtie"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml(ring("37,126", "38,127", "37,126", "38,127"))),)),
                 "fewer than 3 distinct points, dropped", lambda a: a.infos[0].areas[0].polygons == [],
                 id="degenerate-ring"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml(ring("95,200", "96,201", "97,200", "95,200"))),)),
                 "coordinates out of range, dropped", lambda a: a.infos[0].areas[0].polygons == [], id="out-of-range"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml(ring("126,37", "127,37", "127,38", "126,37"))),)),
                 "coordinates look like lon,lat", lambda a: a.infos[0].areas[0].polygons == [
                     [(37.0, 126.0), (37.0, 127.0), (38.0, 127.0), (37.0, 126.0)]], id="swapped"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml(ring("37,126", "x,y", "38,127", "37,126"))),)),
                 "bad coordinate 'x,y', dropped", lambda a: a.infos[0].areas[0].polygons == [], id="bad-token"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml("<polygon></polygon>")),)), "empty <polygon> ignored",
                 lambda a: a.infos[0].areas[0].polygons == [], id="empty-polygon"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml("<circle>126.5,37.5 10</circle>")),)),
                 "coordinates look like lon,lat", lambda a: (a.infos[0].areas[0].circles[0].lat,
                                                             a.infos[0].areas[0].circles[0].lon) == (37.5, 126.5),
                 id="swapped-circle"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml("<circle>37.5,126.5</circle>")),)), "bad <circle>",
                 lambda a: a.infos[0].areas[0].circles == [], id="circle-without-radius"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml("<ceiling>500</ceiling>")),)), "<ceiling> without <altitude>",
                 lambda a: a.infos[0].areas[0].ceiling == 500.0, id="ceiling-alone"),
    pytest.param(cap_xml(infos=(info_xml(extra=area_xml("<geocode><valueName>SAME</valueName><value/></geocode>")),)),
                 "<geocode> SAME with an empty value ignored", lambda a: a.infos[0].areas[0].geocodes == {},
                 id="empty-geocode"),
    pytest.param(cap_xml(infos=(info_xml(extra="<web>www.kma.go.kr</web>" + area_xml()),)),
                 "<web> 'www.kma.go.kr' is not an absolute URI", lambda a: a.infos[0].web == "www.kma.go.kr",
                 id="relative-web"),
    pytest.param(cap_xml(infos=(info_xml(extra="<area><polygon>37,126 37,127 38,127 37,126</polygon></area>"),)),
                 "missing <areaDesc>", lambda a: len(a.infos[0].areas[0].polygons) == 1, id="no-areaDesc"),
    pytest.param(cap_xml(infos=(info_xml(extra="<resource><resourceDesc>지도</resourceDesc>"
                                               "<uri>https://www.kma.go.kr/map.png</uri></resource>" + area_xml()),)),
                 "info 1 resource 1: missing <mimeType>",
                 lambda a: (a.infos[0].resources[0].desc, a.infos[0].resources[0].mime_type) == ("지도", None),
                 id="resource-without-mimeType"),
    pytest.param(cap_xml(infos=(info_xml(extra="<resource><resourceDesc>m</resourceDesc><mimeType>image/png"
                                               "</mimeType><size>12kB</size></resource>" + area_xml()),)),
                 "invalid <size> '12kB' ignored", lambda a: a.infos[0].resources[0].size is None,
                 id="resource-bad-size"),
]


@pytest.mark.parametrize(("data", "warning", "check"), LENIENT)
def test_lenient_findings_become_warnings(data: bytes, warning: str, check) -> None:
    alert = parse(data)
    assert any(warning in w for w in alert.warnings), alert.warnings
    assert check(alert)


def test_clean_document_has_no_warnings_and_defaults() -> None:
    alert = parse(cap_xml(infos=(info_xml(language=None),)))
    assert alert.warnings == []
    info = alert.infos[0]
    assert info.language == "en-US"
    assert info.effective == alert.sent == datetime(2026, 11, 27, 5, tzinfo=KST)
    assert info.expires is None and alert.end_time() is None


FULL_INFO = (
    "<info><language>ko-KR</language><category>Met</category><category>Safety</category><event>풍랑주의보</event>"
    "<responseType>Prepare</responseType><responseType>Avoid</responseType>"
    "<urgency>Expected</urgency><severity>Moderate</severity><certainty>Likely</certainty>"
    "<audience>선박</audience>"
    "<eventCode><valueName>SAME</valueName><value>SMW</value></eventCode>"
    "<eventCode><valueName>SAME</valueName><value>MWS</value></eventCode>"
    "<eventCode><valueName>KMA</valueName><value>V2</value></eventCode>"
    "<effective>2026-11-27T09:00:00+09:00</effective><onset>2026-11-27T10:00:00+09:00</onset>"
    "<expires>2026-11-28T09:00:00+09:00</expires>"
    "<senderName>기상청</senderName><headline>풍랑주의보</headline><description>물결 2~4m</description>"
    "<instruction>대피</instruction><web>https://www.weather.go.kr/</web><contact>131</contact>"
    "<parameter><valueName>eventEndingTime</valueName><value>2026-11-27T21:00:00+09:00</value></parameter>"
    "<parameter><valueName>wave</valueName><value>2</value></parameter>"
    "<parameter><valueName>wave</valueName><value>4</value></parameter>"
    "<resource><resourceDesc>map</resourceDesc><mimeType>image/png</mimeType><size>2048</size>"
    "<uri>https://www.weather.go.kr/map.png</uri><digest>da39a3ee5e6b4b0d3255bfef95601890afd80709</digest></resource>"
    + area_xml(
        "<polygon>37,126 37,127 38,127 37,126</polygon>",
        "<polygon>35,125 35,126 36,126 35,125</polygon>",
        "<circle>37.5,126.5 25.5</circle>",
        "<circle>34.0,127.0 0</circle>",
        "<geocode><valueName>KMA_ZONE</valueName><value>S1251100</value></geocode>",
        "<geocode><valueName>KMA_ZONE</valueName><value>S1251200</value></geocode>",
        "<geocode><valueName>UGC</valueName><value>PZZ560</value></geocode>",
        "<altitude>0</altitude><ceiling>1000</ceiling>",
        desc="서해중부",
    )
    + area_xml(desc="두번째")
    + "</info>"
)


def test_full_mapping_into_the_model() -> None:
    doc = cap_xml(
        msgType="Update",
        tail=("<code>profile:CAP-KR:1.0</code><code>demo</code><note>n</note>"
              "<references>alerts@example.org,TEST-0000,2026-11-26T05:00:00+09:00 "
              "other@example.org,X-9,2026-11-25T05:00:00-00:00</references><incidents>inc-1</incidents>"),
        infos=(FULL_INFO,),
    ).replace(b"<scope>", b"<source>KMA</source><scope>")
    alert = parse(doc)
    assert alert.warnings == []  # every element in schema order, every value valid
    assert (alert.source, alert.code, alert.note, alert.incidents) == ("KMA", ["profile:CAP-KR:1.0", "demo"], "n",
                                                                       "inc-1")
    assert [r.key() for r in alert.references] == [
        ("alerts@example.org", "TEST-0000", datetime(2026, 11, 25, 20, tzinfo=UTC)),
        ("other@example.org", "X-9", datetime(2026, 11, 25, 5, tzinfo=UTC)),
    ]
    info = alert.infos[0]
    assert info.category == ["Met", "Safety"]
    assert info.response_type == ["Prepare", "Avoid"]
    assert info.audience == "선박"
    assert info.event_codes == {"SAME": ["SMW", "MWS"], "KMA": ["V2"]}
    assert info.parameters["wave"] == ["2", "4"]
    assert info.effective == datetime(2026, 11, 27, 9, tzinfo=KST)
    assert info.onset == datetime(2026, 11, 27, 10, tzinfo=KST)
    assert info.expires == datetime(2026, 11, 28, 9, tzinfo=KST)
    assert (info.sender_name, info.headline, info.description, info.instruction, info.web, info.contact) == (
        "기상청", "풍랑주의보", "물결 2~4m", "대피", "https://www.weather.go.kr/", "131")
    # NWS rule: eventEndingTime wins over expires
    assert alert.end_time() == datetime(2026, 11, 27, 12, tzinfo=UTC)
    area, second = info.areas
    assert area.desc == "서해중부" and second.desc == "두번째"
    assert area.polygons == [[(37.0, 126.0), (37.0, 127.0), (38.0, 127.0), (37.0, 126.0)],
                             [(35.0, 125.0), (35.0, 126.0), (36.0, 126.0), (35.0, 125.0)]]
    assert [(c.lat, c.lon, c.radius_km) for c in area.circles] == [(37.5, 126.5, 25.5), (34.0, 127.0, 0.0)]
    assert area.geocodes == {"KMA_ZONE": ["S1251100", "S1251200"], "UGC": ["PZZ560"]}
    assert (area.altitude, area.ceiling) == (0.0, 1000.0)
    assert alert.zone_codes() == ["S1251100", "S1251200"]
    assert info.resources == [Resource(desc="map", mime_type="image/png", size=2048,
                                       uri="https://www.weather.go.kr/map.png", deref_uri=None,
                                       digest="da39a3ee5e6b4b0d3255bfef95601890afd80709")]
    # the JSON shape round-trips
    assert type(alert).from_json(alert.to_json()).to_json() == alert.to_json()


def test_cap_11_and_cap_10_namespaces() -> None:
    v11 = parse(cap_xml(ns=CAP11))
    assert v11.infos[0].event == "풍랑주의보"
    v10 = parse(cap_xml(ns=CAP10, infos=(info_xml(
        certainty="Very Likely",
        extra="<parameter>wave_height=3</parameter><eventCode>SAME=SMW</eventCode>" + area_xml(
            "<geocode>KMA_ZONE=S1251100</geocode>")),)))
    info = v10.infos[0]
    assert info.certainty == "Likely"
    assert info.parameters == {"wave_height": ["3"]}
    assert info.event_codes == {"SAME": ["SMW"]}
    assert info.areas[0].geocodes == {"KMA_ZONE": ["S1251100"]}


def test_signature_after_last_info_is_silent_but_elsewhere_warns() -> None:
    sig = '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/></Signature>'
    doc = cap_xml(infos=(info_xml(), sig))
    assert parse(doc).warnings == []
    early = cap_xml(infos=(sig, info_xml()))
    assert any("<info> after the XML signature" in w for w in parse(early).warnings)


def test_cancel_without_info_is_legal() -> None:
    alert = parse(cap_xml(msgType="Cancel", infos=(),
                          tail="<references>alerts@example.org,TEST-0000,2026-11-26T05:00:00+09:00</references>"))
    assert alert.infos == [] and alert.msg_type == "Cancel"


def test_parse_cap_element_reused_on_embedded_element() -> None:
    root = parse_xml(f'<wrap><alert xmlns="{CAP12}"/></wrap>'.encode(), origin="x")
    with pytest.raises(ParseError, match=r"^feed entry 7: missing <identifier>$"):
        parse_cap_element(root[0], origin="feed entry 7")
    good = parse_xml(cap_xml(), origin="x")
    assert parse_cap_element(good, origin="").identifier == "TEST-0001"


EDXL = "urn:oasis:names:tc:emergency:EDXL:DE:1.0"


def edxl(*contents: str) -> bytes:
    objects = "".join(f"<contentObject><xmlContent><embeddedXMLContent>{c}</embeddedXMLContent></xmlContent>"
                      f"</contentObject>" for c in contents)
    return (f'<EDXLDistribution xmlns="{EDXL}"><distributionID>d</distributionID>{objects}'
            "</EDXLDistribution>").encode()


def test_edxl_envelope_keeps_good_alerts_and_reports_bad_ones() -> None:
    good = cap_xml().decode().split("\n", 1)[1]
    bad = cap_xml(identifier="TEST-0002", status="Actul").decode().split("\n", 1)[1]
    other = cap_xml(identifier="TEST-0003").decode().split("\n", 1)[1]
    result = CapParser().parse(edxl(good, bad, other), origin="e.xml")
    assert [a.identifier for a in result.alerts] == ["TEST-0001", "TEST-0003"]
    assert result.errors == ["e.xml EDXL-DE alert 2: invalid <status> 'Actul'"]


def test_edxl_without_cap_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="EDXL-DE envelope holds no embedded CAP <alert>"):
        CapParser().parse(edxl("<other xmlns='urn:x'/>"), origin="e.xml")


def test_warnings_are_capped_for_hostile_documents() -> None:
    rings = "".join(f"<polygon>{i / 10},1</polygon>" for i in range(150))  # one finding each
    alert = parse(cap_xml(infos=(info_xml(extra=area_xml(rings)),)))
    assert len(alert.warnings) == 101
    assert alert.warnings[-1] == "alert: 50 more warnings not shown"
