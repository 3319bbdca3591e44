"""SMS/LMS fallback text rules: byte counting in EUC-KR (cp949), SMS vs LMS, and removing characters
carriers cannot carry.

Carriers count SMS length in EUC-KR bytes (Hangul 2, ASCII 1): SMS is 90 bytes, LMS 2,000 bytes with a
40-byte title. A character outside the code page (emoji, many symbols) makes the whole fallback fail,
so fallback text is always passed through :func:`to_euckr_safe` first. We encode with ``cp949``
(Microsoft's superset of EUC-KR that carries all 11,172 Hangul syllables, the form Korean SMS gateways
accept); characters outside it are replaced by a close equivalent or removed, with a warning.
"""

from __future__ import annotations

import logging
import unicodedata
from typing import Literal

from alerts.delivery.providers.base import Fallback

log = logging.getLogger(__name__)

ENCODING = "cp949"
SMS_MAX_BYTES = 90
LMS_MAX_BYTES = 2000
LMS_TITLE_MAX_BYTES = 40
#: Appended when LMS text had to be cut: the reader must know the message is incomplete.
TRUNCATION_MARKER = "…(이하 생략)"

#: Invisible emoji glue: dropped silently (they are not content).
_INVISIBLE = frozenset({"\u200d", "\ufe0e", "\ufe0f", "\u200b", "\u2060"})

#: Close equivalents for characters common in alerts that cp949 lacks.
REPLACEMENTS: dict[str, str] = {
    "⚠": "[!]",
    "🚨": "[!]",
    "❗": "!",
    "❕": "!",
    "‼": "!!",
    "📢": "",
    "🌀": "",
    "🌊": "",
    "🔥": "",
    "⛈": "",
    "🌧": "",
    "❄": "*",
    "✅": "[v]",
    "❌": "[x]",
    "➡": "->",
    "⬅": "<-",
    "–": "-",
    "‐": "-",
    "−": "-",
    "\u00a0": " ",
}


def _encodable(ch: str) -> bool:
    try:
        ch.encode(ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def to_euckr_safe(text: str) -> tuple[str, list[str]]:
    """Return ``text`` with every character outside cp949 replaced or removed, and the list of the
    original characters that were changed (each once, in order of appearance; empty when none).

    Hangul is NFC-composed first (decomposed jamo from macOS input would otherwise all be lost).
    Lookup order per bad character: :data:`REPLACEMENTS`, then its NFKC form if that encodes
    (full-width and compatibility forms), else removal.
    """
    text = unicodedata.normalize("NFC", text)
    out: list[str] = []
    changed: list[str] = []
    for ch in text:
        if _encodable(ch):
            out.append(ch)
            continue
        if ch in _INVISIBLE:
            continue
        if ch not in changed:
            changed.append(ch)
        if ch in REPLACEMENTS:
            out.append(REPLACEMENTS[ch])
            continue
        compat = unicodedata.normalize("NFKC", ch)
        if compat != ch and all(_encodable(c) for c in compat):
            out.append(compat)
    if changed:
        log.warning(
            "fallback text: replaced or removed %d character(s) outside EUC-KR: %s",
            len(changed),
            " ".join(f"U+{ord(c):04X}" for c in changed),
        )
    return "".join(out), changed


def euckr_len(text: str) -> int:
    """Bytes ``text`` takes in cp949 (after the replacements :func:`to_euckr_safe` would make, so the
    count is the one the carrier will see)."""
    try:
        return len(text.encode(ENCODING))
    except UnicodeEncodeError:
        safe, _ = to_euckr_safe(text)
        return len(safe.encode(ENCODING))


def truncate_euckr(text: str, max_bytes: int, marker: str = "") -> str:
    """Cut ``text`` to at most ``max_bytes`` cp949 bytes on a character boundary; when anything was cut,
    end with ``marker`` (itself counted within ``max_bytes``)."""
    if euckr_len(text) <= max_bytes:
        return text
    budget = max_bytes - euckr_len(marker)
    if budget < 0:
        raise ValueError(f"marker {marker!r} longer than {max_bytes} bytes")
    used = 0
    kept: list[str] = []
    for ch in text:
        size = euckr_len(ch)
        if used + size > budget:
            break
        kept.append(ch)
        used += size
    return "".join(kept) + marker


def fallback_kind(text: str) -> Literal["SMS", "LMS"]:
    """SMS when the text fits 90 cp949 bytes, else LMS (longer LMS text is cut by :func:`fit_lms`)."""
    return "SMS" if euckr_len(text) <= SMS_MAX_BYTES else "LMS"


def fit_lms(text: str) -> str:
    """LMS body of at most 2,000 bytes, cut on a character boundary with :data:`TRUNCATION_MARKER`."""
    return truncate_euckr(text, LMS_MAX_BYTES, TRUNCATION_MARKER)


def lms_title(title: str) -> str:
    """LMS title: cp949-safe, one line, at most 40 bytes (cut on a character boundary with "…")."""
    safe, _ = to_euckr_safe(" ".join(title.split()))
    return truncate_euckr(safe, LMS_TITLE_MAX_BYTES, "…")


def build_fallback(text: str, title: str | None = None) -> tuple[Fallback, list[str]]:
    """The SMS/LMS fallback for ``text``: safe characters, kind by length, LMS cut to 2,000 bytes,
    title only for LMS. Returns the fallback and the characters that had to be replaced/removed."""
    safe, changed = to_euckr_safe(text)
    kind = fallback_kind(safe)
    if kind == "SMS":
        return Fallback(kind="SMS", content=safe), changed
    return Fallback(kind="LMS", content=fit_lms(safe), title=lms_title(title) if title else None), changed
