"""The one door through which fetched XML enters the project.

Every XML source (CAP, EDXL-DE, Atom, RSS) is untrusted: the CAP corpus carries XXE attacks, feeds that
moved return HTML, and a Canadian feed ships Latin-1 bytes under a UTF-8 declaration. Parsing them all here,
with one set of lxml options, means a hardening fix lands once. A document type declaration has no
legitimate use in any format we read, so instead of neutralising DTDs we refuse every document that has one.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from feeds.base import ParseError

DEFAULT_MAX_BYTES = 5_000_000

_XML_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_HTML_START = re.compile(rb"^(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])",
                         re.I | re.S)
_DTD_MARKERS = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.I)


def _prefix(origin: str) -> str:
    return f"{origin}: " if origin else ""


_local = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser: lxml parsers are not thread-safe, but one is reusable call after call (each
    parse starts a clean error log), and setting one up cost ~1.5 us of a ~6 us small CAP document."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _new_parser()
    return parser


#: The parser's safety layers, each of which must hold on its own (tests/feeds_cap/test_xmlsafe_layers.py
#: checks every one with the others switched off): entities are never expanded, no DTD is loaded, nothing
#: is fetched from the network. The DTD refusal in :func:`parse_xml` is a further layer in front of these.
PARSER_OPTIONS: dict[str, bool] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_pis": False,
    "recover": False,
}


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(**PARSER_OPTIONS)


def _declared_encoding(head: bytes) -> str | None:
    match = _XML_DECL_ENCODING.match(head)
    return match.group(1).decode("ascii").lower() if match else None


def _check_utf8(data: bytes, origin: str, declared: str | None) -> None:
    """Name the Latin-1-under-UTF-8 mistake precisely instead of relaying libxml2's generic message."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or declared not in (None, "utf-8", "utf8"):
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start]
        what = "declares UTF-8" if declared else "has no encoding declaration, so it must be UTF-8"
        raise ParseError(
            f"{_prefix(origin)}not well-formed XML: byte 0x{bad:02X} at line {line} (offset {exc.start}) "
            f"is not valid UTF-8 although the document {what} "
            "(Latin-1/Windows-1252 text under a UTF-8 declaration?)"
        ) from None


def parse_xml(data: bytes, *, origin: str, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted bytes into an element tree, or raise :class:`ParseError` with a one-line reason.

    Refuses documents larger than ``max_bytes``, documents with any DTD or entity declaration, HTML pages
    and anything that is not well-formed. Entities are never resolved and nothing is fetched.
    """
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise ParseError(f"{_prefix(origin)}expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise ParseError(f"{_prefix(origin)}document is {len(data)} bytes, over the {max_bytes} byte limit")
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    head = body[:2048].lstrip()
    if not head:
        raise ParseError(f"{_prefix(origin)}not XML: the document is empty")
    if not utf16:
        if _HTML_START.match(head):
            raise ParseError(f"{_prefix(origin)}not XML: looks like an HTML page (moved or error page?)")
        if not head.startswith(b"<"):
            first = head[:40].decode("utf-8", "replace").splitlines()[0]
            raise ParseError(f"{_prefix(origin)}not XML: document starts with {first!r}")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        if _DTD_MARKERS.search(data[:65536]):
            raise ParseError(f"{_prefix(origin)}DTD/entity declarations are not accepted") from None
        # libxml2 refuses bytes that are not UTF-8 where UTF-8 is declared or implied; say why precisely
        _check_utf8(data, origin, _declared_encoding(head))
        message = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise ParseError(f"{_prefix(origin)}not well-formed XML: {message}") from None
    except (etree.LxmlError, ValueError, TypeError, MemoryError, RecursionError) as exc:
        raise ParseError(f"{_prefix(origin)}not XML: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if root is None:
        raise ParseError(f"{_prefix(origin)}not XML: no root element")
    # A document type declaration can only come from "<!DOCTYPE" in an ASCII-compatible document; asking
    # libxml2 (docinfo) costs more than the scan, so it is asked only where the scan cannot settle it.
    if utf16 or not head.startswith(b"<") or _DTD_MARKERS.search(data) is not None:
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
            raise ParseError(f"{_prefix(origin)}DTD/entity declarations are not accepted")
    if local_name(root).lower() == "html":
        raise ParseError(f"{_prefix(origin)}not XML: looks like an HTML page (moved or error page?)")
    return root


def local_name(elem: etree._Element) -> str:
    """Local part of an element's tag; empty for comments and processing instructions."""
    tag = elem.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def namespace(elem: etree._Element) -> str | None:
    tag = elem.tag
    if not isinstance(tag, str) or not tag.startswith("{"):
        return None
    return tag[1:].partition("}")[0]
