"""Rendering: Korean first, KST times, the template's own variables only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.render import format_kst, parameters_for, render, split_event, variables
from feeds.model import Alert, Area, Info


@pytest.mark.parametrize(("event", "expected"), [
    ("풍랑주의보", ("풍랑", "주의보")), ("풍랑경보", ("풍랑", "경보")), ("폭염중대경보", ("폭염", "중대경보")),
    ("대설예비특보", ("대설", "예비특보")), ("Tsunami Warning", ("Tsunami Warning", None)), ("경보", ("경보", None)),
])
def test_split_event(event: str, expected: tuple[str, str | None]) -> None:
    assert split_event(event) == expected


def test_kst_formatting() -> None:
    t = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)  # 09:30 KST, a Friday
    assert format_kst(t) == "11월 27일(금) 09:30"
    assert format_kst(t, "en") == "2026-11-27 09:30 KST"
    assert format_kst(None) == "해제 시까지"


def alert() -> Alert:
    ko = Info(event="풍랑주의보", language="ko-KR", severity="Moderate", instruction="대피하십시오",
              effective=datetime(2026, 11, 27, 0, 0, tzinfo=UTC),
              areas=[Area("인천 앞바다", geocodes={"KMA_ZONE": ["S1251100"]}), Area("어딘가", geocodes={"X": ["1"]})])
    en = Info(event="High seas advisory", language="en-US", severity="Moderate", instruction="Seek shelter")
    return Alert(sender="kma", identifier="1", sent=datetime(2026, 11, 27, tzinfo=UTC), infos=[ko, en])


def test_language_choice_and_zone_words() -> None:
    names = {"S1251100": "인천·경기북부앞바다"}.get
    ko = parameters_for(alert(), "alert", "ko", ("KMA_ZONE",), names, "alimcast")
    assert (ko["hazard"], ko["level"], ko["zones"]) == ("풍랑", "주의보", "인천·경기북부앞바다, 어딘가")
    assert ko["effective"] == "11월 27일(금) 09:00" and ko["expires"] == "해제 시까지"
    en = parameters_for(alert(), "alert", "en", ("KMA_ZONE",), names, "alimcast")
    assert en["instruction"] == "Seek shelter" and en["level"] == "Moderate"


def test_render_sends_only_template_variables() -> None:
    out = render("[#{hazard}] #{zones}", {"hazard": "풍랑", "zones": "A", "extra": "x"})
    assert out.parameters == {"hazard": "풍랑", "zones": "A"} and out.text == "[풍랑] A"
    assert variables("#{a} #{b} #{a}") == ["a", "b"]


def test_cancel_without_info_takes_what_it_lifts_from_the_ended_version() -> None:
    names = {"S1251100": "인천·경기북부앞바다"}.get
    lift = Alert(sender="kma", identifier="2", sent=datetime(2026, 11, 27, 12, tzinfo=UTC), msg_type="Cancel")
    params = parameters_for(lift, "cancel", "ko", ("KMA_ZONE",), names, "alimcast", ended=alert())
    assert (params["hazard"], params["level"], params["zones"]) == ("풍랑", "주의보", "인천·경기북부앞바다, 어딘가")
    assert params["sent"] == "11월 27일(금) 21:00" and params["action"] == "해제"
    assert params["instruction"] == ""  # never the ended warning's evacuation order
    assert params["expires"] == params["sent"]
    assert params["sender"] == "alimcast"  # the ended version names none: the configured sender
    named = alert()
    named.infos[0].sender_name = "기상청"
    params = parameters_for(lift, "cancel", "ko", ("KMA_ZONE",), names, "alimcast", ended=named)
    assert params["sender"] == "기상청"  # the sender of the warning it lifts


def test_render_fills_an_empty_variable_with_a_word_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    out = render("[#{hazard} #{level}] 해제\n구역: #{zones}", {"hazard": "", "level": "", "zones": "",
                                                             "headline": "풍랑주의보 해제"}, about="X1")
    assert out.text == "[풍랑주의보 해제 특보] 해제\n구역: 구독하신 구역"
    assert "X1" in caplog.text and "hazard, level, zones" in caplog.text
    en = render("#{zones}: #{instruction}", {}, language="en-US")
    assert en.text == "your subscribed zones: Stay safe."


def test_group_parameters_list_each_warning_and_stay_short() -> None:
    from alerts.render import group_parameters

    one = {"hazard": "풍랑", "level": "주의보", "zones": "A, B", "effective": "t1", "sender": "KMA", "sent": "s1"}
    two = {"hazard": "강풍", "level": "경보", "zones": "B, C", "effective": "t2", "sender": "KMA", "sent": "s2"}
    out = group_parameters([one, two])
    assert out == {"count": "2", "warnings": "- 풍랑 주의보: A, B\n- 강풍 경보: B, C", "zones": "A, B, C",
                   "effective": "t1", "sender": "KMA", "sent": "s2"}
    many = group_parameters([{**one, "zones": "구역" * 40}] * 20)
    assert len(many["warnings"]) <= 600 and many["warnings"].endswith(")") and many["count"] == "20"
