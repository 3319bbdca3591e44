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

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from alerts.db import sqlite_datetime
from alerts.lifecycle import Identity, ThreadBatch, Version, live_threads_of_feed, stored_threads
from alerts.models import AlertRecord, AlertThread
from alerts.sqlutil import driver_rows
from feeds.model import Alert, Reference

#: Rows per INSERT statement; ~15 columns each stays far below SQLite's bound-variable limit.
INSERT_CHUNK = 500


@dataclass(slots=True)
class IngestReport:
    new_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    ended_threads: int = 0
    relisted_threads: int = 0


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


#: The columns ``_store`` writes, in the order of :func:`_values`.
_COLUMNS = ("sender", "identifier", "sent", "status", "msg_type", "scope", "event", "severity", "urgency",
            "headline", "feed", "end_time", "received_at", "body")


def _values(key: Identity, alert: Alert, end_time: datetime | None, feed: str | None,
            now: datetime) -> tuple[Any, ...]:
    first = alert.infos[0] if alert.infos else None
    return (alert.sender, alert.identifier, key[2], alert.status, alert.msg_type, alert.scope,
            (first.event if first else "")[:255], alert.max_severity(), alert.max_urgency(),
            first.headline if first else None, feed, end_time, now, alert)


def _store(session: Session, alerts: list[tuple[Identity, Alert]], *, feed: str | None,
           now: datetime) -> list[tuple[Version, Alert]]:
    """Insert the alerts; those really inserted come back, in the given order, with their row ids."""
    if not alerts:
        return []
    ends = [alert.end_time() for _, alert in alerts]
    connection = session.connection()
    insert_rows = _insert_sqlite if connection.dialect.name == "sqlite" else _insert_core
    ids = insert_rows(connection, [_values(key, alert, end, feed, now)
                                   for (key, alert), end in zip(alerts, ends, strict=True)])
    stored: list[tuple[Version, Alert]] = []
    for (key, alert), end in zip(alerts, ends, strict=True):
        rid = ids.get(key)
        if rid is not None:
            stored.append((Version(rid, key, alert.msg_type, end), alert))
    return stored


def _insert_core(connection: Connection, rows: list[tuple[Any, ...]]) -> dict[Identity, int]:
    """One multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per chunk, through SQLAlchemy."""
    table = AlertRecord.__table__  # type: ignore[attr-defined]
    dialect: Any = postgresql if connection.dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(table).on_conflict_do_nothing(index_elements=["sender", "identifier", "sent"])
            .returning(table.c.id, table.c.sender, table.c.identifier, table.c.sent))
    params = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
    ids: dict[Identity, int] = {}
    for start in range(0, len(params), INSERT_CHUNK):
        for rid, sender, identifier, sent in connection.execute(stmt, params[start:start + INSERT_CHUNK]):
            ids[(sender, identifier, sent)] = rid
    return ids


def _insert_sqlite(connection: Connection, rows: list[tuple[Any, ...]]) -> dict[Identity, int]:
    """The same statement on SQLite, with the rows handed to the driver as they are stored.

    SQLAlchemy's per-parameter processing (the UTC datetime type, then DATETIME's formatting, per value)
    cost more than SQLite's insert itself. Values are written here in the very text SQLAlchemy writes
    (:func:`alerts.db.sqlite_datetime`, the dialect's own JSON processor), so the ORM reads them back
    unchanged; the returned ``sent`` text maps each row back to its identity.
    """
    table = AlertRecord.__table__  # type: ignore[attr-defined]
    body = _bind_processor(table.c.body, connection)
    width = len(_COLUMNS)
    identity_of: dict[tuple[str, str, str], Identity] = {}
    flat: list[Any] = []
    now, received = None, None
    for row in rows:
        sent = sqlite_datetime(row[2])
        identity_of[(row[0], row[1], sent)] = (row[0], row[1], row[2])
        if row[12] is not now:  # the same ``now`` for the whole batch: converted once
            now, received = row[12], sqlite_datetime(row[12])
        flat += (*row[:2], sent, *row[3:11], sqlite_datetime(row[11]), received,
                 body(row[13]) if body else row[13])
    ids: dict[Identity, int] = {}
    for start in range(0, len(rows), INSERT_CHUNK):
        count = min(INSERT_CHUNK, len(rows) - start)
        chunk = tuple(flat[start * width:(start + count) * width])
        for rid, sender, identifier, sent in driver_rows(connection, _sqlite_insert_sql(count), chunk):
            ids[identity_of[(sender, identifier, sent)]] = rid
    return ids


@functools.cache
def _sqlite_insert_sql(rows: int) -> str:
    """The multi-row INSERT as SQLAlchemy compiles it for SQLite, for ``rows`` rows (qmark parameters)."""
    table = AlertRecord.__table__  # type: ignore[attr-defined]
    stmt = (sqlite.insert(table).on_conflict_do_nothing(index_elements=["sender", "identifier", "sent"])
            .returning(table.c.id, table.c.sender, table.c.identifier, table.c.sent))
    one = str(stmt.compile(dialect=sqlite.dialect(), column_keys=list(_COLUMNS)))
    group = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
    assert one.count(group) == 1, one
    return one.replace(group, ", ".join([group] * rows))


def _bind_processor(column: Any, connection: Connection) -> Any:
    """The processor SQLAlchemy itself applies to the column on this connection's dialect."""
    return column.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)


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


def relist_reappeared(session: Session, feed: str, current: Sequence[Alert], *, now: datetime) -> IngestReport:
    """For a "what is active now" feed: a warning ended by vanishing that is listed again was never lifted.

    A snapshot can drop a row and bring it back (a glitch at the source); the 해제 already sent was then
    wrong. The listed alert is a duplicate of the one the thread already holds, so nothing would happen: a
    synthetic Update (``<identifier>.relisted.<time>``) reopens the thread, and everyone who was told gets
    the warning again by the usual follow-up path.
    """
    t, a = AlertThread, AlertRecord
    by_key = {alert.thread_key: alert for alert in current if alert.thread_key}
    if not by_key:
        return IngestReport()
    live_keys = {thread.key for thread in live_threads_of_feed(session, feed)}
    ended = session.exec(select(t).where(t.feed == feed, t.state == "ended",
                                         col(t.key).in_(sorted(set(by_key) - live_keys)))).all()
    updates: list[Alert] = []
    reopened: list[AlertThread] = []
    for thread in ended:
        listed = by_key[thread.key]  # type: ignore[index]
        held = session.exec(select(a.id).where(a.thread_id == thread.id, a.sender == listed.sender,
                                               a.identifier == listed.identifier,
                                               a.sent == listed.key()[2])).first()
        lifted = session.get(AlertRecord, thread.current_alert_id) if thread.current_alert_id else None
        if held is None or lifted is None or lifted.msg_type != "Cancel":
            continue  # a new 발표 opens its own thread; only the very same warning coming back is relisted
        updates.append(Alert(
            sender=listed.sender, identifier=f"{listed.identifier}.relisted.{int(now.timestamp())}",
            sent=max(now, lifted.sent + timedelta(seconds=1)).replace(microsecond=0), status=listed.status,
            msg_type="Update", scope=listed.scope, source=feed,
            note=f"listed again by feed {feed}: the warning is still in force",
            references=[Reference(listed.sender, listed.identifier, listed.sent),
                        Reference(lifted.sender, lifted.identifier, lifted.sent)],
            thread_key=thread.key, infos=listed.infos,
        ))
        reopened.append(thread)
    report = ingest(session, updates, feed=feed, now=now)
    for thread in reopened:
        thread.state = "active"
        thread.closed_at = None
        session.add(thread)
    report.relisted_threads = len(reopened)
    return report
