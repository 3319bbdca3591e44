"""Reminders: people who have not confirmed a Severe or Extreme warning are told again.

``send_due_reminders(session, config, now)`` queues them as ordinary outbox rows (kind ``reminder``,
``reminder_seq`` 1, 2, …), so the dispatcher sends, retries, suppresses and costs them like any message.
The clock is a parameter: the job passes the time, tests move it.

A reminder is due for a person when, for a live warning (thread active, current version not a 해제 and
not expired, severity Severe or Extreme):

* they were told (a warning row, not a reminder, that reached ``accepted`` or beyond), and nothing for this
  warning is still on its way to them (queued or sending);
* they have not confirmed it;
* ``[reminders] delay_minutes`` passed since the warning reached them (``interval_minutes`` since the
  previous reminder), and they had fewer than ``max_count`` reminders (suppressed ones do not count);
* they are active (not paused or unsubscribed), and, for a warning on land, it is not their quiet hours
  (the reminder waits until they end; a sea warning is never held, as with the warning itself).

Several workers may run it at once: a reminder's identity is (alert, person, reminder_seq), so the second
worker's insert is nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from alerts.config import Config
from alerts.delivery.sms import fallback_kind
from alerts.fanout import priority_of
from alerts.message_bodies import attach_bodies
from alerts.models import AlertRecord, AlertThread, Delivery
from alerts.public.links import ACK_SEVERITIES, add_personal_links
from alerts.public.models import Acknowledgement
from alerts.public.settings import PublicSettings, public_settings
from alerts.render import parameters_for, render
from alerts.sqlutil import insert_ignore
from feeds.model import Alert
from subscribers.models import Subscriber
from subscribers.preferences import quiet_end
from subscribers.sqltypes import utcnow

if TYPE_CHECKING:
    from alerts.pipeline import Pipeline

log = logging.getLogger("alimcast.reminders")

SENT_STATUSES = ("accepted", "delivered", "fallback_sent", "uncertain")
ON_THE_WAY = ("queued", "sending")


@dataclass(slots=True)
class ReminderReport:
    warnings: int = 0
    queued: int = 0
    #: Not now: quiet hours on land.
    held: int = 0
    acknowledged: int = 0
    #: Why nothing could be done at all (disabled, no template).
    disabled: str | None = None
    by_seq: dict[int, int] = field(default_factory=dict)


def send_due_reminders(session: Session, config: Config, now: datetime, *,
                       zone_name: Callable[[str], str | None] | None = None,
                       settings: PublicSettings | None = None) -> ReminderReport:
    settings = settings or public_settings(config)
    report = ReminderReport()
    rs = settings.reminders
    if not rs.enabled or rs.max_count == 0:
        report.disabled = "[reminders] enabled is false" if not rs.enabled else "[reminders] max_count is 0"
        return report
    if settings.reminder_template is None:
        report.disabled = "no [templates.reminder]"
        return report
    names = zone_name or _zone_name
    live = session.exec(
        select(AlertThread, AlertRecord).join(AlertRecord, col(AlertRecord.id) == col(AlertThread.current_alert_id))
        .where(AlertThread.state == "active", AlertRecord.msg_type != "Cancel", AlertRecord.status == "Actual",
               col(AlertRecord.severity).in_(ACK_SEVERITIES))
        .order_by(col(AlertThread.id))).all()
    for thread, record in live:
        if record.end_time is not None and record.end_time <= now:
            continue
        report.warnings += 1
        rows = _due_rows(session, config, settings, thread, record, now, names, report)
        if rows:
            attach_bodies(session.connection(), rows)
            report.queued += insert_ignore(session, Delivery, rows,
                                           conflict=("alert_id", "subscriber_id", "reminder_seq"))
    if report.queued:
        log.info("reminders: %d queued for %d live warnings (%d held for quiet hours)", report.queued,
                 report.warnings, report.held)
    return report


def _due_rows(session: Session, config: Config, settings: PublicSettings, thread: AlertThread,
              record: AlertRecord, now: datetime, zone_name: Callable[[str], str | None],
              report: ReminderReport) -> list[dict[str, Any]]:
    rs = settings.reminders
    is_reminder = col(Delivery.reminder_seq) > 0
    told = func.sum(case((~is_reminder & col(Delivery.status).in_(SENT_STATUSES) & (Delivery.kind != "cancel"), 1),
                         else_=0))
    reminders = func.sum(case((is_reminder & (Delivery.status != "suppressed"), 1), else_=0))
    pending = func.sum(case((col(Delivery.status).in_(ON_THE_WAY), 1), else_=0))
    last = func.max(case((col(Delivery.status).in_(SENT_STATUSES),
                          func.coalesce(col(Delivery.sent_at), col(Delivery.created_at))), else_=None))
    stats = session.exec(
        select(Delivery.subscriber_id, told, reminders, pending, last, func.max(Delivery.reminder_seq))
        .where(Delivery.thread_id == thread.id).group_by(col(Delivery.subscriber_id))).all()
    acked = set(session.exec(select(Acknowledgement.subscriber_id)
                             .where(Acknowledgement.thread_id == thread.id)).all())
    due: dict[int, int] = {}
    for sid, n_told, n_rem, n_pending, last_sent, max_seq in stats:
        if not n_told or n_pending or last_sent is None:
            continue
        if sid in acked:
            report.acknowledged += 1
            continue
        if n_rem >= rs.max_count:
            continue
        wait = rs.delay if n_rem == 0 else rs.interval
        if _aware(last_sent) + wait > now:
            continue
        due[sid] = int(max_seq or 0) + 1
    if not due:
        return []
    alert = Alert.from_json(record.body)
    land = not _at_sea(alert, config)
    people = _people(session, list(due))
    template = settings.reminder_template
    assert template is not None
    rendered: dict[str, tuple[dict[str, str], str]] = {}
    rows: list[dict[str, Any]] = []
    for sid, seq in sorted(due.items()):
        person = people.get(sid)
        if person is None:
            continue  # paused or unsubscribed since
        language, q_start, q_end = person
        if land and quiet_end(q_start, q_end, now) is not None:
            report.held += 1
            continue
        if language not in rendered:
            params = parameters_for(alert, "alert", language, config.zone_value_names, zone_name, config.sender_name)
            out = render(template.text, params)
            rendered[language] = (out.parameters, out.text)
        params, text = rendered[language]
        rows.append({
            "alert_id": record.id, "thread_id": thread.id, "subscriber_id": sid, "kind": "reminder",
            "reminder_seq": seq, "priority": priority_of(alert) - 1, "status": "queued",
            "template_code": template.code, "params": dict(params), "text": text,
            "fallback_kind": fallback_kind(text), "attempts": 0, "created_at": now,
            "next_attempt_at": None,
        })
        report.by_seq[seq] = report.by_seq.get(seq, 0) + 1
    add_personal_links(session, config, alert, thread.id, rows, now=now, settings=settings)  # type: ignore[arg-type]
    return rows


def _people(session: Session, ids: list[int]) -> dict[int, tuple[str, int | None, int | None]]:
    out: dict[int, tuple[str, int | None, int | None]] = {}
    for start in range(0, len(ids), 500):
        rows = session.exec(select(Subscriber.id, Subscriber.language, Subscriber.quiet_start_min,
                                   Subscriber.quiet_end_min)
                            .where(col(Subscriber.id).in_(ids[start:start + 500]), Subscriber.status == "active"))
        out.update({sid: (lang, qs, qe) for sid, lang, qs, qe in rows if sid is not None})
    return out


def _at_sea(alert: Alert, config: Config) -> bool:
    """A warning for a sea zone or a navigational warning: never held for quiet hours."""
    if any(code.startswith("S") for code in alert.zone_codes(config.zone_value_names)):
        return True
    return any("NGA_NAVAREA" in info.parameters for info in alert.infos)


def _aware(value: datetime) -> datetime:
    from datetime import UTC
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _zone_name(code: str) -> str | None:
    from subscribers import zones
    try:
        return zones.name(code)
    except Exception:  # noqa: BLE001 - unknown code: the area description is used instead
        return None


def reminder_job(pipeline: Pipeline) -> Callable[[], None]:
    """The running job's periodic step: queue what is due, then send it."""

    def run() -> None:
        from alerts.db import session_scope

        with pipeline.lock, session_scope(pipeline.engine) as session:
            report = send_due_reminders(session, pipeline.config, utcnow())
        if report.queued:
            pipeline.dispatch()

    return run


def reminder_interval(config: Config) -> float:
    return public_settings(config).reminders.check_seconds
