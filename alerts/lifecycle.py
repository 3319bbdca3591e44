"""Threads: the original warning, its updates and its cancel, followed as one thing.

Public aggregators send two live versions of one warning, re-publish an alert on its Cancel, or show a
cancelled warning as merely expired. Here every stored alert joins exactly one thread:

* CAP ``references`` name earlier versions: the alert joins their thread (threads are merged when an
  Update references versions that had been threaded apart).
* Sources without references (KMA rows, NGA warnings) give ``thread_key``; the alert joins the live
  thread with that key. A level change (대치, 변경) is an Update in the same thread, 해제 a Cancel.
* The newest version (by ``sent``) is the thread's current alert; an older version arriving late is
  stored but never sent.
* Cancel closes the thread (state ``cancelled``); an end time passing closes it as ``expired``; a
  warning that vanishes from a "what is active now" snapshot closes it as ``ended``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select

from alerts.models import AlertRecord, AlertReference, AlertThread, Delivery
from feeds.model import Alert, to_utc


def assign_thread(session: Session, record: AlertRecord, alert: Alert, *, feed: str | None,
                  now: datetime) -> AlertThread:
    _store_references(session, record, alert)
    thread = (_thread_by_references(session, alert) or _thread_by_referrers(session, record)
              or _thread_by_key(session, alert))
    if thread is None:
        thread = AlertThread(key=alert.thread_key, feed=feed, opened_at=now)
        session.add(thread)
        session.flush()
    record.thread_id = thread.id
    session.add(record)
    session.flush()
    _advance(session, thread, record, alert, now)
    return thread


def _thread_by_references(session: Session, alert: Alert) -> AlertThread | None:
    if not alert.references:
        return None
    conditions = [
        and_(AlertRecord.sender == r.sender, AlertRecord.identifier == r.identifier,
             AlertRecord.sent == to_utc(r.sent))
        for r in alert.references
    ]
    thread_ids = sorted({tid for tid in session.exec(select(AlertRecord.thread_id).where(or_(*conditions)))
                         if tid is not None})
    if not thread_ids:
        return None
    keep = session.get(AlertThread, thread_ids[0])
    for other_id in thread_ids[1:]:
        _merge(session, keep_id=thread_ids[0], other_id=other_id)
    return keep


def _store_references(session: Session, record: AlertRecord, alert: Alert) -> None:
    for ref in dict.fromkeys(r.key() for r in alert.references):
        session.add(AlertReference(alert_id=record.id, ref_sender=ref[0], ref_identifier=ref[1], ref_sent=ref[2]))


def _thread_by_referrers(session: Session, record: AlertRecord) -> AlertThread | None:
    """An original arriving after an update that references it joins the update's thread."""
    thread_id = session.exec(
        select(AlertRecord.thread_id).join(AlertReference, col(AlertReference.alert_id) == col(AlertRecord.id))
        .where(AlertReference.ref_sender == record.sender, AlertReference.ref_identifier == record.identifier,
               AlertReference.ref_sent == record.sent, col(AlertRecord.thread_id).is_not(None))
        .order_by(col(AlertRecord.thread_id))
    ).first()
    return session.get(AlertThread, thread_id) if thread_id is not None else None


def _merge(session: Session, *, keep_id: int, other_id: int) -> None:
    """An Update that references two threads proves they are one warning."""
    session.execute(update(AlertRecord).where(AlertRecord.thread_id == other_id).values(thread_id=keep_id))
    session.execute(update(Delivery).where(Delivery.thread_id == other_id).values(thread_id=keep_id))
    other = session.get(AlertThread, other_id)
    if other is not None:
        other.state = "ended"
        other.current_alert_id = None
        session.add(other)


def _thread_by_key(session: Session, alert: Alert) -> AlertThread | None:
    if not alert.thread_key:
        return None
    live = session.exec(
        select(AlertThread).where(AlertThread.key == alert.thread_key, AlertThread.state == "active")
        .order_by(AlertThread.id.desc())  # type: ignore[union-attr]
    ).first()
    if live is not None or alert.msg_type == "Alert":
        return live
    # An Update or Cancel whose warning already closed (e.g. expired) still belongs to it: those told
    # about the warning must hear that it was lifted.
    return session.exec(
        select(AlertThread).where(AlertThread.key == alert.thread_key).order_by(AlertThread.id.desc())  # type: ignore[union-attr]
    ).first()


def _advance(session: Session, thread: AlertThread, record: AlertRecord, alert: Alert, now: datetime) -> None:
    current = session.get(AlertRecord, thread.current_alert_id) if thread.current_alert_id else None
    if current is not None and current.sent > record.sent:
        return  # a late older version: stored, threaded, never current
    replaced_in_same_bulletin = (current is not None and current.msg_type == "Cancel"
                                 and current.sent == record.sent and alert.msg_type == "Update")
    thread.current_alert_id = record.id
    if replaced_in_same_bulletin:
        # KMA lifts the old level and issues the new one in one bulletin (변경해제 + 변경발표): the
        # warning goes on at the new level in the same thread.
        thread.state = "active"
        thread.closed_at = None
        thread.end_time = record.end_time
    elif alert.msg_type == "Cancel":
        if thread.state != "cancelled":
            thread.state = "cancelled"
            thread.closed_at = now
    elif alert.msg_type in ("Alert", "Update"):
        thread.end_time = record.end_time
        if thread.state == "expired" and (record.end_time is None or record.end_time > now):
            thread.state = "active"  # extended (연장) after it had lapsed
            thread.closed_at = None
    session.add(thread)


def expire_threads(session: Session, now: datetime) -> int:
    """Close every live thread whose end time has passed; nothing of theirs is sent afterwards."""
    result = session.execute(
        update(AlertThread)
        .where(AlertThread.state == "active", AlertThread.end_time.is_not(None),  # type: ignore[union-attr]
               AlertThread.end_time <= now)  # type: ignore[operator]
        .values(state="expired", closed_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def live_threads_of_feed(session: Session, feed: str) -> list[AlertThread]:
    return list(session.exec(select(AlertThread).where(AlertThread.feed == feed, AlertThread.state == "active")))
