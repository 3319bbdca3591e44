"""AtomParser / RssParser: fat entries become alerts, index entries become links, bad entries become errors."""

from __future__ import annotations

from html import escape

import pytest
from feeds_cap_builders import CAP12, atom_entry, atom_feed, cap_xml, embedded_cap, info_xml, rss_feed

from feeds.atom import AtomParser
from feeds.base import ParseError
from feeds.rss import RssParser

THREE_POLYGONS = info_xml(extra=(
    "<area><areaDesc>a</areaDesc>"
    "<polygon>37,126 37,127 38,127 37,126</polygon>"
    "<polygon>35,125 35,126 36,126 35,125</polygon>"
    "<polygon>33,124 33,125 34,125 33,124</polygon>"
    "<geocode><valueName>KMA_ZONE</valueName><value>S1251100</value></geocode>"
    "<geocode><valueName>KMA_ZONE</valueName><value>S1251200</value></geocode>"
    "</area>"))


def test_fat_atom_keeps_every_polygon_and_geocode_that_feedparser_would_flatten() -> None:
    alert_xml = cap_xml(infos=(THREE_POLYGONS,)).decode().split("\n", 1)[1]
    data = atom_feed(atom_entry("urn:e1", f'<content type="text/xml">{alert_xml}</content>'))
    result = AtomParser().parse(data, origin="f.atom")
    assert result.errors == [] and result.links == []
    (alert,) = result.alerts
    area = alert.infos[0].areas[0]
    assert len(area.polygons) == 3
    assert area.geocodes == {"KMA_ZONE": ["S1251100", "S1251200"]}


def test_bad_entry_is_reported_by_id_and_the_rest_continues() -> None:
    data = atom_feed(
        atom_entry("urn:good-1", f"<content type='text/xml'>{embedded_cap(identifier='G1')}</content>"),
        atom_entry("urn:bad", f"<content type='text/xml'>{embedded_cap(identifier='B 1')}</content>"),
        atom_entry("urn:good-2", embedded_cap(identifier="G2")),  # cap:alert directly in the entry
        atom_entry("urn:nothing", "<summary>no cap, no link</summary>"),
        atom_entry("urn:index", '<link rel="alternate" href="http://127.0.0.1/a.cap"/>'),
    )
    result = AtomParser().parse(data, origin="f.atom")
    assert [a.identifier for a in result.alerts] == ["G1", "G2"]
    assert result.errors == [
        "f.atom entry urn:bad: invalid <identifier> 'B 1': spaces, commas, '<' and '&' are not allowed",
        "f.atom entry urn:nothing: no embedded CAP alert and no http(s) link to one",
    ]
    assert result.links == ["http://127.0.0.1/a.cap"]


LINK_CHOICE = [
    pytest.param('<link href="http://h/page.html"/><link rel="related" type="application/cap+xml" href="http://h/x"/>',
                 "http://h/x", id="cap-media-type-wins"),
    pytest.param('<link href="http://h/page.html"/><link rel="related" href="http://h/alert.cap"/>',
                 "http://h/alert.cap", id="dot-cap-path"),
    pytest.param('<link href="http://h/page.html"/><link rel="via" href="http://h/alert.xml?x=1"/>',
                 "http://h/alert.xml?x=1", id="dot-xml-path"),
    pytest.param('<link href="http://h/GetCapAlert.aspx?id=3"/>', "http://h/GetCapAlert.aspx?id=3", id="entry-link"),
    pytest.param('<link href="caps/1.cap"/>', "http://127.0.0.1:8000/feeds/caps/1.cap", id="relative-resolved"),
]


@pytest.mark.parametrize(("links", "expected"), LINK_CHOICE)
def test_index_entry_link_choice(links: str, expected: str) -> None:
    data = atom_feed(atom_entry("urn:i", links))
    result = AtomParser().parse(data, origin="http://127.0.0.1:8000/feeds/index.atom")
    assert result.links == [expected] and result.errors == [] and result.alerts == []


def test_atom_id_is_never_followed_as_a_link() -> None:
    data = atom_feed(atom_entry("http://127.0.0.1/looks-like-a-url.cap", "<content/>"))
    result = AtomParser().parse(data, origin="f.atom")
    assert result.links == []
    assert result.errors == ["f.atom entry http://127.0.0.1/looks-like-a-url.cap: no embedded CAP alert and no "
                             "http(s) link to one"]


def test_escaped_cap_inside_content_is_parsed() -> None:
    data = atom_feed(atom_entry("urn:esc", f'<content type="text">{escape(embedded_cap(identifier="E1"))}</content>'))
    (alert,) = AtomParser().parse(data, origin="f.atom").alerts
    assert alert.identifier == "E1"


def test_rss_index_fat_and_enclosure() -> None:
    data = rss_feed(
        "<item><title>a</title><link>http://127.0.0.1/page?id=1</link><guid>g1</guid></item>",
        "<item><title>b</title><link>http://127.0.0.1/page?id=2</link>"
        '<enclosure url="http://127.0.0.1/b.bin" type="application/cap+xml" length="1"/><guid>g2</guid></item>',
        f"<item><title>c</title><guid>g3</guid>{embedded_cap(identifier='R3')}</item>",
        "<item><title>d</title><guid isPermaLink='true'>http://127.0.0.1/permalink.cap</guid></item>",
        "<item><title>e</title></item>",
    )
    result = RssParser().parse(data, origin="f.rss")
    assert [a.identifier for a in result.alerts] == ["R3"]
    assert result.links == ["http://127.0.0.1/page?id=1", "http://127.0.0.1/b.bin", "http://127.0.0.1/permalink.cap"]
    assert result.errors == ["f.rss item #5: no embedded CAP alert and no http(s) link to one"]


def test_rss_1_rdf_items() -> None:
    data = (b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">'
            b'<channel rdf:about="http://127.0.0.1/"><title>t</title><link>http://127.0.0.1/</link>'
            b"<description>d</description></channel>"
            b'<item rdf:about="http://127.0.0.1/1.cap"><title>1</title><link>http://127.0.0.1/1.cap</link></item>'
            b"</rdf:RDF>")
    assert RssParser().parse(data, origin="f.rdf").links == ["http://127.0.0.1/1.cap"]


WRONG_DOCUMENTS = [
    pytest.param(AtomParser, cap_xml(), "not an Atom feed: root element <alert>", id="atom-given-cap"),
    pytest.param(AtomParser, rss_feed(), "not an Atom feed: root element <rss>", id="atom-given-rss"),
    pytest.param(RssParser, atom_feed(), "not an RSS feed: root element <feed>", id="rss-given-atom"),
    pytest.param(RssParser, b"<html><body>moved</body></html>", "looks like an HTML page", id="rss-given-html"),
    pytest.param(AtomParser, b'<!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                 b'<feed xmlns="http://www.w3.org/2005/Atom">&x;</feed>',
                 "DTD/entity declarations are not accepted", id="atom-xxe"),
    pytest.param(AtomParser, atom_feed()[:-10], "not well-formed XML", id="atom-truncated"),
]


@pytest.mark.parametrize(("parser", "data", "reason"), WRONG_DOCUMENTS)
def test_whole_document_problems_are_parse_errors(parser, data: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parser().parse(data, origin="feed")


def test_embedded_alert_in_unknown_namespace_is_not_cap() -> None:
    foreign = embedded_cap().replace(CAP12, "urn:example:not-cap")
    data = atom_feed(atom_entry("urn:x", foreign + '<link href="http://127.0.0.1/x.cap"/>'))
    result = AtomParser().parse(data, origin="f.atom")
    assert result.alerts == [] and result.links == ["http://127.0.0.1/x.cap"]


def test_very_large_feed_names_entries_from_the_tree_without_feedparser() -> None:
    from feeds.syndication import FEEDPARSER_MAX_ENTRIES

    count = FEEDPARSER_MAX_ENTRIES + 1
    entries = [atom_entry(f"urn:e{i}", f'<link href="http://127.0.0.1/{i}.cap"/>') for i in range(count - 1)]
    entries.append(atom_entry("urn:last-bad", embedded_cap(status="Actul")))
    result = AtomParser().parse(atom_feed(*entries), origin="big.atom")
    assert len(result.links) == count - 1 and result.links[-1] == f"http://127.0.0.1/{count - 2}.cap"
    assert result.errors == ["big.atom entry urn:last-bad: invalid <status> 'Actul'"]
