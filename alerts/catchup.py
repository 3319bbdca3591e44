"""People added while a warning is in force get it at once, once each, and its follow-ups after.

Why: matching runs when a warning arrives, so a person added (``subscribers add``, a CSV import, the
subscription page) while a 풍랑주의보 is in force in their zone got nothing until the next version, though
a boat sailing into the zone did get it (``alerts.fanout.follow_vessels``). This is the same step for
people: every live, already-matched warning is matched again through ``Audience.recipients`` (zones,
outlines, points, vessels, preferences, quiet hours, "never held at sea" — one definition of who is in a
warning), restricted to the new people, and queued through the fanout's own ``_queue``. The outbox's
unique (alert_id, subscriber_id) keeps it once however often this runs; once the message is sent the
person is among the notified, so an update or the 해제 reaches them like everyone else.

Two callers: the commands that add people call :func:`catch_up` with their ids; the running job's match
step calls :func:`catch_up_new` (people whose subscriptions changed since its previous call, from the
trigger-kept change log, for writers that do not call this module themselves, such as a web page).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from weakref import WeakKeyDictionary

from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, or_, select

from alerts.audience import Audience
from alerts.config import Config
from alerts.db import session_scope
from alerts.fanout import FanoutReport, Target, _queue, _skip_reason, _take_matching_turn
from alerts.models import AlertRecord, AlertThread, Delivery
from alerts.sqlutil import id_in, id_list
from feeds.model import Alert
from subscribers.models import Subscriber, SubscriptionChange
from subscribers.sqltypes import utcnow

#: At start-up the running job also looks at people added this long before it (added while it was down).
START_WINDOW = timedelta(minutes=30)
#: Changes this many seconds older than the newest one seen are read again (PostgreSQL commits out of order).
OVERLAP_SECONDS = 30.0
_watermarks: WeakKeyDictionary[Audience, float] = WeakKeyDictionary()


def catch_up(session: Session, config: Config, audience: Audience, subscriber_ids: Collection[int], *,
             now: datetime, zone_name: Callable[[str], str | None]) -> FanoutReport:
    """Queue every live warning these people are in (by zone, point or vessel) and have not had."""
    report = FanoutReport()
    wanted = set(subscriber_ids)
    if not wanted:
        return report
    _take_matching_turn(session)  # never beside another worker's matching
    live = session.exec(select(AlertThread, AlertRecord)
                        .join(AlertRecord, col(AlertRecord.id) == col(AlertThread.current_alert_id))
                        .where(AlertThread.state == "active", col(AlertRecord.matched_at).is_not(None),
                               AlertRecord.msg_type != "Cancel")).all()
    for thread, record in live:
        if _skip_reason(record, thread, now) is not None:
            continue
        alert = Alert.from_json(record.body)
        # Matched from the indexes as for everyone, but preferences read only for the newcomers in it, and
        # those already queued for this version (an earlier call, the overlap of the running job) left out
        # before anything is rendered: 50,000 people imported cost seconds, not a full fan-out per warning.
        found = audience.recipients(session, alert, config.zone_value_names, at=now, among=wanted)
        found = [r for r in found if r.decision.action != "skip"]
        have = _queued_for(session, record.id, [r.subscriber_id for r in found])  # type: ignore[arg-type]
        targets = [Target(r.subscriber_id, "alert", r.decision.until) for r in found if r.subscriber_id not in have]
        queued = _queue(session, record, thread, alert, targets, config, zone_name, created_at=now)
        if queued:
            report.alerts += 1
            report.queued += queued
            report.held += sum(1 for t in targets if t.not_before is not None)
    return report


def _queued_for(session: Session, alert_id: int, subscriber_ids: list[int]) -> set[int]:
    """Of these people, those with an outbox row for this alert version already (the ids bound as one parameter).
    The outbox's unique key would refuse them anyway; asking first spares rendering and links for them."""
    if not subscriber_ids:
        return set()
    connection = session.connection()
    dialect = connection.dialect.name
    outbox = Delivery.__table__  # type: ignore[attr-defined]
    query = sa_select(outbox.c.subscriber_id).where(outbox.c.alert_id == alert_id,
                                                    id_in(outbox.c.subscriber_id, dialect))
    return set(connection.execute(query, {"ids": id_list(subscriber_ids, dialect)}).scalars())


def changed_since(session: Session, since: datetime) -> list[int]:
    """People created or changed (zones added, re-subscribed) at or after ``since``, still active."""
    rows = session.exec(select(Subscriber.id).where(
        or_(col(Subscriber.created_at) >= since, col(Subscriber.updated_at) >= since),
        Subscriber.status == "active"))
    return [sid for sid in rows if sid is not None]


def catch_up_new(session: Session, config: Config, audience: Audience, *, now: datetime,
                 zone_name: Callable[[str], str | None]) -> FanoutReport:
    """The running job's hook: catch up the people whose subscriptions changed since this job's previous
    call, read from the change log the database's triggers keep (``subscription_change``: every writer is
    seen, and the table is small, unlike a scan of ``subscriber`` on every tick). Cheap when no warning is
    live: nothing is read but one row."""
    live = session.exec(select(AlertThread.id).where(AlertThread.state == "active").limit(1)).first()
    newest = session.exec(select(func.max(SubscriptionChange.changed_at))).one()
    previous = _watermarks.get(audience)
    if newest is None:
        return FanoutReport()
    # database clock; the overlap re-reads changes of transactions that committed after a later one
    since = (newest - START_WINDOW.total_seconds()) if previous is None else previous - OVERLAP_SECONDS
    _watermarks[audience] = max(newest, previous or newest)
    if live is None:
        return FanoutReport()
    ids = session.exec(select(SubscriptionChange.subscriber_id).distinct()
                       .where(col(SubscriptionChange.changed_at) >= since)).all()
    if not ids:
        return FanoutReport()
    return catch_up(session, config, audience, ids, now=now, zone_name=zone_name)


def catch_up_people(engine: Engine, config: Config, subscriber_ids: Collection[int] | None = None, *,
                    since: datetime | None = None) -> FanoutReport:
    """For the commands that add people: one transaction, a fresh audience (the queued messages are sent by
    the running job's next dispatch, or by ``run --once``). ``since`` picks everyone changed since then."""
    from alerts.pipeline import zone_name  # the pipeline imports this module

    audience = Audience(engine, buffer_nm=config.vessel_buffer_nm,
                        stale_after=timedelta(hours=config.vessel_stale_after_hours))
    now = utcnow()
    with session_scope(engine) as session:
        ids = list(subscriber_ids or []) + (changed_since(session, since) if since is not None else [])
        return catch_up(session, config, audience, ids, now=now, zone_name=zone_name)
