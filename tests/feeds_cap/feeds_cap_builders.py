"""Minimal CAP documents for table-driven tests: one valid alert, changed one element at a time.

Each builder returns bytes; a field given as ``None`` is left out, any other value replaces the element's text
in place (so element order stays the schema order unless a test moves it on purpose).
"""

from __future__ import annotations

import os
from pathlib import Path

CAP10 = "http://www.incident.com/cap/1.0"
CAP11 = "urn:oasis:names:tc:emergency:cap:1.1"
CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM = "http://www.w3.org/2005/Atom"

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ALIMCAST_SHARED") or REPO_ROOT.parent / "shared")
CAP_CORPUS = SHARED / "corpus" / "cap"
SAMPLES = REPO_ROOT / "feeds" / "samples"
NO_SHARED = f"{SHARED} is absent (read-only reference corpus not mounted)"

ALERT_FIELDS: dict[str, str | None] = {
    "identifier": "TEST-0001",
    "sender": "alerts@example.org",
    "sent": "2026-11-27T05:00:00+09:00",
    "status": "Actual",
    "msgType": "Alert",
    "scope": "Public",
}

INFO_FIELDS: dict[str, str | None] = {
    "language": "ko-KR",
    "category": "Met",
    "event": "풍랑주의보",
    "urgency": "Expected",
    "severity": "Moderate",
    "certainty": "Likely",
}

AREA = "<area><areaDesc>인천·경기북부앞바다</areaDesc></area>"


def elements(fields: dict[str, str | None]) -> str:
    return "".join(f"<{name}>{value}</{name}>" for name, value in fields.items() if value is not None)


def info_xml(extra: str = AREA, **overrides: str | None) -> str:
    fields = dict(INFO_FIELDS)
    fields.update(overrides)
    return f"<info>{elements(fields)}{extra}</info>"


def cap_xml(*, infos: tuple[str, ...] | None = None, ns: str = CAP12, tail: str = "", prefix: str = "",
            **overrides: str | None) -> bytes:
    """A CAP alert; ``tail`` goes after the alert fields (references, extra elements), ``prefix`` before them."""
    fields = dict(ALERT_FIELDS)
    fields.update(overrides)
    body = prefix + elements(fields) + tail + "".join(info_xml() if infos is None else infos)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="{ns}">{body}</alert>'.encode()


def area_xml(*parts: str, desc: str = "zone") -> str:
    return f"<area><areaDesc>{desc}</areaDesc>{''.join(parts)}</area>"


def atom_feed(*entries: str) -> bytes:
    body = "".join(entries)
    return (f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="{ATOM}"><id>urn:test:feed</id>'
            f"<title>t</title><updated>2026-11-27T05:00:00+09:00</updated>{body}</feed>").encode()


def atom_entry(entry_id: str, inner: str) -> str:
    return (f"<entry><id>{entry_id}</id><title>{entry_id}</title>"
            f"<updated>2026-11-27T05:00:00+09:00</updated>{inner}</entry>")


def embedded_cap(**overrides: str | None) -> str:
    """The alert element of :func:`cap_xml` without the XML declaration, for embedding in feeds."""
    return cap_xml(**overrides).decode().split("\n", 1)[1]


def rss_feed(*items: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
            f"<link>http://127.0.0.1/</link><description>d</description>{''.join(items)}</channel></rss>").encode()
