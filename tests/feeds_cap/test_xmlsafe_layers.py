"""Each safety layer of the XML door, on its own.

``parse_xml`` refuses any document with a DTD before the parser sees it, so a test going through it cannot
tell whether the parser behind it still refuses to expand entities, to load DTDs or to use the network:
switching any of those on left the older tests green. Here each layer is checked directly, with the other
layers switched off where they would hide it, so losing any one of them fails a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from feeds import xmlsafe


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    (tmp_path / "secret").write_text("SECRET", encoding="ascii")
    (tmp_path / "leak.dtd").write_text('<!ENTITY leak "LEAKED">', encoding="ascii")
    return tmp_path


def parse_with(parser: etree.XMLParser, data: bytes) -> etree._Element:
    return etree.fromstring(data, parser)


@pytest.mark.parametrize("declaration", ['<!ENTITY e "EXPANDED">', '<!ENTITY e SYSTEM "file://{dir}/secret">'])
def test_entities_are_never_expanded(secrets: Path, declaration: str) -> None:
    data = f"<!DOCTYPE a [{declaration.format(dir=secrets)}]><a>&e;</a>".encode()
    text = etree.tostring(parse_with(xmlsafe._new_parser(), data))
    assert b"EXPANDED" not in text and b"SECRET" not in text
    assert text == b"<a>&e;</a>"


def test_no_dtd_is_loaded(secrets: Path) -> None:
    data = f'<!DOCTYPE a SYSTEM "file://{secrets}/leak.dtd"><a>&leak;</a>'.encode()
    # with entity expansion on, only the DTD layer stands between this document and the file
    parser = etree.XMLParser(**{**xmlsafe.PARSER_OPTIONS, "resolve_entities": True, "recover": True})
    root = parse_with(parser, data)
    assert root.getroottree().docinfo.externalDTD is None
    assert b"LEAKED" not in etree.tostring(root)
    assert parse_with(xmlsafe._new_parser(), data).getroottree().docinfo.externalDTD is None


@pytest.mark.parametrize("document", [
    '<!DOCTYPE a SYSTEM "http://127.0.0.1:9/x.dtd"><a/>',
    '<!DOCTYPE a [<!ENTITY x SYSTEM "http://127.0.0.1:9/secret">]><a>&x;</a>',
])
def test_the_network_is_refused_by_the_parser_itself(document: str) -> None:
    """With entity expansion and DTD loading both switched on, the network layer alone must refuse the load.

    libxml2 reports a refused network load as IO_NETWORK_ATTEMPT whether or not it was built with an HTTP
    client, so this fails when ``no_network`` is lost even where nothing could have been fetched anyway."""
    parser = etree.XMLParser(**{**xmlsafe.PARSER_OPTIONS, "resolve_entities": True, "load_dtd": True})
    with pytest.raises(etree.XMLSyntaxError):
        parse_with(parser, document.encode())
    kinds = {entry.type_name for entry in parser.error_log}
    assert "IO_NETWORK_ATTEMPT" in kinds, kinds


def test_the_dtd_refusal_is_a_layer_of_its_own(secrets: Path) -> None:
    """The front door refuses every DTD whatever the parser would have done with it."""
    data = f'<!DOCTYPE a [<!ENTITY e SYSTEM "file://{secrets}/secret">]><a>&e;</a>'.encode()
    with pytest.raises(xmlsafe.ParseError, match="DTD/entity declarations are not accepted"):
        xmlsafe.parse_xml(data, origin="x")
