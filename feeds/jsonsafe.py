"""Loading untrusted JSON (and JSON-ish) feed bodies so that only :class:`ParseError` can come out.

Every JSON source parser starts here, so the hostile cases are handled once: an HTML error page served
instead of JSON (a moved URL, a captive portal, a gateway error), oversize bodies, nesting deep enough to
blow the stack, non-standard ``NaN`` constants, undecodable bytes. The small typed accessors below exist
because real feeds mix numbers and strings for the same field (KMA ``tmFc`` is a number, ``stnId`` a
string) and a parser that trusts the type raises ``TypeError`` on the first surprise.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from feeds.base import ParseError

#: Largest body a parser accepts. Real feeds are far smaller (NGA's full list is ~1 MB); a bigger body is
#: an error page loop, a wrong URL or an attack, and parsing it would only cost memory.
MAX_BYTES = 20 * 1024 * 1024

_HTML_HEAD = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)


def where(origin: str) -> str:
    """Prefix for one-line messages: the input's name when we know it."""
    return f"{origin}: " if origin else ""


def looks_like_html(data: bytes) -> bool:
    head = data[:2048].lstrip(b"\xef\xbb\xbf")
    return bool(_HTML_HEAD.match(head))


def check_body(data: bytes, *, origin: str, what: str, max_bytes: int = MAX_BYTES) -> bytes:
    """Refuse empty, oversize and HTML bodies with the reason an operator can act on."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError(f"{where(origin)}{what}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.strip():
        raise ParseError(f"{where(origin)}{what}: empty document")
    if len(data) > max_bytes:
        raise ParseError(f"{where(origin)}{what}: document of {len(data)} bytes exceeds the "
                         f"{max_bytes}-byte cap")
    if looks_like_html(data):
        raise ParseError(f"{where(origin)}{what}: got an HTML page, not the expected feed "
                         f"(wrong URL or error page?)")
    return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def load_json(data: bytes, *, origin: str, what: str, max_bytes: int = MAX_BYTES) -> Any:
    """Parse a JSON body; every failure becomes a one-line :class:`ParseError` naming the input."""
    data = check_body(data, origin=origin, what=what, max_bytes=max_bytes)
    try:
        return json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise ParseError(f"{where(origin)}{what}: JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ParseError(f"{where(origin)}{what}: not valid UTF-8/16/32 JSON ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ParseError(f"{where(origin)}{what}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                         f"{exc.msg}") from None
    except ValueError as exc:  # oversize integers, NaN/Infinity
        raise ParseError(f"{where(origin)}{what}: invalid JSON: {str(exc).splitlines()[0]}") from None


# --- typed accessors ---------------------------------------------------------------------------------

class FieldError(ValueError):
    """A single entry's field is missing or malformed; the caller reports the entry and goes on."""


def as_list(value: Any) -> list[Any]:
    """``None`` -> [], one object -> [object] (KMA's ``items.item``), list -> list."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]


def as_dict(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FieldError(f"{name} is {type(value).__name__}, expected an object")
    return value


def text(value: Any) -> str | None:
    """A scalar as stripped text: numbers become their decimal form, bools/containers are refused."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None


def required_text(obj: dict[str, Any], key: str) -> str:
    value = text(obj.get(key))
    if value is None:
        raise FieldError(f"missing {key}")
    return value


def number(value: Any) -> float | None:
    """A finite float from a number or numeric string, else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def iso_time(value: Any, name: str) -> datetime:
    """An ISO 8601 time with an offset (``Z`` accepted); a naive time is refused, not guessed."""
    raw = text(value)
    if raw is None:
        raise FieldError(f"missing {name}")
    try:
        parsed = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise FieldError(f"{name} {raw!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise FieldError(f"{name} {raw!r} has no UTC offset")
    return parsed


def optional_iso_time(value: Any, name: str, warnings: list[str]) -> datetime | None:
    """Like :func:`iso_time` for optional fields: a bad value is a warning and ``None``."""
    if text(value) is None:
        return None
    try:
        return iso_time(value, name)
    except FieldError as exc:
        warnings.append(f"{exc}; ignored")
        return None


def epoch_ms(value: Any, name: str) -> datetime:
    """Epoch milliseconds (USGS) as an aware UTC datetime."""
    num = number(value)
    if num is None:
        raise FieldError(f"missing or non-numeric {name}")
    if abs(num) > 1e14:
        raise FieldError(f"{name} {num!r} is out of range for epoch milliseconds")
    try:
        return datetime.fromtimestamp(num / 1000.0, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise FieldError(f"{name} {num!r} is out of range for epoch milliseconds") from None


def clean_id(value: str) -> str:
    """CAP forbids spaces, commas, ``<`` and ``&`` in identifiers and senders; replace rather than drop."""
    return re.sub(r"[\s,<&]+", "_", value.strip())
