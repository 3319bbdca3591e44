"""Store canonical alerts once each and thread them.

Identity is CAP's (sender, identifier, sent): the same alert twice, or from two feeds, is stored once
and fanned out once. A batch costs a few statements whatever its size (benchmarks/bench_ingest.py):

1. one lookup of the identities already stored (re-polling a feed that still lists yesterday's alerts
   costs one SELECT, not one per entry), and duplicates within the batch are dropped in memory;
2. one multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for the rest: an alert another worker
   stored in the meantime is not returned, and counts as a duplicate rather than failing the batch;
3. threading in memory (:class:`alerts.lifecycle.ThreadBatch`), oldest first, then written back in bulk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from alerts.lifecycle import Identity, ThreadBatch, Version, live_threads_of_feed, stored_threads
from alerts.models import AlertRecord, AlertThread
from feeds.model import Alert, Reference

#: Rows per INSERT statement; ~15 columns each stays far below SQLite's bound-variable limit.
INSERT_CHUNK = 500


@dataclass(slots=True)
class IngestReport:
    new_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    ended_threads: int = 0


def ingest(session: Session, alerts: Sequence[Alert], *, feed: str | None, now: datetime) -> IngestReport:
    report = IngestReport()
    session.flush()  # the lookups below are Core statements: they do not autoflush
    keyed = [(alert.key(), alert) for alert in alerts]  # the identity once: to_utc is not free
    # Oldest first; within one bulletin a Cancel before the Update that continues the warning.
    keyed.sort(key=lambda item: (item[0][2], item[1].msg_type != "Cancel"))
    # One lookup for the batch's identities (duplicates) and the ones they reference (their threads).
    referenced = [ref.key() for _, alert in keyed for ref in alert.references]
    stored_before = stored_threads(session, [*(key for key, _ in keyed), *referenced])
    seen: set[Identity] = {key for key, _ in keyed if key in stored_before}
    fresh: list[tuple[Identity, Alert]] = []
    for key, alert in keyed:
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        fresh.append((key, alert))
    stored = _store(session, fresh, feed=feed, now=now)
    report.duplicates += len(fresh) - len(stored)  # another worker stored them first
    threads = ThreadBatch(session, feed, now)
    threads.prefetch(stored, stored_before)
    for version, alert in stored:
        threads.assign(version, alert)
    threads.write()
    report.new_ids = [version.id for version, _ in stored]
    return report


def _row(key: Identity, alert: Alert, *, feed: str | None, now: datetime) -> dict[str, Any]:
    first = alert.infos[0] if alert.infos else None
    return {
        "sender": alert.sender,
        "identifier": alert.identifier,
        "sent": key[2],
        "status": alert.status,
        "msg_type": alert.msg_type,
        "scope": alert.scope,
        "event": (first.event if first else "")[:255],
        "severity": alert.max_severity(),
        "urgency": alert.max_urgency(),
        "headline": first.headline if first else None,
        "feed": feed,
        "end_time": alert.end_time(),
        "received_at": now,
        "body": alert.to_json(),
    }


def _store(session: Session, alerts: list[tuple[Identity, Alert]], *, feed: str | None,
           now: datetime) -> list[tuple[Version, Alert]]:
    """Insert the alerts; those really inserted come back, in the given order, with their row ids."""
    if not alerts:
        return []
    table = AlertRecord.__table__  # type: ignore[attr-defined]
    dialect: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(table).on_conflict_do_nothing(index_elements=["sender", "identifier", "sent"])
            .returning(table.c.id, table.c.sender, table.c.identifier, table.c.sent))
    rows = [_row(key, alert, feed=feed, now=now) for key, alert in alerts]
    ids: dict[Identity, int] = {}
    for start in range(0, len(rows), INSERT_CHUNK):
        for rid, sender, identifier, sent in session.execute(stmt, rows[start:start + INSERT_CHUNK]):
            ids[(sender, identifier, sent)] = rid
    stored: list[tuple[Version, Alert]] = []
    for (key, alert), row in zip(alerts, rows, strict=True):
        rid = ids.get(key)
        if rid is not None:
            stored.append((Version(rid, key, alert.msg_type, row["end_time"]), alert))
    return stored


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
