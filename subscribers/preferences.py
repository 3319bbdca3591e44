"""Per-person rules applied after zone matching: status, minimum severity, categories, quiet hours.

Quiet hours never drop a warning, they delay it: the decision is HOLD with the instant the quiet period
ends (UTC), so the outbox can queue the message with a not-before time and still suppress it if the
alert is cancelled or expires first. Two kinds of alert ignore quiet hours entirely, because waking
someone is the point: severity Extreme, or urgency Immediate (act now). SKIP is for rules the person
chose (paused, below their minimum severity, a category they did not want) and carries the reason for
the audit trail.

Quiet hours are wall-clock KST (Korea has no daylight saving), stored as minutes after midnight; a
window whose start is after its end wraps midnight (22:00-06:00).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from feeds.model import CATEGORIES, SEVERITY_RANK

KST = timezone(timedelta(hours=9), "KST")
#: Korean, English, and the languages of foreign crews on Korean vessels (Vietnamese, Indonesian, Chinese,
#: Filipino, Myanmar, Thai, Sinhala, Khmer, Nepali, Uzbek, Russian). A language without an approved template
#: in the config is sent the Korean one.
LANGUAGES = ("ko", "en", "vi", "id", "zh", "tl", "my", "th", "si", "km", "ne", "uz", "ru")
_HHMM = re.compile(r"(\d{1,2}):(\d{2})")


class PreferenceError(ValueError):
    """A bad preference value; the message names it."""


class Action(enum.StrEnum):
    SEND = "send"
    HOLD = "hold"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: For HOLD: the UTC instant the quiet hours end, when the message may go.
    until: datetime | None = None
    #: For SKIP (and HOLD): why, in a few words for the log.
    reason: str = ""


SEND = Decision(Action.SEND)


def hold_until(until: datetime) -> Decision:
    return Decision(Action.HOLD, until=until, reason="quiet hours")


def skip(reason: str) -> Decision:
    return Decision(Action.SKIP, reason=reason)


@dataclass(frozen=True, slots=True)
class Preferences:
    """The columns of ``Subscriber`` the rules read (a row or a plain tuple from a bulk query)."""

    status: str = "active"
    min_severity: str = "Unknown"
    categories: tuple[str, ...] = ()
    quiet_start_min: int | None = None
    hazards: tuple[str, ...] = ()
    quiet_end_min: int | None = None


def decide(
    prefs: Preferences,
    *,
    severity: str,
    urgency: str,
    categories: Iterable[str] = (),
    hazards: Iterable[str] = (),
    at: datetime,
) -> Decision:
    """The topic filters (categories, hazards) let a person pick what they hear about, but an Extreme
    warning in their area reaches them whatever they picked."""
    if prefs.status != "active":
        return skip(prefs.status)
    if SEVERITY_RANK.get(severity, 0) < SEVERITY_RANK.get(prefs.min_severity, 0):
        return skip(f"severity {severity} below {prefs.min_severity}")
    extreme = severity == "Extreme"
    alert_categories = set(categories)
    if (prefs.categories and alert_categories and not extreme
            and not alert_categories.intersection(prefs.categories)):
        return skip(f"categories {','.join(sorted(alert_categories))} not wanted")
    alert_hazards = {h.casefold() for h in hazards}
    if (prefs.hazards and alert_hazards and not extreme
            and not alert_hazards.intersection(h.casefold() for h in prefs.hazards)):
        return skip(f"hazard {','.join(sorted(alert_hazards))} not wanted")
    if severity == "Extreme" or urgency == "Immediate":
        return SEND
    end = quiet_end(prefs.quiet_start_min, prefs.quiet_end_min, at)
    return hold_until(end) if end is not None else SEND


def quiet_end(start_min: int | None, end_min: int | None, at: datetime) -> datetime | None:
    """If ``at`` falls in the quiet window, the UTC instant it ends; otherwise None."""
    if start_min is None or end_min is None or start_min == end_min:
        return None
    if at.tzinfo is None:
        raise ValueError("naive datetime given to quiet_end")
    local = at.astimezone(KST)
    minute = local.hour * 60 + local.minute
    # A window whose start is after its end wraps midnight (22:00-06:00).
    wraps = start_min > end_min
    inside = (minute >= start_min or minute < end_min) if wraps else (start_min <= minute < end_min)
    if not inside:
        return None
    end = local.replace(hour=end_min // 60, minute=end_min % 60, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(UTC)


# -- parsing and validation of preference values (CLI, CSV import, store) -----------------------------


def parse_quiet_hours(text: str | None) -> tuple[int | None, int | None]:
    """"22:00-06:00" -> (1320, 360); empty -> (None, None)."""
    if text is None or not text.strip():
        return None, None
    parts = text.strip().split("-")
    if len(parts) != 2:
        raise PreferenceError(f"quiet_hours {text!r}: expected HH:MM-HH:MM")
    start, end = (_minutes(p.strip(), text) for p in parts)
    if start == end:
        raise PreferenceError(f"quiet_hours {text!r}: start and end are the same")
    return start, end


def _minutes(part: str, whole: str) -> int:
    match = _HHMM.fullmatch(part)
    if not match:
        raise PreferenceError(f"quiet_hours {whole!r}: expected HH:MM-HH:MM")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 23 or minutes > 59:
        raise PreferenceError(f"quiet_hours {whole!r}: {part} is not a time of day")
    return hours * 60 + minutes


def format_quiet_hours(start_min: int | None, end_min: int | None) -> str:
    if start_min is None or end_min is None:
        return ""
    return f"{start_min // 60:02d}:{start_min % 60:02d}-{end_min // 60:02d}:{end_min % 60:02d}"


def check_severity(value: str | None) -> str:
    if value is None or value == "":
        return "Unknown"
    for known in SEVERITY_RANK:
        if value.strip().lower() == known.lower():
            return known
    raise PreferenceError(f"min_severity {value!r}: must be one of {', '.join(SEVERITY_RANK)}")


def check_language(value: str | None) -> str:
    if value is None or value == "":
        return "ko"
    if value.strip().lower() not in LANGUAGES:
        raise PreferenceError(f"language {value!r}: must be one of {', '.join(LANGUAGES)}")
    return value.strip().lower()


def parse_hazards(value: str | Iterable[str] | None) -> list[str]:
    """Space- or comma-separated hazard words (풍랑 태풍, or a feed's event name); empty means all.

    Free words, not a closed list: each source names its hazards differently."""
    if value is None:
        return []
    items = value.replace(",", " ").split() if isinstance(value, str) else [str(v) for v in value]
    out: list[str] = []
    for item in items:
        word = item.strip()
        if len(word) > 40:
            raise PreferenceError(f"hazard {word[:40]!r}…: at most 40 characters")
        if word and word not in out:
            out.append(word)
    return out


def parse_categories(value: str | Iterable[str] | None) -> list[str]:
    """Space- or comma-separated CAP categories (case-insensitive); empty means all."""
    if value is None:
        return []
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    out: list[str] = []
    lookup = {c.lower(): c for c in CATEGORIES}
    for item in items:
        known = lookup.get(item.strip().lower())
        if known is None:
            raise PreferenceError(f"category {item!r}: must be one of {', '.join(CATEGORIES)}")
        if known not in out:
            out.append(known)
    return out
