"""feeds.xmlsafe.parse_xml: the single hardened XML entry point."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from lxml import etree

from feeds.base import ParseError
from feeds.xmlsafe import parse_xml

BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                  b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
                  b'<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>'
                  b"<lolz>&lol4;</lolz>")
FILE_XXE = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<alert>&xxe;</alert>")

REJECTED = [
    ("billion-laughs", BILLION_LAUGHS, "DTD/entity declarations are not accepted"),
    ("file-xxe", FILE_XXE, "DTD/entity declarations are not accepted"),
    ("public-dtd", b'<!DOCTYPE alert PUBLIC "-//A//EN" "http://example.invalid/a.dtd"><alert/>',
     "DTD/entity declarations are not accepted"),
    ("internal-subset-only", b"<!DOCTYPE alert [<!ELEMENT alert ANY>]><alert/>",
     "DTD/entity declarations are not accepted"),
    ("undeclared-entity", b"<alert>&xxe;</alert>", "not well-formed XML"),
    ("html-doctype", b"<!DOCTYPE html>\n<html><head><title>Moved</title></head><body><p>gone<br></body></html>",
     "looks like an HTML page"),
    ("html-no-doctype", b"<html><body>Error 404</body></html>", "looks like an HTML page"),
    ("xhtml-well-formed", b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>', "looks like an HTML page"),
    ("garbage", b"Service Unavailable", "not XML: document starts with 'Service Unavailable'"),
    ("json", b'{"alerts": []}', "not XML"),
    ("empty", b"", "the document is empty"),
    ("whitespace", b"  \n\t ", "the document is empty"),
    ("truncated", b'<?xml version="1.0"?><alert><identifier>x</ident', "not well-formed XML"),
    ("two-roots", b"<a/><b/>", "not well-formed XML"),
    ("latin1-under-utf8", '<?xml version="1.0" encoding="utf-8"?><a>météo</a>'.encode("latin-1"),
     "byte 0xE9 at line 1 (offset 42) is not valid UTF-8 although the document declares UTF-8"),
    ("latin1-no-declaration", "<a>é</a>".encode("latin-1"), "is not valid UTF-8"),
    ("unknown-encoding", b'<?xml version="1.0" encoding="x-nonsense"?><a/>', "not well-formed XML"),
    ("deep-nesting", b"<a>" * 5000 + b"</a>" * 5000, "not well-formed XML"),
]


@pytest.mark.parametrize(("data", "reason"), [(d, r) for _, d, r in REJECTED], ids=[i for i, _, _ in REJECTED])
def test_rejected_documents_give_one_line_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_xml(data, origin="feed.xml")
    message = str(info.value)
    assert message.startswith("feed.xml: ")
    assert reason in message
    assert "\n" not in message


ACCEPTED = [
    ("utf8-bom", b"\xef\xbb\xbf" + '<?xml version="1.0" encoding="utf-8"?><a>臺灣</a>'.encode(), "臺灣"),
    ("iso-8859-1", '<?xml version="1.0" encoding="ISO-8859-1"?><a>Sismo México</a>'.encode("latin-1"),
     "Sismo México"),
    ("utf-16-bom", '<?xml version="1.0" encoding="UTF-16"?><a>풍랑</a>'.encode("utf-16"), "풍랑"),
    ("no-declaration", "<a>풍랑주의보</a>".encode(), "풍랑주의보"),
    ("leading-whitespace-and-pi", b'\n  <?xml-stylesheet href="x.xsl" type="text/xsl"?><a>t</a>', "t"),
    ("doctype-text-in-comment", b"<a><!-- <!DOCTYPE x> -->t</a>", "t"),
]


@pytest.mark.parametrize(("data", "text"), [(d, t) for _, d, t in ACCEPTED], ids=[i for i, _, _ in ACCEPTED])
def test_accepted_encodings_decode_text(data: bytes, text: str) -> None:
    root = parse_xml(data, origin="x")
    assert "".join(root.itertext()) == text


def test_size_cap_is_enforced_before_parsing() -> None:
    data = b"<a>" + b"x" * 200 + b"</a>"
    assert parse_xml(data, origin="x", max_bytes=len(data)).tag == "a"
    with pytest.raises(ParseError, match=r"document is 207 bytes, over the 206 byte limit"):
        parse_xml(data, origin="x", max_bytes=206)


def test_non_bytes_input_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="expected bytes, got str"):
        parse_xml("<a/>", origin="x")  # type: ignore[arg-type]


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        _CountingHandler.hits.append(self.path)
        body = b'<!ENTITY leak "LEAKED">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture()
def loopback_server() -> Iterator[str]:
    _CountingHandler.hits = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("template", [
    '<!DOCTYPE alert SYSTEM "{url}/evil.dtd"><alert>&leak;</alert>',
    '<!DOCTYPE alert [<!ENTITY % remote SYSTEM "{url}/p.dtd"> %remote;]><alert>&leak;</alert>',
    '<!DOCTYPE alert [<!ENTITY xxe SYSTEM "{url}/secret">]><alert>&xxe;</alert>',
    '<alert xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{url}/inc"/></alert>',
])
def test_no_network_fetch_for_external_dtds_entities_or_xinclude(loopback_server: str, template: str) -> None:
    data = template.format(url=loopback_server).encode()
    if b"DOCTYPE" in data:
        with pytest.raises(ParseError, match="DTD/entity declarations are not accepted"):
            parse_xml(data, origin="x")
    else:
        root = parse_xml(data, origin="x")  # XInclude is parsed as a plain element, never processed
        assert b"LEAKED" not in etree.tostring(root)
    assert _CountingHandler.hits == []
