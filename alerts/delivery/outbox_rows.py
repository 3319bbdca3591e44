"""The outbox rows a dispatcher claims, read with Core selects of the columns a send needs (not ORM objects).

Why not ``select(Delivery)``: profiled on 20,000 recipients, building ORM instances (identity map, instrumented
attributes, ``set_committed_value`` after the lease) was most of the claim's time, and the AlertRecord rows read
to check suppression carried each alert's whole JSON body. A send needs a dozen plain values per row, the
person's number and the message body (joined here, so no second query) and, per warning, three columns.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy import String, Table, or_, select, type_coerce
from sqlalchemy.engine import Connection, Engine

from alerts.db import sqlite_datetime
from alerts.models import AlertRecord, AlertThread, Delivery, DeliveryMessage
from alerts.sqlutil import driver_rows, fetch_all, id_in, id_list
from subscribers.models import Subscriber

_DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]
_SUBSCRIBER: Table = Subscriber.__table__  # type: ignore[attr-defined]
_ALERT: Table = AlertRecord.__table__  # type: ignore[attr-defined]
_THREAD: Table = AlertThread.__table__  # type: ignore[attr-defined]
_MESSAGE: Table = DeliveryMessage.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class OutboxRow:
    """What the dispatcher reads of a claimed Delivery (same attribute names, so code written for a Delivery
    works on either). ``phone`` is the person's number, or None when the person no longer exists."""

    id: int
    subscriber_id: int
    alert_id: int
    thread_id: int
    kind: str
    status: str
    attempts: int
    template_code: str
    params: dict[str, str]
    text: str
    fallback_kind: str | None
    #: Not None when the row heads a grouped message (its value is not parsed: only that is read).
    grouped_until: object | None
    carried_by: int | None
    phone: str | None

    def __post_init__(self) -> None:
        if not isinstance(self.params, dict):
            self.params = _parameters(self.params)


#: A row's own columns; its body (:data:`_BODY_COLUMNS`) is read once per distinct body, not once per row: a
#: batch of 1,000 people usually shares one message (migration 0017), so the claim reads one text, not 1,000.
_COLUMNS = (_DELIVERY.c.id, _DELIVERY.c.subscriber_id, _DELIVERY.c.alert_id, _DELIVERY.c.thread_id,
            _DELIVERY.c.kind, _DELIVERY.c.status, _DELIVERY.c.attempts, _DELIVERY.c.message_id,
            type_coerce(_DELIVERY.c.grouped_until, String), _DELIVERY.c.carried_by, _SUBSCRIBER.c.phone)
_BODY_COLUMNS = (_MESSAGE.c.id, _MESSAGE.c.template_code,
                 # the JSON text as stored (SQLite): decoded once per text (:func:`_parameters`); PostgreSQL's
                 # driver hands a dict
                 type_coerce(_MESSAGE.c.params, String), _MESSAGE.c.text, _MESSAGE.c.fallback_kind)
#: The person is an outer join: they may be gone.
_FROM = _DELIVERY.outerjoin(_SUBSCRIBER, _SUBSCRIBER.c.id == _DELIVERY.c.subscriber_id)


def due_rows(connection: Connection, now: datetime, limit: int, *, lock: bool) -> list[OutboxRow]:
    """The first ``limit`` queued rows due at ``now``, highest priority first (then oldest). ``lock``:
    ``FOR UPDATE OF delivery SKIP LOCKED`` (PostgreSQL), so two workers never claim the same row."""
    if connection.dialect.name == "sqlite" and not lock:
        return due_rows_and_states(connection, now, limit)[0]
    stmt = (select(*_COLUMNS, _DELIVERY.c.priority).select_from(_FROM)
            .where(_DELIVERY.c.status == "queued",
                   or_(_DELIVERY.c.next_attempt_at.is_(None), _DELIVERY.c.next_attempt_at <= now))
            .order_by(_DELIVERY.c.priority.desc(), _DELIVERY.c.id).limit(limit))
    if lock:
        stmt = stmt.with_for_update(skip_locked=True, of=_DELIVERY)
        rows = list(connection.execute(stmt).all())
    else:
        rows = fetch_all(connection, stmt)  # one value on SQLite (see alerts.sqlutil.fetch_all): put in order here
        rows.sort(key=_priority_order)
    return _with_bodies(connection, [row[:-1] for row in rows])


#: :func:`due_rows_and_states`: :data:`_COLUMNS` and the priority of every due row in ONE JSON value (one step of
#: the driver, so one wait for the GIL; see alerts.sqlutil.fetch_all), ordered again in Python, and beside it
#: the states of their warnings (what :func:`warning_states` reads), in the same row of the same statement.
_DUE_SQLITE = (
    "WITH due AS MATERIALIZED (SELECT d.id AS id, d.subscriber_id AS subscriber_id, d.alert_id AS alert_id, "
    "d.thread_id AS thread_id, d.kind AS kind, d.status AS status, d.attempts AS attempts, "
    "d.message_id AS message_id, d.grouped_until AS grouped_until, d.carried_by AS carried_by, s.phone AS phone, "
    "d.priority AS priority FROM delivery AS d LEFT OUTER JOIN subscriber AS s ON s.id = d.subscriber_id "
    "WHERE d.status = 'queued' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?) "
    "ORDER BY d.priority DESC, d.id LIMIT ?) "
    "SELECT (SELECT json_group_array(json_array(id, subscriber_id, alert_id, thread_id, kind, status, attempts, "
    "message_id, grouped_until, carried_by, phone, priority)) FROM due), "
    "(SELECT json_group_array(json_array(id, end_time)) FROM alert WHERE id IN (SELECT alert_id FROM due)), "
    "(SELECT json_group_array(json_array(id, state, current_alert_id)) FROM alert_thread "
    "WHERE id IN (SELECT thread_id FROM due))")

#: (alert id -> :class:`AlertState`, thread id -> :class:`ThreadState`), as :func:`warning_states` returns them.
States = tuple[dict[int, Any], dict[int, Any]]


def due_rows_and_states(connection: Connection, now: datetime, limit: int) -> tuple[list[OutboxRow], States]:
    """SQLite: :func:`due_rows` (not locked) and the :func:`warning_states` of their warnings, in one statement
    run by the driver as text: building and compiling selects cost more Python per claim than SQLite's own work,
    and each statement waits for the GIL behind the request thread."""
    packed, alerts, threads = driver_rows(connection, _DUE_SQLITE, (sqlite_datetime(now), limit))[0]
    rows = orjson.loads(packed)
    rows.sort(key=_priority_order)
    return _with_bodies(connection, rows), _states(alerts, threads)  # the priority at the end is left out there


def _states(alerts: str, threads: str) -> States:
    return ({i: AlertState(i, _utc(end)) for i, end in orjson.loads(alerts)},
            {i: ThreadState(i, state, current) for i, state, current in orjson.loads(threads)})


def _priority_order(row: Any) -> tuple[int, int]:
    return -row[-1], row[0]


def rows_by_id(connection: Connection, ids: list[int]) -> list[OutboxRow]:
    """These rows as they are now, in the order of ``ids`` (a row deleted meanwhile is left out)."""
    if not ids:
        return []
    dialect = connection.dialect.name
    stmt = select(*_COLUMNS).select_from(_FROM).where(id_in(_DELIVERY.c.id, dialect))
    found = {r.id: r for r in _with_bodies(connection, fetch_all(connection, stmt, {"ids": id_list(ids, dialect)}))}
    return [found[i] for i in ids if i in found]


#: Bodies already read, per engine (one database): a body is never changed or deleted (alerts/models.py
#: DeliveryMessage), so what was read once stays true. Why: each statement a claim runs waits to take the GIL
#: back from the thread of the request in flight (profiled: ~25 ms for the one small body query of a claim).
_BODIES: weakref.WeakKeyDictionary[Engine, dict[int, tuple[Any, ...]]] = weakref.WeakKeyDictionary()
_BODIES_KEPT = 4096


def _with_bodies(connection: Connection, rows: list[Any]) -> list[OutboxRow]:
    """Rows of :data:`_COLUMNS` (and anything after them, left out) -> :class:`OutboxRow`, each with its body
    (read once; see :data:`_BODIES`)."""
    if not rows:
        return []
    known = _BODIES.setdefault(connection.engine, {})
    wanted = sorted({row[7] for row in rows} - known.keys())
    if wanted:
        if len(known) + len(wanted) > _BODIES_KEPT:
            known.clear()
        known.update({body[0]: tuple(body[1:]) for body in fetch_all(
            connection, select(*_BODY_COLUMNS).where(id_in(_MESSAGE.c.id, connection.dialect.name)),
            {"ids": id_list(wanted, connection.dialect.name)})})
    return [OutboxRow(*row[:7], *known[row[7]], *row[8:11]) for row in rows]


class AlertState(NamedTuple):
    id: int
    end_time: datetime | None


class ThreadState(NamedTuple):
    id: int
    state: str
    current_alert_id: int | None


_STATES_SQLITE = (
    "SELECT (SELECT json_group_array(json_array(id, end_time)) FROM alert "
    "WHERE id IN (SELECT value FROM json_each(?))), "
    "(SELECT json_group_array(json_array(id, state, current_alert_id)) FROM alert_thread "
    "WHERE id IN (SELECT value FROM json_each(?)))")


def _utc(stored: str | None) -> datetime | None:
    """A ``UTCDateTime`` as SQLite stores it (naive UTC text) -> an aware datetime, as the column type reads it."""
    if stored is None:
        return None
    value = datetime.fromisoformat(stored)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=64)
def _parameters(stored: str) -> dict[str, str]:
    """A row's template parameters from their JSON text; one dict shared by the rows with the same text (and by
    their outgoing messages: alerts/delivery/dispatch.py ``_messages``), so it is never changed in place."""
    return orjson.loads(stored)


def warning_states(connection: Connection, alert_ids: set[int], thread_ids: set[int]
                   ) -> tuple[dict[int, Any], dict[int, Any]]:
    """(alert id -> row with ``id, end_time``, thread id -> row with ``id, state, current_alert_id``): the few
    columns suppression needs, not the alerts' JSON bodies."""
    if connection.dialect.name == "sqlite":
        # both reads in one statement and one value, by the driver (a claim's statements each wait for the GIL
        # behind the request thread)
        return _states(*driver_rows(connection, _STATES_SQLITE, (
            orjson.dumps(sorted(alert_ids)).decode(), orjson.dumps(sorted(thread_ids)).decode()))[0])
    alerts = {row.id: row for row in connection.execute(
        select(_ALERT.c.id, _ALERT.c.end_time).where(_ALERT.c.id.in_(sorted(alert_ids))))}
    threads = {row.id: row for row in connection.execute(
        select(_THREAD.c.id, _THREAD.c.state, _THREAD.c.current_alert_id)
        .where(_THREAD.c.id.in_(sorted(thread_ids))))}
    return alerts, threads
