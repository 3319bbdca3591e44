"""The reminder loop with a controllable clock: reminded once, twice, never a third time; never after an
acknowledgement, a 해제 or the end of the warning; never in quiet hours for a warning on land.

The real pipeline sends the warning (dry-run provider); ``send_due_reminders`` is called with the test's
clock, and the dispatcher that sends the reminders runs on the same clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import cap_xml
from public_testkit import deliveries, links_in, make_pipeline, publish
from sqlmodel import select

from alerts.db import session_scope
from alerts.models import CostEntry, Delivery
from alerts.pipeline import Pipeline
from alerts.public.acks import acknowledge_link
from alerts.public.reminders import ReminderReport, send_due_reminders
from subscribers.preferences import KST, format_quiet_hours
from subscribers.store import add_subscriber

NOW = datetime.now(UTC).replace(microsecond=0)
MIN = timedelta(minutes=1)


@dataclass
class Clock:
    t: datetime

    def __call__(self) -> datetime:
        return self.t


def start(db_url: str, tmp_path: Path, *, zones: list[str] | None = None, severity: str = "Severe",
          event: str = "풍랑경보", expires: timedelta = timedelta(hours=12), extra: str = "",
          quiet: dict[str, str] | None = None) -> tuple[Pipeline, Clock, dict[str, int]]:
    pipeline = make_pipeline(db_url, tmp_path, extra=extra)
    clock = Clock(NOW)
    pipeline.dispatcher.clock = clock
    codes = zones or ["S1251100"]
    ids: dict[str, int] = {}
    with session_scope(pipeline.engine) as s:
        for name, phone in (("A", "010-4000-0001"), ("B", "010-4000-0002")):
            person = add_subscriber(s, phone, codes, quiet_hours=(quiet or {}).get(name))
            ids[name] = person.id  # type: ignore[assignment]
    publish(tmp_path, cap_xml("R1", sent=NOW, zones=codes, severity=severity, event=event, expires=NOW + expires))
    pipeline.run_once()
    assert {d.status for d in deliveries(pipeline)} == {"delivered"}
    return pipeline, clock, ids


def remind(pipeline: Pipeline, clock: Clock, at: datetime, *, send: bool = True) -> ReminderReport:
    clock.t = at
    with session_scope(pipeline.engine) as s:
        report = send_due_reminders(s, pipeline.config, at)
    if send:
        pipeline.dispatch()
        pipeline.collect()
    return report


def reminders(pipeline: Pipeline) -> list[Delivery]:
    return [d for d in deliveries(pipeline) if d.kind == "reminder"]


def test_reminded_once_then_twice_then_never_again(db_url: str, tmp_path: Path) -> None:
    pipeline, clock, ids = start(db_url, tmp_path)
    assert remind(pipeline, clock, NOW + 29 * MIN).queued == 0  # not yet: delay_minutes = 30
    assert remind(pipeline, clock, NOW + 31 * MIN).queued == 2
    first = reminders(pipeline)
    assert [(d.reminder_seq, d.status) for d in first] == [(1, "delivered"), (1, "delivered")]
    assert all(d.template_code == "ALIMCAST_REMIND_01" and "[재알림] 풍랑 경보" in d.text for d in first)
    assert all(set(links_in(d.text)) == {"a"} for d in first)  # a fresh confirmation link
    assert remind(pipeline, clock, NOW + 90 * MIN).queued == 0  # interval_minutes = 60 since the reminder
    assert remind(pipeline, clock, NOW + 92 * MIN).queued == 2
    assert sorted(d.reminder_seq for d in reminders(pipeline)) == [1, 1, 2, 2]
    assert remind(pipeline, clock, NOW + 5 * 60 * MIN).queued == 0  # max_count = 2
    assert remind(pipeline, clock, NOW + 9 * 60 * MIN).queued == 0
    with session_scope(pipeline.engine) as s:
        costed = set(s.exec(select(CostEntry.delivery_id)).all())
    assert {d.id for d in reminders(pipeline)} <= costed  # costed like any message
    pipeline.close()


def test_not_reminded_after_acknowledging(tmp_path: Path) -> None:
    pipeline, clock, ids = start(f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    by_person = {d.subscriber_id: d for d in deliveries(pipeline)}
    token = links_in(by_person[ids["A"]].text)["a"]
    with session_scope(pipeline.engine) as s:
        assert acknowledge_link(s, token, now=NOW + 10 * MIN).ok
    report = remind(pipeline, clock, NOW + 31 * MIN)
    assert report.queued == 1 and report.acknowledged == 1
    assert [d.subscriber_id for d in reminders(pipeline)] == [ids["B"]]
    # B confirms from the reminder's own link: no second reminder
    with session_scope(pipeline.engine) as s:
        assert acknowledge_link(s, links_in(reminders(pipeline)[0].text)["a"], now=NOW + 40 * MIN).ok
    assert remind(pipeline, clock, NOW + 3 * 60 * MIN).queued == 0
    pipeline.close()


def test_confirming_withdraws_a_reminder_still_queued(tmp_path: Path) -> None:
    pipeline, clock, ids = start(f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    assert remind(pipeline, clock, NOW + 31 * MIN, send=False).queued == 2
    token = links_in(next(d for d in deliveries(pipeline) if d.subscriber_id == ids["A"]).text)["a"]
    with session_scope(pipeline.engine) as s:
        assert acknowledge_link(s, token, now=NOW + 32 * MIN).ok
    pipeline.dispatch()
    status = {d.subscriber_id: d.status for d in reminders(pipeline)}
    assert status == {ids["A"]: "suppressed", ids["B"]: "accepted"}
    pipeline.close()


def test_never_after_the_warning_was_lifted_or_ended(tmp_path: Path) -> None:
    pipeline, clock, ids = start(f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    assert remind(pipeline, clock, NOW + 31 * MIN, send=False).queued == 2  # queued, then the 해제 comes
    publish(tmp_path, cap_xml("R1C", sent=NOW + 32 * MIN, zones=["S1251100"], severity="Severe", event="풍랑경보",
                              msg_type="Cancel", references=[("R1", NOW)]))
    clock.t = NOW + 33 * MIN
    pipeline.run_once()
    assert {d.status for d in reminders(pipeline)} == {"suppressed"}  # a queued reminder never follows a 해제
    assert remind(pipeline, clock, NOW + 3 * 60 * MIN).queued == 0
    assert [d.kind for d in deliveries(pipeline) if d.status == "delivered"] == ["alert", "alert", "cancel", "cancel"]
    pipeline.close()


def test_never_after_the_warning_expired(tmp_path: Path) -> None:
    pipeline, clock, _ = start(f"sqlite:///{tmp_path / 'r.db'}", tmp_path, expires=timedelta(minutes=45))
    assert remind(pipeline, clock, NOW + 31 * MIN).queued == 2
    assert remind(pipeline, clock, NOW + 95 * MIN).queued == 0  # a second one would be due, but it ended
    pipeline.close()


def _quiet_around(at: datetime) -> str:
    local = at.astimezone(KST)
    minute = local.hour * 60 + local.minute
    return format_quiet_hours((minute - 10) % 1440, (minute + 60) % 1440)


@pytest.mark.parametrize("zone, held", [("L1100100", True), ("S1251100", False)])
def test_quiet_hours_hold_reminders_of_land_warnings_only(tmp_path: Path, zone: str, held: bool) -> None:
    # Extreme: the warning itself ignores quiet hours; the reminder does not wake anyone on land
    pipeline, clock, ids = start(f"sqlite:///{tmp_path / 'r.db'}", tmp_path, zones=[zone], severity="Extreme",
                                 event="태풍경보", quiet={"A": _quiet_around(NOW + 31 * MIN)})
    report = remind(pipeline, clock, NOW + 31 * MIN)
    reminded = {d.subscriber_id for d in reminders(pipeline)}
    if held:
        assert report.held == 1 and reminded == {ids["B"]}
        later = remind(pipeline, clock, NOW + 95 * MIN)  # quiet hours over: A's first, B's second
        assert later.queued == 2
        assert sorted((d.subscriber_id, d.reminder_seq) for d in reminders(pipeline)) == [
            (ids["A"], 1), (ids["B"], 1), (ids["B"], 2)]
    else:
        assert report.held == 0 and reminded == {ids["A"], ids["B"]}
    pipeline.close()


def test_moderate_warnings_are_not_reminded_and_disabled_means_never(tmp_path: Path) -> None:
    pipeline, clock, _ = start(f"sqlite:///{tmp_path / 'r.db'}", tmp_path, severity="Moderate",
                               event="풍랑주의보")
    assert remind(pipeline, clock, NOW + 31 * MIN).queued == 0
    assert reminders(pipeline) == []
    pipeline.close()
    other = tmp_path / "off"
    other.mkdir()
    pipeline, clock, _ = start(f"sqlite:///{other / 'r.db'}", other, extra="")
    pipeline.config.raw["reminders"]["enabled"] = False
    report = remind(pipeline, clock, NOW + 31 * MIN)
    assert report.queued == 0 and report.disabled == "[reminders] enabled is false"
    pipeline.close()


def test_the_running_jobs_reminder_step_queues_and_sends(tmp_path: Path) -> None:
    """reminder_job is what `alimcast run` schedules every [reminders] check_seconds (real clock here: the
    warning's send time is moved back instead)."""
    from sqlalchemy import update

    from alerts.public.reminders import reminder_interval, reminder_job

    pipeline = make_pipeline(f"sqlite:///{tmp_path / 'j.db'}", tmp_path)
    with session_scope(pipeline.engine) as s:
        add_subscriber(s, "010-4000-0009", ["S1251100"])
    real_now = datetime.now(UTC)
    publish(tmp_path, cap_xml("J1", sent=real_now, zones=["S1251100"], severity="Severe", event="풍랑경보",
                              expires=real_now + timedelta(hours=6)))
    pipeline.run_once()
    job = reminder_job(pipeline)
    job()
    assert reminders(pipeline) == []  # not due yet
    with session_scope(pipeline.engine) as s:
        s.execute(update(Delivery).values(sent_at=real_now - 31 * MIN))
    job()
    assert [(d.reminder_seq, d.status) for d in reminders(pipeline)] == [(1, "accepted")]  # queued and sent
    assert reminder_interval(pipeline.config) == 60.0
    pipeline.close()
