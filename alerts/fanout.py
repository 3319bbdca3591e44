"""Matching and the outbox: turn a stored alert into one queued delivery per person, in one transaction.

The rules that make a warning arrive once, and never after it was lifted:

* only ``status=Actual``, ``scope=Public`` alerts reach people; Test/Exercise/System/Draft are stored
  and visible with the reason they were not sent;
* only the thread's current version is sent; a person who already had a version of the warning gets
  the next one as an ``update`` and a Cancel as a ``cancel`` (해제), and anything still queued for them
  from an older version is suppressed, so nobody holds two live versions;
* a Cancel goes only to people who were told (or may have been told) about the warning;
* ``(alert, subscriber)`` is unique in the outbox, so re-running a fan-out cannot queue twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text, update
from sqlmodel import Session, col, select

from alerts.audience import Audience
from alerts.config import Config
from alerts.delivery.sms import build_fallback
from alerts.leader import MATCH_LOCK_KEY
from alerts.models import NOTIFIED_STATUSES, AlertRecord, AlertThread, Delivery
from alerts.personal_links import add_personal_links
from alerts.render import parameters_for, render
from alerts.sqlutil import insert_ignore
from feeds.model import SEVERITY_RANK, URGENCY_RANK, Alert
from subscribers.geoindex import GeoIndex
from subscribers.models import Subscriber

PUBLIC_MSG_TYPES = ("Alert", "Update", "Cancel")
#: Ids per IN (...) list: SQLite allows 32,766 bound parameters per statement.
ID_CHUNK = 10_000


@dataclass(slots=True)
class FanoutReport:
    alerts: int = 0
    queued: int = 0
    held: int = 0
    suppressed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, other: FanoutReport) -> None:
        self.alerts += other.alerts
        self.queued += other.queued
        self.held += other.held
        self.suppressed += other.suppressed
        self.skipped.update(other.skipped)


@dataclass(slots=True)
class Target:
    subscriber_id: int
    kind: str
    not_before: datetime | None = None


def fan_out_pending(session: Session, config: Config, audience: Audience, *, now: datetime,
                    zone_name: Callable[[str], str | None]) -> FanoutReport:
    """Fan out every alert not yet matched, oldest first (an original before its update).

    On PostgreSQL several workers may call this at once: they take turns (:func:`_take_matching_turn`), so
    the second sees the first one's work committed and never matches an alert twice.
    """
    report = FanoutReport()
    _take_matching_turn(session)
    pending = session.exec(select(AlertRecord).where(col(AlertRecord.matched_at).is_(None))
                           .order_by(col(AlertRecord.sent), col(AlertRecord.id))).all()
    for record in pending:
        report.add(fan_out(session, record, config, audience, now=now, zone_name=zone_name))
    return report


def fan_out(session: Session, record: AlertRecord, config: Config, audience: Audience, *, now: datetime,
            zone_name: Callable[[str], str | None]) -> FanoutReport:
    report = FanoutReport(alerts=1)
    record.matched_at = now
    session.add(record)
    thread = session.get(AlertThread, record.thread_id) if record.thread_id else None
    reason = _skip_reason(record, thread, now)
    if reason is not None or thread is None:
        record.skip_reason = reason or "no thread"
        report.skipped[record.skip_reason.split(":")[0]] += 1
        return report
    alert = Alert.from_json(record.body)
    notified = _notified(session, thread.id)  # type: ignore[arg-type]
    if record.msg_type == "Cancel":
        targets = [Target(sid, "cancel") for sid in sorted(notified)]
        report.suppressed += _suppress_queued(session, thread.id, None, "cancelled before it was sent")  # type: ignore[arg-type]
        if not targets:
            record.skip_reason = "cancel: nobody had been told"
    else:
        targets = _targets(session, alert, config, audience, notified, now, report)
        report.suppressed += _suppress_queued(session, thread.id, {t.subscriber_id for t in targets},  # type: ignore[arg-type]
                                              "superseded by a newer version")
        if not targets:
            record.skip_reason = "no matching subscribers"
    report.queued += _queue(session, record, thread, alert, targets, config, zone_name)
    report.held += sum(1 for t in targets if t.not_before is not None)
    return report


def follow_vessels(session: Session, config: Config, audience: Audience, mmsis: Collection[int], *, now: datetime,
                   zone_name: Callable[[str], str | None]) -> FanoutReport:
    """The warning follows the boat: a vessel that moved into a live, already-sent warning brings it to the
    people following it, once per version (whoever had it already, by zone or by boat, is left alone)."""
    report = FanoutReport()
    if not mmsis:
        return report
    _take_matching_turn(session)  # never beside another worker's matching
    live = session.exec(select(AlertThread, AlertRecord)
                        .join(AlertRecord, col(AlertRecord.id) == col(AlertThread.current_alert_id))
                        .where(AlertThread.state == "active", col(AlertRecord.matched_at).is_not(None),
                               AlertRecord.msg_type != "Cancel")).all()
    boats: GeoIndex | None = None
    for thread, record in live:
        if _skip_reason(record, thread, now) is not None:
            continue
        alert = Alert.from_json(record.body)
        if boats is None:  # their fixes, read once for every live warning
            boats = audience.boats(session, mmsis)
        found = audience.vessel_followers(session, alert, config.zone_value_names, mmsis, boats=boats, at=now)
        if not found:
            continue
        # once per version: the outbox's unique (alert, subscriber) turns a boat's second entry into nothing
        targets = [Target(r.subscriber_id, "alert", r.decision.until) for r in found if r.decision.action != "skip"]
        queued = _queue(session, record, thread, alert, targets, config, zone_name, created_at=now)
        if queued:
            report.alerts += 1
            report.queued += queued
    return report


def _take_matching_turn(session: Session) -> None:
    """On PostgreSQL, wait for any other worker's matching to commit (a transaction-scoped advisory lock):
    two workers deciding who gets a warning from the same snapshot could each queue it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MATCH_LOCK_KEY})


def _skip_reason(record: AlertRecord, thread: AlertThread | None, now: datetime) -> str | None:
    if record.status != "Actual":
        return f"status {record.status}: stored, never sent to the public"
    if record.msg_type not in PUBLIC_MSG_TYPES:
        return f"msgType {record.msg_type}: nothing to send"
    if record.scope != "Public":
        return f"scope {record.scope}: not for the public"
    if thread is None:
        return "no thread"
    if thread.current_alert_id != record.id:
        return "superseded: a newer version of this warning was already received"
    if record.msg_type != "Cancel":
        if record.end_time is not None and record.end_time <= now:
            return "expired before it could be sent"
        if thread.state != "active":
            return f"thread {thread.state}: the warning is no longer live"
    return None


def _notified(session: Session, thread_id: int) -> set[int]:
    rows = session.exec(select(Delivery.subscriber_id).where(
        Delivery.thread_id == thread_id, col(Delivery.status).in_(NOTIFIED_STATUSES)))
    return set(rows)


def _targets(session: Session, alert: Alert, config: Config, audience: Audience, notified: set[int], now: datetime,
             report: FanoutReport) -> list[Target]:
    recipients = audience.recipients(session, alert, config.zone_value_names, at=now)
    targets: dict[int, Target] = {}
    for recipient in recipients:
        decision = recipient.decision
        if decision.action == "skip":
            report.skipped[f"preference: {decision.reason}"] += 1
            continue
        kind = "update" if recipient.subscriber_id in notified else "alert"
        targets[recipient.subscriber_id] = Target(recipient.subscriber_id, kind, decision.until)
    # Those told about an earlier version hear about this one even if the area moved away from them.
    for sid in notified - targets.keys():
        targets[sid] = Target(sid, "update")
    return [targets[k] for k in sorted(targets)]


def _suppress_queued(session: Session, thread_id: int, subscriber_ids: Iterable[int] | None, why: str) -> int:
    """Queued older versions for these people (everyone when None) will not go out any more."""
    base = update(Delivery).where(Delivery.thread_id == thread_id, Delivery.status == "queued")
    if subscriber_ids is None:
        result = session.execute(base.values(status="suppressed", last_error=why))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
    ids = list(subscriber_ids)
    done = 0
    for start in range(0, len(ids), ID_CHUNK):  # SQLite caps bound parameters per statement
        stmt = base.where(col(Delivery.subscriber_id).in_(ids[start:start + ID_CHUNK]))
        result = session.execute(stmt.values(status="suppressed", last_error=why))
        done += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return done


def priority_of(alert: Alert) -> int:
    """Severe and immediate first; a 해제 of a severe warning ranks like the warning."""
    return SEVERITY_RANK.get(alert.max_severity(), 0) * 10 + URGENCY_RANK.get(alert.max_urgency(), 0)


def _queue(session: Session, record: AlertRecord, thread: AlertThread, alert: Alert, targets: list[Target],
           config: Config, zone_name: Callable[[str], str | None], created_at: datetime | None = None) -> int:
    if not targets:
        return 0
    languages = _languages(session, [t.subscriber_id for t in targets])
    rendered: dict[tuple[str, str], tuple[dict[str, str], str, str]] = {}
    rows = []
    priority = priority_of(alert)
    for target in targets:
        language = languages.get(target.subscriber_id)
        if language is None:
            continue  # unsubscribed or paused since they were told
        key = (target.kind, language)
        if key not in rendered:
            template = config.templates[target.kind]
            params = parameters_for(alert, target.kind, language, config.zone_value_names, zone_name,
                                    config.sender_name)
            out = render(template.text, params)
            fallback, _ = build_fallback(out.text)
            rendered[key] = (out.parameters, out.text, fallback.kind)
        params, text, fallback_kind = rendered[key]
        rows.append({
            "alert_id": record.id, "thread_id": thread.id, "subscriber_id": target.subscriber_id,
            "kind": target.kind, "priority": priority, "status": "queued",
            "template_code": config.templates[target.kind].code, "params": params, "text": text,
            "fallback_kind": fallback_kind, "attempts": 0, "created_at": created_at or record.matched_at,
            "next_attempt_at": target.not_before,
        })
    add_personal_links(session, config, alert, thread.id, rows, now=created_at or record.matched_at)  # type: ignore[arg-type]
    return insert_ignore(session, Delivery, rows, conflict=("alert_id", "subscriber_id", "reminder_seq"))


def _languages(session: Session, ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = session.exec(select(Subscriber.id, Subscriber.language)
                            .where(col(Subscriber.id).in_(chunk), Subscriber.status == "active"))
        out.update({sid: lang for sid, lang in rows if sid is not None})
    return out
