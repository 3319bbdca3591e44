from __future__ import annotations

import pytest

from subscribers.phone import PhoneError, is_valid, mask, normalize

VALID = [
    ("010-1234-5678", "01012345678"),
    ("01012345678", "01012345678"),
    ("+82 10-1234-5678", "01012345678"),
    ("+821012345678", "01012345678"),
    ("+82 010-1234-5678", "01012345678"),
    ("82-10-1234-5678", "01012345678"),
    ("010 1234 5678", "01012345678"),
    ("010.1234.5678", "01012345678"),
    (" (010) 1234-5678 ", "01012345678"),
    ("1012345678", "01012345678"),  # leading zero lost by a spreadsheet
    ("011-123-4567", "0111234567"),  # legacy 01X, 10 digits
    ("016-1234-5678", "01612345678"),
]

INVALID = [
    ("02-123-4567", "not a mobile"),  # Seoul landline
    ("031-123-4567", "not a mobile"),
    ("070-1234-5678", "not a mobile"),  # VoIP
    ("010-123-4567", "11 digits"),  # 010 with a 3-digit middle part
    ("010-1234-567", "phone"),  # too short
    ("010-1234-56789", "phone"),  # too long
    ("+1 212 555 0100", "not a Korean number"),
    ("hello", "not a phone number"),
    ("", "empty"),
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid_forms_normalise_to_national_digits(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
    assert is_valid(raw)


@pytest.mark.parametrize(("raw", "why"), INVALID)
def test_invalid_forms_raise_one_line_masked(raw: str, why: str) -> None:
    with pytest.raises(PhoneError) as info:
        normalize(raw)
    message = str(info.value)
    assert why in message
    assert "\n" not in message
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) >= 8:
        assert digits not in message.replace("-", "")  # the full number never appears


@pytest.mark.parametrize(
    ("phone", "masked"),
    [("01012345678", "010-****-5678"), ("010-9876-5432", "010-****-5432"), ("0111234567", "011-****-4567")],
)
def test_mask(phone: str, masked: str) -> None:
    assert mask(phone) == masked


def test_fast_path_agrees_with_phonenumbers() -> None:
    """The regex fast path must not accept anything the library path would refuse (and vice versa)."""
    import random

    import phonenumbers

    rng = random.Random(7)
    for _ in range(3000):
        prefix = rng.choice(["010", "011", "016", "019", "012", "013", "015"])
        raw = prefix + "".join(rng.choice("0123456789") for _ in range(rng.choice([6, 7, 8, 9])))
        number = phonenumbers.parse(raw, "KR")
        library_ok = (
            phonenumbers.is_valid_number(number)
            and phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
            and not (raw.startswith("010") and len(raw) != 11)
        )
        assert is_valid(raw) == library_ok, raw
