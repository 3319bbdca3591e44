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

import numpy as np
from sqlalchemy import text, update
from sqlmodel import Session, col, select

from alerts import coalesce
from alerts.audience import Audience
from alerts.config import Config
from alerts.leader import MATCH_LOCK_KEY
from alerts.message_bodies import attach_bodies
from alerts.models import NOTIFIED_STATUSES, AlertRecord, AlertThread, Delivery
from alerts.outbox_write import RowGroup, insert_groups
from alerts.public.links import add_personal_links, makes_links
from alerts.render import parameters_for, render
from alerts.short_sms import short_fallback
from alerts.sqlutil import id_in, id_list, insert_ignore
from feeds.model import SEVERITY_RANK, URGENCY_RANK, Alert
from subscribers.geoindex import GeoIndex
from subscribers.models import Subscriber

PUBLIC_MSG_TYPES = ("Alert", "Update", "Cancel")


@dataclass(slots=True)
class FanoutReport:
    alerts: int = 0
    queued: int = 0
    held: int = 0
    suppressed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    #: Rows that joined another warning's grouped message (storms, ``[coalesce]``).
    grouped: int = 0

    def add(self, other: FanoutReport) -> None:
        self.alerts += other.alerts
        self.queued += other.queued
        self.held += other.held
        self.suppressed += other.suppressed
        self.skipped.update(other.skipped)
        self.grouped += other.grouped


@dataclass(slots=True)
class Target:
    subscriber_id: int
    kind: str
    not_before: datetime | None = None


@dataclass(slots=True)
class TargetGroup:
    """People who get the same row of a version: same kind, language and hold. ``ids``: sorted."""

    kind: str
    language: str
    not_before: datetime | None
    ids: np.ndarray


def fan_out_pending(session: Session, config: Config, audience: Audience, *, now: datetime,
                    zone_name: Callable[[str], str | None], early: FirstBatch | None = None) -> FanoutReport:
    """Fan out every alert not yet matched, oldest first (an original before its update).

    On PostgreSQL several workers may call this at once: they take turns (:func:`_take_matching_turn`), so
    the second sees the first one's work committed and never matches an alert twice.
    ``early``: commit each warning's first batch before the rest of its outbox is written (see
    :class:`FirstBatch`).
    """
    report = FanoutReport()
    _take_matching_turn(session)
    pending = session.exec(select(AlertRecord).where(col(AlertRecord.matched_at).is_(None))
                           .order_by(col(AlertRecord.sent), col(AlertRecord.id))).all()
    for record in pending:
        report.add(fan_out(session, record, config, audience, now=now, zone_name=zone_name, early=early))
    # grouped messages not sent yet never carry a warning that ended meanwhile (cancelled, superseded, expired)
    coalesce.regroup(session, config, now, names=zone_name)
    return report


def fan_out(session: Session, record: AlertRecord, config: Config, audience: Audience, *, now: datetime,
            zone_name: Callable[[str], str | None], early: FirstBatch | None = None) -> FanoutReport:
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
        ended = ended_version(session, record)
        report.queued += _queue(session, record, thread, alert, targets, config, zone_name, ended=ended)
    else:
        groups = _target_groups(session, alert, config, audience, notified, now, report)
        everyone = np.concatenate([g.ids for g in groups]) if groups else np.empty(0, dtype=np.int64)
        report.suppressed += _suppress_queued(session, thread.id, everyone.tolist(),  # type: ignore[arg-type]
                                              "superseded by a newer version", version=record.id)
        if not groups:
            record.skip_reason = "no matching subscribers"
        ended = ended_version(session, record) if record.msg_type == "Update" else None
        if early is not None and early.applies(config, alert, groups):
            # the first batch is committed while the warning is not yet marked matched: a crash before the rest
            # is written leaves it to be matched again, and the outbox's unique key keeps those rows once
            first, groups = early.split(groups)
            record.matched_at = None
            report.queued += _queue_groups(session, record, thread, alert, first, config, zone_name, created_at=now,
                                           ended=ended)
            early.hand_over(session)
            _take_matching_turn(session)
            record.matched_at = now
        report.queued += _queue_groups(session, record, thread, alert, groups, config, zone_name, created_at=now,
                                       ended=ended)
        report.held += sum(len(g.ids) for g in groups if g.not_before is not None)
    if record.msg_type != "Cancel":
        report.grouped += coalesce.gather(session, config, record, alert, now, zone_name)
    return report


class FirstBatch:
    """A warning's first batch goes before the rest of its outbox is written.

    Why: writing the outbox of a 100,000-person warning takes most of a second, and the first recipients must
    not wait for the last row. When a dispatch loop runs beside the fan-out, the rows of the first batch (the
    lowest subscriber ids: what the dispatcher claims first) are committed on their own, the fan-out's lock is
    handed to the dispatcher until it has claimed (at most ``HANDOFF_SECONDS`` in alerts/pipeline.py), and the
    rest follows.

    Only when nothing would regroup those rows afterwards: a warning that may wait for company
    (``[coalesce]``) is held as a whole, so it is written as a whole.
    """

    def __init__(self, rows: int, hand_over: Callable[[Session], None]) -> None:
        self.rows = rows
        self.hand_over = hand_over

    def applies(self, config: Config, alert: Alert, groups: list[TargetGroup]) -> bool:
        if not coalesce.never_grouped(config, alert):
            return False
        return sum(len(g.ids) for g in groups if g.not_before is None) > self.rows

    def split(self, groups: list[TargetGroup]) -> tuple[list[TargetGroup], list[TargetGroup]]:
        """(the first ``rows`` people due now, by subscriber id; everyone else)."""
        due = np.sort(np.concatenate([g.ids for g in groups if g.not_before is None]))
        last = due[self.rows - 1]
        first = [TargetGroup(g.kind, g.language, g.not_before, g.ids[g.ids <= last])
                 for g in groups if g.not_before is None]
        rest = [g if g.not_before is not None else TargetGroup(g.kind, g.language, None, g.ids[g.ids > last])
                for g in groups]
        return [g for g in first if len(g.ids)], [g for g in rest if len(g.ids)]


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


def ended_version(session: Session, record: AlertRecord) -> Alert | None:
    """The version a follow-up ends or replaces: the thread's newest earlier Alert/Update (the first stored of
    a bulletin's twins, as the lifecycle made it current). A Cancel without ``<info>`` is legal CAP and
    says nothing of what it lifts; this version says it (hazard, level, zones, sender)."""
    if record.thread_id is None:
        return None
    previous = session.exec(
        select(AlertRecord).where(AlertRecord.thread_id == record.thread_id, AlertRecord.id != record.id,
                                  AlertRecord.msg_type != "Cancel", col(AlertRecord.sent) <= record.sent)
        .order_by(col(AlertRecord.sent).desc(), col(AlertRecord.id)).limit(1)).first()
    return Alert.from_json(previous.body) if previous is not None else None


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
    return set(rows) | coalesce.notified_carried(session, thread_id)


def _target_groups(session: Session, alert: Alert, config: Config, audience: Audience, notified: set[int],
                   now: datetime, report: FanoutReport) -> list[TargetGroup]:
    """Everyone this version goes to, a group per (kind, language, hold): the people it reaches by their
    preferences (an ``update`` for those told of an earlier version), and those told before whom it no longer
    reaches (an ``update`` too: the area moved away from them, or they narrowed their preferences since)."""
    told = np.fromiter(notified, dtype=np.int64, count=len(notified))
    out: list[TargetGroup] = []
    covered: list[np.ndarray] = []
    for group in audience.recipient_groups(session, alert, config.zone_value_names, at=now):
        decision = group.decision
        if decision.action == "skip":
            report.skipped[f"preference: {decision.reason}"] += len(group.ids)
            continue
        covered.append(group.ids)
        was_told = np.isin(group.ids, told) if len(told) else np.zeros(len(group.ids), dtype=bool)
        out += [TargetGroup(kind, group.language, decision.until, ids)
                for kind, ids in (("update", group.ids[was_told]), ("alert", group.ids[~was_told])) if len(ids)]
    reached = set(np.concatenate(covered).tolist()) if covered else set()
    rest = sorted(notified - reached)
    by_language: dict[str, list[int]] = {}
    for sid, language in _languages(session, rest).items():  # still active
        by_language.setdefault(language, []).append(sid)
    out += [TargetGroup("update", language, None, np.array(sorted(ids), dtype=np.int64))
            for language, ids in by_language.items()]
    return out


def _suppress_queued(session: Session, thread_id: int, subscriber_ids: Iterable[int] | None, why: str,
                     version: int | None = None) -> int:
    """Queued older versions for these people (everyone when None) will not go out any more. ``version``: the
    version being matched, whose own rows are left alone (a fan-out matched again after a crash that followed
    its early first batch)."""
    base = update(Delivery).where(Delivery.thread_id == thread_id, Delivery.status == "queued")
    if version is not None:
        base = base.where(Delivery.alert_id != version)
    if subscriber_ids is None:
        result = session.execute(base.values(status="suppressed", last_error=why))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
    ids = list(subscriber_ids)
    if not ids:
        return 0
    # usually nothing of an older version is queued (a first warning, or its rows went out): looked at first,
    # the 100,000 ids of a national fan-out are not sent for nothing (the dispatcher checks again before sending)
    if session.execute(select(Delivery.id).where(base.whereclause).limit(1)).first() is None:
        return 0
    # every id in one bound parameter: an expanding IN of 100,000 ids cost SQLAlchemy seconds to render
    connection = session.connection()
    dialect = connection.dialect.name
    stmt = base.where(id_in(Delivery.__table__.c.subscriber_id, dialect))  # type: ignore[attr-defined]
    result = connection.execute(stmt.values(status="suppressed", last_error=why), {"ids": id_list(ids, dialect)})
    return int(result.rowcount or 0)


def priority_of(alert: Alert) -> int:
    """Severe and immediate first; a 해제 of a severe warning ranks like the warning."""
    return SEVERITY_RANK.get(alert.max_severity(), 0) * 10 + URGENCY_RANK.get(alert.max_urgency(), 0)


def _priority(alert: Alert, ended: Alert | None) -> int:
    """A 해제 without <info> ranks like the warning it lifts."""
    return priority_of(alert) if alert.infos or ended is None else priority_of(ended)


def _queue(session: Session, record: AlertRecord, thread: AlertThread, alert: Alert, targets: list[Target],
           config: Config, zone_name: Callable[[str], str | None], created_at: datetime | None = None,
           ended: Alert | None = None) -> int:
    """A row per person (each with its own links when the templates have them), as one bulk insert."""
    if not targets:
        return 0
    languages = _languages(session, [t.subscriber_id for t in targets])
    # unsubscribed or paused since they were told: no language, no row
    pairs = [(t, languages[t.subscriber_id]) for t in targets if t.subscriber_id in languages]
    return _insert_per_person(session, record, thread, alert, pairs, config,
                              _Rendering(config, record, alert, zone_name, ended), _priority(alert, ended),
                              created_at or record.matched_at)  # type: ignore[arg-type]


def _insert_per_person(session: Session, record: AlertRecord, thread: AlertThread, alert: Alert,
                       pairs: list[tuple[Target, str]], config: Config, rendering: _Rendering, priority: int,
                       created: datetime) -> int:
    """Rows for (target, language) pairs, a dict each: personal links can make every text its own."""
    rows = []
    for target, language in pairs:
        params, text, fallback_kind, template_code = rendering.get(target.kind, language)
        rows.append({
            "alert_id": record.id, "thread_id": thread.id, "subscriber_id": target.subscriber_id,
            "kind": target.kind, "priority": priority, "status": "queued",
            "template_code": template_code, "params": params, "text": text,
            "fallback_kind": fallback_kind, "attempts": 0, "created_at": created,
            "next_attempt_at": target.not_before,
        })
    add_personal_links(session, config, alert, thread.id, rows, now=created)  # type: ignore[arg-type]
    attach_bodies(session.connection(), rows)  # a body per person when links make each text its own
    return insert_ignore(session, Delivery, rows, conflict=("alert_id", "subscriber_id", "reminder_seq"))


def _queue_groups(session: Session, record: AlertRecord, thread: AlertThread, alert: Alert,
                  groups: list[TargetGroup], config: Config, zone_name: Callable[[str], str | None],
                  created_at: datetime | None = None, ended: Alert | None = None) -> int:
    """The outbox of a fan-out a group at a time (:mod:`alerts.outbox_write`): every row of a group is the same
    but for the person. When a template gives each person links of their own, a row per person instead (the
    groups' languages and renderings as they are: the people were read active in this transaction)."""
    if not groups:
        return 0
    rendering = _Rendering(config, record, alert, zone_name, ended)
    rendered = [rendering.get(g.kind, g.language) for g in groups]
    created: datetime = created_at or record.matched_at  # type: ignore[assignment]
    priority = _priority(alert, ended)
    if any(makes_links(config, alert, g.kind, r[3]) for g, r in zip(groups, rendered, strict=True)):
        pairs = sorted(((Target(int(sid), g.kind, g.not_before), g.language) for g in groups for sid in g.ids),
                       key=lambda pair: pair[0].subscriber_id)
        return _insert_per_person(session, record, thread, alert, pairs, config, rendering, priority, created)
    # the links' lines left out of the text, as add_personal_links does for a row without links: once a group
    shared = [{"kind": g.kind, "subscriber_id": int(g.ids[0]), "template_code": code, "params": params,
               "text": text, "fallback_kind": fallback_kind}
              for g, (params, text, fallback_kind, code) in zip(groups, rendered, strict=True)]
    add_personal_links(session, config, alert, thread.id, shared, now=created)  # type: ignore[arg-type]
    return insert_groups(session.connection(), [
        RowGroup(g.ids, g.kind, row["template_code"], row["params"], row["text"], row["fallback_kind"], g.not_before)
        for g, row in zip(groups, shared, strict=True)],
        alert_id=record.id, thread_id=thread.id, priority=priority, created_at=created)  # type: ignore[arg-type]


class _Rendering:
    """A version's message per (kind, language), rendered once: the person's language where an approved
    template exists (Korean otherwise), and the CAP info in it."""

    def __init__(self, config: Config, record: AlertRecord, alert: Alert, zone_name: Callable[[str], str | None],
                 ended: Alert | None) -> None:
        self.config, self.record, self.alert, self.zone_name, self.ended = config, record, alert, zone_name, ended
        self.done: dict[tuple[str, str], tuple[dict[str, str], str, str, str]] = {}

    def get(self, kind: str, language: str) -> tuple[dict[str, str], str, str, str]:
        """(parameters, text, fallback kind, template code)."""
        key = (kind, language)
        if key not in self.done:
            config = self.config
            used, template = config.templates[kind].for_language(language)
            params = parameters_for(self.alert, kind, used, config.zone_value_names, self.zone_name,
                                    config.sender_name, ended=self.ended)
            out = render(template.text, params, language=used, about=f"{self.record.identifier} ({kind})")
            fallback, _ = short_fallback(template.sms, out.parameters, out.text)
            self.done[key] = (out.parameters, out.text, fallback.kind, template.code)
        return self.done[key]


def _languages(session: Session, ids: list[int]) -> dict[int, str]:
    """Language of each still-active person, in one statement (the ids bound as one parameter)."""
    if not ids:
        return {}
    connection = session.connection()
    dialect = connection.dialect.name
    people = Subscriber.__table__  # type: ignore[attr-defined]
    stmt = select(people.c.id, people.c.language).where(id_in(people.c.id, dialect), people.c.status == "active")
    return dict(connection.execute(stmt, {"ids": id_list(ids, dialect)}).all())
