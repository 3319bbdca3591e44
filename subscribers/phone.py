"""Korean mobile numbers: one canonical form ("01012345678") and a masked form for every log line.

The canonical form is the national digits NHN's ``recipientNo`` expects, and the unique key of a
subscriber: "010-1234-5678" and "+82 10 1234 5678" must be the same person. Validity comes from the
``phonenumbers`` metadata (so 070 VoIP, 050 personal and landlines are refused: AlimTalk and SMS
fallback need a mobile). Two local policies on top of it:

- an 010 number has 8 subscriber digits (every 010 number since 2004); phonenumbers also accepts the
  10-digit shape, which in a subscriber list is a typo, so it is refused here;
- a number that lost its leading zero ("1012345678", what spreadsheets do to digit columns) is accepted.

A fast path checks the common shapes against the same metadata regex, because a 1,000,000-row import
cannot afford the ~25 µs ``phonenumbers.parse`` per row; anything unusual falls through to the library.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

_SEPARATORS = re.compile(r"[\s\-.()/]+")
_DIGITS = re.compile(r"\d")
#: The shapes the fast path handles; anything else goes through phonenumbers.parse.
_FAST = re.compile(r"(?:\+?82|0)?(1[016789]\d{7,8})")


class PhoneError(ValueError):
    """Not a usable Korean mobile number; the message names the (masked) input."""


@lru_cache(maxsize=1)
def _mobile_pattern() -> re.Pattern[str]:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("KR")
    assert metadata is not None and metadata.mobile is not None
    return re.compile(metadata.mobile.national_number_pattern)


def normalize(raw: str) -> str:
    """Return the national digits form ("01012345678") or raise PhoneError."""
    if not isinstance(raw, str) or not raw.strip():
        raise PhoneError("phone: empty")
    if len(raw) == 11 and raw.startswith("01") and raw[2] in "016789" and raw.isascii() and raw.isdigit() \
            and _mobile_pattern().fullmatch(raw, 1):
        return raw  # the commonest cell of a file, "01012345678": what the fast path below would return
    cleaned = _SEPARATORS.sub("", raw.strip())
    fast = _FAST.fullmatch(cleaned)
    if fast is not None and _mobile_pattern().fullmatch(fast.group(1)):
        nsn = fast.group(1)
    else:
        nsn = _parse_with_library(raw, cleaned)
    if nsn.startswith("10") and len(nsn) != 10:
        raise PhoneError(f"phone {mask_as_typed(raw)!r}: an 010 number has 11 digits")
    return "0" + nsn


def _parse_with_library(raw: str, cleaned: str) -> str:
    try:
        number = phonenumbers.parse(cleaned, "KR")
    except NumberParseException:
        raise PhoneError(f"phone {mask_as_typed(raw)!r}: not a phone number") from None
    if number.country_code != 82:
        raise PhoneError(f"phone {mask_as_typed(raw)!r}: not a Korean number (+{number.country_code})")
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(f"phone {mask_as_typed(raw)!r}: not a valid Korean number (wrong length or unassigned)")
    if phonenumbers.number_type(number) != PhoneNumberType.MOBILE:
        raise PhoneError(f"phone {mask_as_typed(raw)!r}: not a mobile number (AlimTalk and SMS need a mobile)")
    return phonenumbers.national_significant_number(number)


def is_valid(raw: str) -> bool:
    try:
        normalize(raw)
    except PhoneError:
        return False
    return True


def mask(phone: str) -> str:
    """"010-****-5678": enough to tell people apart in a log, not enough to call them.

    Works on raw input too (error messages mask what the operator typed).
    """
    digits = "".join(_DIGITS.findall(phone or ""))
    if len(digits) >= 8:
        return f"{digits[:3]}-****-{digits[-4:]}"
    if len(digits) >= 4:
        return "*" * (len(digits) - 2) + digits[-2:]
    return "*" * len(digits) if digits else (phone or "")[:1] + "…"


def mask_as_typed(raw: str) -> str:
    """Mask what the operator typed in its own shape: "02-123-4567" -> "02-1**-4567".

    Why: ``mask`` rebuilds an 010-style number from the digits, so a rejected landline came back as
    "021-****-4567", a number nobody typed. Here separators stay where they were; every digit but the
    first three and the last four is hidden (numbers too short for that show only their last two).
    """
    text = raw or ""
    positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    if len(positions) >= 8:
        hidden = set(positions[3:-4])
    elif len(positions) >= 4:
        hidden = set(positions[:-2])
    else:
        hidden = set(positions)
    return "".join("*" if i in hidden else ch for i, ch in enumerate(text))


def mask_distinct(phone: str) -> str:
    """"010-3***-0001": the list's mask, which tells 010-3000-0001 from 010-4000-0001.

    One more digit than ``mask`` (the first of the middle block) leaves 1,000 numbers per mask, still not
    enough to call someone; people the mask cannot tell apart are told apart by their id.
    """
    digits = "".join(_DIGITS.findall(phone or ""))
    if len(digits) == 11:
        return f"{digits[:3]}-{digits[3]}***-{digits[-4:]}"
    if len(digits) == 10:
        return f"{digits[:3]}-{digits[3]}**-{digits[-4:]}"
    return mask(phone)
