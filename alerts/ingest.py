"""Store canonical alerts once each and thread them.

Identity is CAP's (sender, identifier, sent): the same alert twice, or from two feeds, is stored once
and fanned out once. Existing identities are looked up in one query per batch so that re-polling a
feed that still lists yesterday's alerts costs one SELECT, not one per entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from alerts.lifecycle import assign_thread, live_threads_of_feed
from alerts.models import AlertRecord, AlertThread
from feeds.model import Alert, Reference, to_utc

#: Identities per existence query (SQLite's expression depth limit is the real bound).
LOOKUP_CHUNK = 300


@dataclass(slots=True)
class IngestReport:
    new_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    ended_threads: int = 0


def ingest(session: Session, alerts: Sequence[Alert], *, feed: str | None, now: datetime) -> IngestReport:
    report = IngestReport()
    known = _existing_keys(session, [a.key() for a in alerts])
    seen_now: set[tuple[str, str, datetime]] = set()
    # Oldest first; within one bulletin a Cancel before the Update that continues the warning.
    for alert in sorted(alerts, key=lambda a: (to_utc(a.sent), a.msg_type != "Cancel")):
        key = alert.key()
        if key in known or key in seen_now:
            report.duplicates += 1
            continue
        seen_now.add(key)
        record_id = _store(session, alert, feed=feed, now=now)
        if record_id is None:
            report.duplicates += 1  # another worker stored it first
        else:
            report.new_ids.append(record_id)
    return report


def _store(session: Session, alert: Alert, *, feed: str | None, now: datetime) -> int | None:
    first = alert.infos[0] if alert.infos else None
    record = AlertRecord(
        sender=alert.sender,
        identifier=alert.identifier,
        sent=to_utc(alert.sent),
        status=alert.status,
        msg_type=alert.msg_type,
        scope=alert.scope,
        event=(first.event if first else "")[:255],
        severity=alert.max_severity(),
        urgency=alert.max_urgency(),
        headline=first.headline if first else None,
        feed=feed,
        end_time=alert.end_time(),
        received_at=now,
        body=alert.to_json(),
    )
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        return None
    assign_thread(session, record, alert, feed=feed, now=now)
    return record.id


def _existing_keys(session: Session, keys: list[tuple[str, str, datetime]]) -> set[tuple[str, str, datetime]]:
    found: set[tuple[str, str, datetime]] = set()
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), LOOKUP_CHUNK):
        chunk = unique[start:start + LOOKUP_CHUNK]
        conditions = [and_(AlertRecord.sender == s, AlertRecord.identifier == i, AlertRecord.sent == t)
                      for s, i, t in chunk]
        rows = session.exec(select(AlertRecord.sender, AlertRecord.identifier, AlertRecord.sent)
                            .where(or_(*conditions)))
        found.update((s, i, to_utc(t)) for s, i, t in rows)
    return found


def end_vanished(session: Session, feed: str, current: Sequence[Alert], *, now: datetime) -> IngestReport:
    """For a "what is active now" feed: a live thread whose key is no longer listed has been lifted.

    It is closed through a synthetic Cancel stored like any other alert, so that the people who were
    told get a 해제 follow-up by the same path as for a real Cancel.
    """
    listed = {a.thread_key for a in current if a.thread_key}
    cancels: list[Alert] = []
    for thread in live_threads_of_feed(session, feed):
        if thread.key is None or thread.key in listed or thread.current_alert_id is None:
            continue
        record = session.get(AlertRecord, thread.current_alert_id)
        if record is None:
            continue
        original = Alert.from_json(record.body)
        sent = max(now, record.sent + timedelta(seconds=1)).replace(microsecond=0)
        cancels.append(Alert(
            sender=original.sender,
            identifier=f"{original.identifier}.ended",
            sent=sent,
            status=original.status,
            msg_type="Cancel",
            scope=original.scope,
            source=feed,
            note=f"no longer listed by feed {feed}: the warning has ended",
            references=[Reference(original.sender, original.identifier, original.sent)],
            thread_key=thread.key,
            infos=original.infos,
        ))
    report = ingest(session, cancels, feed=feed, now=now)
    report.ended_threads = len(report.new_ids)
    for record_id in report.new_ids:
        record = session.get(AlertRecord, record_id)
        thread = session.get(AlertThread, record.thread_id) if record and record.thread_id else None
        if thread is not None:
            thread.state = "ended"  # lifted by disappearing, not by an explicit Cancel
            session.add(thread)
    return report
