from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscribers.preferences import (
    KST,
    Action,
    PreferenceError,
    Preferences,
    decide,
    parse_categories,
    parse_quiet_hours,
    quiet_end,
)

NIGHT = Preferences(quiet_start_min=22 * 60, quiet_end_min=6 * 60)  # 22:00-06:00 KST


def kst(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2025, 7, day, hour, minute, tzinfo=KST)


@pytest.mark.parametrize(
    ("at", "severity", "urgency", "action", "until"),
    [
        (kst(23), "Severe", "Expected", Action.HOLD, kst(6, day=11)),
        (kst(2, 30), "Moderate", "Future", Action.HOLD, kst(6)),  # after midnight: same day's 06:00
        (kst(5, 59), "Minor", "Expected", Action.HOLD, kst(6)),
        (kst(6), "Severe", "Expected", Action.SEND, None),  # the end is exclusive
        (kst(21, 59), "Severe", "Expected", Action.SEND, None),
        (kst(22), "Severe", "Expected", Action.HOLD, kst(6, day=11)),  # the start is inclusive
        (kst(23), "Extreme", "Expected", Action.SEND, None),  # Extreme overrides quiet hours
        (kst(3), "Moderate", "Immediate", Action.SEND, None),  # Immediate overrides quiet hours
    ],
)
def test_quiet_hours_wrap_midnight_with_override(at: datetime, severity: str, urgency: str, action: Action,
                                                 until: datetime | None) -> None:
    decision = decide(NIGHT, severity=severity, urgency=urgency, categories=["Met"], at=at.astimezone(UTC))
    assert decision.action is action
    if until is None:
        assert decision.until is None
    else:
        assert decision.until == until.astimezone(UTC) and decision.until.tzinfo is not None


def test_daytime_window_does_not_wrap() -> None:
    prefs = Preferences(quiet_start_min=13 * 60, quiet_end_min=14 * 60)
    assert decide(prefs, severity="Minor", urgency="Expected", at=kst(13, 30)).until == kst(14)
    assert decide(prefs, severity="Minor", urgency="Expected", at=kst(2)).action is Action.SEND


@pytest.mark.parametrize(
    ("prefs", "severity", "categories", "action", "reason"),
    [
        (Preferences(status="paused"), "Extreme", ["Met"], Action.SKIP, "paused"),
        (Preferences(status="unsubscribed"), "Extreme", ["Met"], Action.SKIP, "unsubscribed"),
        (Preferences(min_severity="Severe"), "Moderate", ["Met"], Action.SKIP, "below"),
        (Preferences(min_severity="Severe"), "Severe", ["Met"], Action.SEND, ""),
        (Preferences(min_severity="Severe"), "Extreme", ["Met"], Action.SEND, ""),
        (Preferences(categories=("Geo",)), "Severe", ["Met"], Action.SKIP, "categories"),
        (Preferences(categories=("Geo", "Met")), "Severe", ["Met"], Action.SEND, ""),
        (Preferences(categories=("Geo",)), "Severe", [], Action.SEND, ""),  # alert without category
        (Preferences(), "Unknown", [], Action.SEND, ""),
    ],
)
def test_status_severity_and_categories(prefs: Preferences, severity: str, categories: list[str],
                                        action: Action, reason: str) -> None:
    decision = decide(prefs, severity=severity, urgency="Expected", categories=categories, at=kst(12))
    assert decision.action is action
    assert reason in decision.reason


def test_parsers() -> None:
    assert parse_quiet_hours("22:00-06:00") == (1320, 360)
    assert parse_quiet_hours(" 7:05 - 8:00 ") == (425, 480)
    assert parse_quiet_hours("") == (None, None)
    for bad in ("22:00", "22:00-22:00", "24:00-06:00", "10pm-6am"):
        with pytest.raises(PreferenceError, match="quiet_hours"):
            parse_quiet_hours(bad)
    assert parse_categories("met, GEO met") == ["Met", "Geo"]
    with pytest.raises(PreferenceError, match="'Weather'"):
        parse_categories("Weather")


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        decide(NIGHT, severity="Minor", urgency="Expected", at=datetime(2025, 1, 1, 23) + timedelta(0))


@given(
    start=st.integers(0, 1439),
    end=st.integers(0, 1439),
    at=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
)
def test_quiet_end_is_the_next_end_of_the_window(start: int, end: int, at: datetime) -> None:
    result = quiet_end(start, end, at)
    local = at.astimezone(KST)
    minute = local.hour * 60 + local.minute
    inside = start != end and (start <= minute < end if start < end else (minute >= start or minute < end))
    assert (result is not None) == inside
    if result is not None:
        assert at < result <= at + timedelta(hours=24)
        end_local = result.astimezone(KST)
        assert end_local.hour * 60 + end_local.minute == end and end_local.second == 0
