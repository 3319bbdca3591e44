"""Every code in shared/reference/alimtalk.md's tables, mapped through codes.py (k-msg's lesson: a mapping
nobody tests maps everything to UNKNOWN)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from alerts.delivery.providers import codes

SHARED = Path(os.environ.get("ALIMCAST_SHARED") or Path(__file__).resolve().parents[2] / ".." / "shared")
ALIMTALK_MD = SHARED / "reference" / "alimtalk.md"

FALLBACK_LIKE = [
    "3018",
    "3019",
    "3020",
    "3021",
    "3016",
    "2001",
    "3000",
    "3006",
    "3010",
    "3012",
    "9998",
    "9999",
    "4156",
]
PERMANENT = ["3008", "3014", "3025", "3030", "3040", "3058", *[str(c) for c in range(1001, 1031)]]

# (messageStatus, resultCode, resendStatus, resendType) -> (status, channel)
CLASSIFY_ROWS: list[tuple[str | None, str | None, str | None, str | None, str, str | None]] = [
    ("COMPLETED", "1000", "RSC01", None, "delivered", "alimtalk"),
    ("COMPLETED", "1000", "RSC02", "SMS", "delivered", "alimtalk"),
    ("FAILED", "3005", "RSC01", None, "uncertain", "alimtalk"),
    ("FAILED", "3005", "RSC02", "SMS", "uncertain", "alimtalk"),
    ("READY", None, "RSC02", "SMS", "pending", None),
    (None, None, None, None, "pending", None),
    ("FAILED", None, "RSC01", None, "failed", None),
    ("CANCEL", None, "RSC01", None, "failed", None),
    ("CANCEL", "1000", "RSC01", None, "failed", None),
    ("FAILED", "0000", "RSC04", "LMS", "fallback_sent", "lms"),  # unknown code but the SMS went out
    ("FAILED", "0000", "RSC01", None, "failed", None),
]
for _code in FALLBACK_LIKE:
    CLASSIFY_ROWS += [
        ("FAILED", _code, "RSC04", "SMS", "fallback_sent", "sms"),
        ("FAILED", _code, "RSC04", "LMS", "fallback_sent", "lms"),
        ("FAILED", _code, "RSC04", None, "fallback_sent", None),
        ("FAILED", _code, "RSC05", "SMS", "failed", None),
        ("FAILED", _code, "RSC03", "SMS", "pending", None),
        ("FAILED", _code, "RSC02", "SMS", "pending", None),
        ("FAILED", _code, "RSC01", None, "failed", None),
        ("FAILED", _code, None, None, "failed", None),
    ]
for _code in PERMANENT:
    CLASSIFY_ROWS += [
        ("FAILED", _code, "RSC01", None, "failed", None),
        ("FAILED", _code, "RSC02", "SMS", "failed", None),
        ("FAILED", _code, "RSC05", "SMS", "failed", None),
        ("FAILED", _code, "RSC03", "SMS", "pending", None),
        ("FAILED", _code, "RSC04", "SMS", "fallback_sent", "sms"),
    ]


@pytest.mark.parametrize(("message_status", "code", "resend", "rtype", "status", "channel"), CLASSIFY_ROWS)
def test_classify(message_status, code, resend, rtype, status, channel) -> None:
    c = codes.classify(message_status, code, resend, rtype)
    assert (c.status, c.channel) == (status, channel)


@pytest.mark.parametrize(
    ("code", "category", "operator"),
    [
        ("1000", "delivered", False),
        ("3018", "fallback", False),
        ("3019", "fallback", False),
        ("3020", "fallback", False),
        ("3021", "fallback", False),
        ("3016", "template_mismatch", True),
        ("3005", "uncertain", False),
        ("3008", "recipient_error", False),
        ("3014", "template_error", True),
        ("3025", "template_error", True),
        ("3058", "template_error", True),
        ("3059", "unknown", False),
        ("3024", "unknown", False),
        ("1001", "sender_error", True),
        ("1006", "sender_error", True),
        ("1007", "sender_error", True),
        ("1021", "sender_error", True),
        ("1027", "sender_error", True),
        ("1030", "sender_error", True),
        ("1031", "unknown", False),
        ("2001", "transient", False),
        ("3000", "transient", False),
        ("3006", "transient", False),
        ("3010", "transient", False),
        ("3012", "transient", False),
        ("9998", "transient", False),
        ("9999", "transient", False),
        ("4156", "quota", False),
        (None, "none", False),
        ("", "none", False),
    ],
)
def test_delivery_category(code, category, operator) -> None:
    assert codes.delivery_category(code) == category
    assert codes.classify("FAILED", code, "RSC01").operator_alert is operator


API_ROWS = [
    (0, "ok", False),
    (4, "request", False),
    (-1000, "request", False),
    (-1001, "request", False),
    (-1005, "request", False),
    (-1017, "request", True),
    (-1027, "request", False),
    (-1031, "request", False),
    *[(c, "request", False) for c in range(-2005, -1999)],
    (-2017, "request", False),
    (-2019, "request", False),
    (-2025, "request", False),
    (-2026, "request", False),
    (-2027, "request", False),
    (-2502, "request", False),
    (-3003, "request", False),
    (-3004, "request", False),
    (-3005, "request", False),
    (-3010, "recipient", False),
    (-4000, "request", False),
    (-5000, "recipient", False),
    (-9996, "request", False),
    (-9999, "request", True),
    (-123456, "request", False),  # unknown: stop, never success
]


@pytest.mark.parametrize(("code", "scope", "retryable"), API_ROWS)
def test_api_codes(code, scope, retryable) -> None:
    entry = codes.api_code(code)
    assert (entry.scope, entry.retryable) == (scope, retryable)


def _reference_text() -> str:
    if not ALIMTALK_MD.is_file():
        pytest.skip(f"reference file absent: {ALIMTALK_MD}")
    return ALIMTALK_MD.read_text(encoding="utf-8")


def test_every_delivery_code_in_reference_is_tabled() -> None:
    text = _reference_text()
    section = text.split("### Delivery result codes", 1)[1].split("###", 1)[0]
    found: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| code") or line.startswith("|---"):
            continue
        first = line.split("|")[1]
        for lo, hi in re.findall(r"(\d{4})-(\d{4})", first):
            found.update(str(c) for c in range(int(lo), int(hi) + 1))
        found.update(re.findall(r"\b\d{4}\b", first))
    assert len(found) > 60
    unknown = sorted(c for c in found if codes.delivery_category(c) == "unknown")
    assert unknown == []
    tested = {row[1] for row in CLASSIFY_ROWS} | set(PERMANENT) | set(FALLBACK_LIKE)
    explicit = {c for c in found if not (3025 <= int(c) <= 3058 or 1001 <= int(c) <= 1030)}
    assert explicit <= tested


def test_every_api_code_in_reference_is_tabled() -> None:
    text = _reference_text()
    section = text.split("### API result codes", 1)[1].split("NHN publishes", 1)[0]
    found: set[int] = set()
    for lo, hi in re.findall(r"(-\d{4})\.\.(-\d{4})", section):
        a, b = sorted((int(lo), int(hi)))
        found.update(range(a, b + 1))
    found.update(int(c) for c in re.findall(r"(?<![\d.,-])(-?\d{1,4})(?=[ /])", section))
    assert {0, 4, -1005, -2000, -2003, -2005, -2025, -2026, -2027, -5000, -9999} <= found
    missing = sorted(c for c in found if c not in codes.API_CODES)
    assert missing == []
    assert found <= {row[0] for row in API_ROWS}
