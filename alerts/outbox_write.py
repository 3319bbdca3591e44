"""Writing a fan-out's outbox a group at a time: one INSERT ... SELECT for every person of a warning version.

Why: the rows of one version differ only in the person (and, between groups, in kind, language and hold time):
everything else is the same text, the same parameters, the same priority. Building a Python row per person and
handing 100,000 of them to the driver was most of the outbox write (profiled: 1.5 s of 3.6 s for 100,000
people on SQLite). Here the database makes the rows: the ids travel as one packed array (a JSON array on
SQLite, an integer array on PostgreSQL), each element naming the person and their group, and the few groups
travel as a small table joined to it.

Each group's message body is stored once (alerts/message_bodies.py: found by its digest, so a fan-out run again
or a second group with the same text shares it) and the rows carry only its id. The rows are the same as
:func:`alerts.sqlutil.insert_ignore` writes (same columns, the same stored text for the times), in subscriber
order, and a person who already has a row for this version is left
alone (``ON CONFLICT DO NOTHING``), so a fan-out that is run again never queues twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from alerts.db import sqlite_datetime
from alerts.message_bodies import message_ids
from subscribers.id_arrays import int_array

log = logging.getLogger("alimcast.outbox")

_COLUMNS = ("alert_id, thread_id, subscriber_id, kind, priority, status, message_id, attempts, created_at, "
            "next_attempt_at, reminder_seq")
#: The key that makes a second row for a person and a version impossible (and ``ON CONFLICT`` skip it).
UNIQUE_KEY = "uq_delivery_alert_subscriber"
_CONFLICT = "ON CONFLICT (alert_id, subscriber_id, reminder_seq) DO NOTHING"


@dataclass(slots=True)
class RowGroup:
    """People whose outbox rows are the same but for the person. ``ids``: sorted subscriber ids."""

    ids: np.ndarray
    kind: str
    template_code: str
    params: dict[str, str]
    text: str
    fallback_kind: str
    next_attempt_at: datetime | None


def insert_groups(connection: Connection, groups: list[RowGroup], *, alert_id: int, thread_id: int,
                  priority: int, created_at: datetime) -> int:
    """Queue every group's people for this version, in subscriber order; returns how many rows were new."""
    groups = [g for g in groups if len(g.ids)]
    if not groups:
        return 0
    ids = np.concatenate([g.ids for g in groups]).astype(np.int64, copy=False)
    group_of = np.concatenate([np.full(len(g.ids), i, dtype=np.int64) for i, g in enumerate(groups)])
    order = np.argsort(ids, kind="stable")
    bodies = message_ids(connection, [{"template_code": g.template_code, "params": g.params, "text": g.text,
                                       "fallback_kind": g.fallback_kind} for g in groups])
    if connection.dialect.name == "postgresql":
        return _postgres(connection, groups, bodies, ids[order], group_of[order], alert_id, thread_id, priority,
                         created_at)
    return _sqlite(connection, groups, bodies, ids[order] * len(groups) + group_of[order], alert_id, thread_id,
                   priority, created_at)


def _sqlite(connection: Connection, groups: list[RowGroup], bodies: list[int], packed: np.ndarray, alert_id: int,
            thread_id: int, priority: int, created_at: datetime) -> int:
    """One statement: ``packed`` holds ``subscriber_id * len(groups) + group`` in subscriber order; the groups
    are a VALUES table (the statement starts with INSERT, so the driver counts what it inserted). CROSS JOIN
    keeps the ids' array as the outer loop (SQLite never reorders it), so the rows are inserted, and numbered,
    in subscriber order."""
    values = ", ".join("(?, ?, ?, ?)" for _ in groups)
    # the VALUES columns: column1 the group's number, then kind, message body, hold
    sql = (f"INSERT INTO delivery ({_COLUMNS}) "
           "SELECT ?, ?, j.value / ?, g.column2, ?, 'queued', g.column3, 0, ?, "
           f"g.column4, 0 FROM json_each(?) AS j CROSS JOIN (VALUES {values}) AS g ON g.column1 = j.value % ? "
           f"WHERE true {_CONFLICT}")
    params: list[Any] = [alert_id, thread_id, len(groups), priority, sqlite_datetime(created_at),
                         orjson.dumps(packed, option=orjson.OPT_SERIALIZE_NUMPY).decode()]
    for i, (group, body) in enumerate(zip(groups, bodies, strict=True)):
        params += [i, group.kind, body, sqlite_datetime(group.next_attempt_at)]
    params.append(len(groups))
    cursor = connection.connection.driver_connection.execute(sql, params)  # type: ignore[union-attr]
    return int(cursor.rowcount)


def _postgres(connection: Connection, groups: list[RowGroup], bodies: list[int], ids: np.ndarray,
              group_of: np.ndarray, alert_id: int, thread_id: int, priority: int, created_at: datetime) -> int:
    """One plain ``INSERT ... SELECT``: the ids and their groups as two arrays (``unnest ... WITH ORDINALITY``
    keeps their order, and the planner knows it: no sort), each row's group columns read from the groups' small
    arrays by subscript (no join), the count from the driver's row count (no ``RETURNING`` kept per row).
    Measured against the former CTE (a join of the groups, ``RETURNING 1`` and ``count(*)``): about a tenth of
    the statement's time for 100,000 rows. The two long arrays travel as text (:func:`int_array`).

    A version's first write for these people (no row of its alert in their range of ids yet: the usual case,
    also for the rest of a warning whose first batch went ahead) goes without ``ON CONFLICT``, in a savepoint:
    with it, every row is a speculative insertion into the unique index (PostgreSQL inserts the row, then
    checks the key, and takes the row back on a conflict), measured at 0.90 s of server time against 0.75 s for
    100,000 rows. Should another writer have queued one of these people meanwhile (a vessel's follower brought
    in by AIS, another worker's match of the same version), the unique key refuses the plain insert (it waits
    for that writer's transaction first, so it never misses an uncommitted row), the savepoint is rolled back
    and the rows are written again with ``ON CONFLICT DO NOTHING``: what is stored is the same either way."""
    sql = (f"INSERT INTO delivery ({_COLUMNS}) "
           "SELECT :alert_id, :thread_id, t.sid, (CAST(:kinds AS text[]))[t.gi], :priority, 'queued', "
           "(CAST(:bodies AS integer[]))[t.gi], 0, :created_at, (CAST(:holds AS timestamptz[]))[t.gi], 0 "
           "FROM unnest(CAST(:ids AS integer[]), CAST(:groups AS integer[])) WITH ORDINALITY AS t(sid, gi, n) "
           "ORDER BY t.n")
    params = {
        "kinds": [g.kind for g in groups], "bodies": bodies, "holds": [g.next_attempt_at for g in groups],
        "alert_id": alert_id, "thread_id": thread_id, "priority": priority, "created_at": created_at,
        "ids": int_array(ids), "groups": int_array(group_of + 1)}
    # only where this write could collide: a big warning's first batch is committed ahead of the rest (the
    # dispatch loop's early hand-over, alerts/fanout.py), and the rest are other people, so it still goes plain
    first = connection.execute(text(
        "SELECT NOT EXISTS (SELECT 1 FROM delivery WHERE alert_id = :alert_id AND subscriber_id BETWEEN :lo AND :hi "
        "AND reminder_seq = 0)"), {"alert_id": alert_id, "lo": int(ids[0]), "hi": int(ids[-1])}).scalar_one()
    if first:
        try:
            with connection.begin_nested():
                return int(connection.execute(text(sql), params).rowcount)  # type: ignore[attr-defined]
        except IntegrityError as exc:
            if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) != UNIQUE_KEY:
                raise
            log.info("outbox: alert %s gained rows during its write; writing again, leaving those", alert_id)
    result = connection.execute(text(f"{sql} {_CONFLICT}"), params)
    return int(result.rowcount)  # type: ignore[attr-defined]
