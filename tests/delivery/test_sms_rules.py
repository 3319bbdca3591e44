"""EUC-KR (cp949) byte rules for SMS/LMS fallback text."""

from __future__ import annotations

import logging
import unicodedata

import pytest

from alerts.delivery import sms


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("", 0),
        ("abc", 3),
        ("가", 2),
        ("호우경보", 8),
        ("똠방각하", 8),  # outside 2,350 KS X 1001 syllables, inside cp949
        ("서울 12mm", 9),
        ("※★☎", 6),  # symbols cp949 carries
        ("⚠ 대피", 8),  # emoji replaced by "[!]" (3) + space + 대피 (4)
        ("🌊", 0),  # removed
        (unicodedata.normalize("NFD", "한글"), 4),  # decomposed jamo are composed first
    ],
)
def test_euckr_len(text: str, nbytes: int) -> None:
    assert sms.euckr_len(text) == nbytes


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("a" * 90, "SMS"),
        ("a" * 91, "LMS"),
        ("가" * 45, "SMS"),
        ("가" * 46, "LMS"),
        ("가" * 44 + "ab", "SMS"),
        ("가" * 44 + "abc", "LMS"),
        ("가" * 1000, "LMS"),
        ("", "SMS"),
    ],
)
def test_fallback_kind(text: str, kind: str) -> None:
    assert sms.fallback_kind(text) == kind


@pytest.mark.parametrize(
    ("text", "expected", "replaced"),
    [
        ("호우경보 발령", "호우경보 발령", []),
        ("⚠️ 대피하세요", "[!] 대피하세요", ["⚠"]),  # VS16 dropped silently
        ("🚨🚨 긴급", "[!][!] 긴급", ["🚨"]),
        ("해일 🌊 주의", "해일  주의", ["🌊"]),
        ("👨‍👩‍👧 가족", " 가족", ["👨", "👩", "👧"]),  # ZWJ glue dropped, faces removed
        ("10–20mm", "10-20mm", ["–"]),
        ("“대피”", "“대피”", []),  # curly quotes are in cp949
        ("ℌ", "H", ["ℌ"]),  # NFKC fallback
        (unicodedata.normalize("NFD", "경보"), "경보", []),
    ],
)
def test_to_euckr_safe(text: str, expected: str, replaced: list[str]) -> None:
    out, changed = sms.to_euckr_safe(text)
    assert out == expected
    assert changed == replaced
    out.encode("cp949")  # never raises: fallback cannot fail on characters


def test_replacements_all_encode() -> None:
    for src, dst in sms.REPLACEMENTS.items():
        dst.encode("cp949")
        with pytest.raises(UnicodeEncodeError):
            src.encode("cp949")


def test_to_euckr_safe_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="alerts.delivery.sms"):
        sms.to_euckr_safe("🌀 태풍")
    assert "U+1F300" in caplog.text


@pytest.mark.parametrize(
    ("text", "max_bytes", "marker", "expected"),
    [
        ("가나다", 6, "", "가나다"),
        ("가나다", 5, "", "가나"),  # never splits a 2-byte character
        ("가나다라", 6, "…", "가나…"),
        ("abcdef", 4, ".", "abc."),
    ],
)
def test_truncate_euckr(text: str, max_bytes: int, marker: str, expected: str) -> None:
    assert sms.truncate_euckr(text, max_bytes, marker) == expected


@pytest.mark.parametrize("n", [999, 1000, 1001, 1500])
def test_fit_lms(n: int) -> None:
    text = "가" * n
    out = sms.fit_lms(text)
    assert sms.euckr_len(out) <= 2000
    if n <= 1000:
        assert out == text
    else:
        assert out.endswith(sms.TRUNCATION_MARKER)
        assert out.startswith("가" * 990)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("호우경보", "호우경보"),
        ("  호우경보\n발령  ", "호우경보 발령"),
        ("기상청 호우경보 발령 안내 - 서울특별시 강남구 일대", "기상청 호우경보 발령 안내 - 서울특별시…"),
        ("⚠ 대피", "[!] 대피"),
    ],
)
def test_lms_title(title: str, expected: str) -> None:
    out = sms.lms_title(title)
    assert out == expected
    assert sms.euckr_len(out) <= 40


def test_build_fallback() -> None:
    short, changed = sms.build_fallback("⚠ 호우경보", title="제목")
    assert (short.kind, short.content, short.title, changed) == ("SMS", "[!] 호우경보", None, ["⚠"])
    long, _ = sms.build_fallback("가" * 1200, title="호우경보 안내")
    assert long.kind == "LMS" and long.title == "호우경보 안내"
    assert sms.euckr_len(long.content) <= 2000 and long.content.endswith(sms.TRUNCATION_MARKER)
