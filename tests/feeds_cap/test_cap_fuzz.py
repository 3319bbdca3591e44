"""Mutated real documents: the only exception any XML parser may let escape is ParseError."""

from __future__ import annotations

import os
import re
from html import escape

from feeds_cap_builders import CAP_CORPUS, SAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.atom import AtomParser
from feeds.base import ParseError, ParseResult
from feeds.cap import CapParser
from feeds.rss import RssParser


def _seeds() -> list[bytes]:
    """Corpus documents when shared/ is present; the bundled samples always (so the test never skips)."""
    paths = sorted(SAMPLES.glob("*.xml"))
    if CAP_CORPUS.is_dir():
        paths += sorted(p for p in CAP_CORPUS.rglob("*") if p.is_file() and p.suffix != ".md")
    return [p.read_bytes() for p in paths if p.stat().st_size < 400_000]


SEEDS = _seeds()

FRAGMENTS = [
    b'<!DOCTYPE alert [<!ENTITY x "y">]>',
    b'<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/evil.dtd">',
    b'<!ENTITY xxe SYSTEM "file:///etc/passwd">',
    b"&xxe;", b"&amp;", b"&#0;", b"&#x110000;", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<?pi x?>",
    b"</alert>", b"<alert>", b"<info>", b"</info>", b"<polygon>", b"</polygon>", b"<entry>", b"</entry>",
    b"<references>", b"</references>", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\xe9", b"Z", b"nan,inf",
    b"-99999,1e308", b"+14:00", b"0001-01-01T00:00:00+01:00", b"9999-12-31T23:59:59-14:00", b",", b" ",
]


_TEXT = re.compile(rb">([^<>]{1,200})</")
TEXTS = ["", " ", "Actul", "Very Likely", "2026-11-27T05:00:00", "2026-11-27T05:00:00Z", "a,b", "a b",
         "x,y,2026-11-27T05:00:00+09:00", "91,181 0,0", "126,37 127,37 127,38", "37,126 38,127 37,127 38,126",
         "nan,nan 1,1 2,2", "1e400,0", "37.5,126.5 -1", "Private", "Restricted", "Update", "Cancel", "=", "a=b"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    # Half the examples stay well-formed (text changes only) so the CAP rules run, not just the XML parser.
    text_only = draw(st.booleans())
    for _ in range(draw(st.integers(1, 4))):
        kind = "retext" if text_only else draw(st.sampled_from(["flip", "truncate", "insert", "delete",
                                                                "duplicate", "retext"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.sampled_from(FRAGMENTS))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 256))]
        elif kind == "retext":
            # keep the document well-formed but change one element's text, so the CAP rules themselves run
            texts = list(_TEXT.finditer(data))
            if texts:
                match = draw(st.sampled_from(texts))
                new = draw(st.one_of(st.sampled_from(TEXTS), st.text(max_size=40)))
                data[match.start(1):match.end(1)] = escape(new).encode("utf-8")
    return bytes(data)


#: 200 by default; FEEDS_CAP_FUZZ_EXAMPLES=5000 for a longer hunt.
EXAMPLES = int(os.environ.get("FEEDS_CAP_FUZZ_EXAMPLES", "200"))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_only_parse_error_escapes(data: bytes) -> None:
    for parser in (CapParser(), AtomParser(), RssParser()):
        try:
            result = parser.parse(data, origin="fuzz")
        except ParseError as exc:
            assert str(exc).strip()
            continue
        assert isinstance(result, ParseResult)
        assert all(isinstance(line, str) and "\n" not in line for line in result.errors)
        for alert in result.alerts:
            alert.key()  # every accepted time converts to UTC
            for info in alert.infos:
                for area in info.areas:
                    for ring in area.polygons:
                        assert ring[0] == ring[-1] and all(-90 <= lat <= 90 and -180 <= lon <= 180
                                                          for lat, lon in ring)


def test_seeds_exist() -> None:
    assert len(SEEDS) >= 2, "no fuzz seeds: feeds/samples is missing"
