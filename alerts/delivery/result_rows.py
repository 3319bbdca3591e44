"""A page of delivery results in the outbox: one read of the rows' states, one UPDATE for every row.

Why: collecting results was a round trip's worth of Python per row (a SQLAlchemy row fetched one at a time,
a dict per change, every value formatted again). Here the rows' states come back in one packed read
(:func:`alerts.sqlutil.fetch_all`), and the final states go in one statement whose rows travel as one array
(``UPDATE ... FROM json_each`` on SQLite, ``FROM unnest`` on PostgreSQL), each row bringing only what differs
(its status, channel, code and message); the finishing time is bound once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Table, select, text
from sqlalchemy.engine import Connection

from alerts.db import sqlite_datetime
from alerts.models import Delivery
from alerts.sqlutil import fetch_all, id_in, id_list

_DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class RowState:
    """What a result needs of its outbox row: whether it is final already, and what the ledger prices by."""

    status: str
    fallback_kind: str | None
    sent_at: datetime | None
    provider: str | None
    alert_id: int | None
    subscriber_id: int | None
    text: str


def read_states(connection: Connection, ids: Sequence[int]) -> dict[int, RowState]:
    """The rows that still exist among ``ids``, by id, in one read.

    The message's text is read here and only here (the ledger's baseline is priced by its length): if the
    body moves to a table of its own, this select is the one place to join it."""
    if not ids:
        return {}
    dialect = connection.dialect.name
    stmt = (select(_DELIVERY.c.id, _DELIVERY.c.status, _DELIVERY.c.fallback_kind, _DELIVERY.c.sent_at,
                   _DELIVERY.c.provider, _DELIVERY.c.alert_id, _DELIVERY.c.subscriber_id, _DELIVERY.c.text)
            .where(id_in(_DELIVERY.c.id, dialect)))
    rows = fetch_all(connection, stmt, {"ids": id_list(list(ids), dialect)})
    times: dict[Any, datetime | None] = {None: None}  # a request's rows share their sending time: parsed once
    states: dict[int, RowState] = {}
    for row_id, status, kind, sent_at, provider, alert_id, subscriber_id, body in rows:
        when = times.get(sent_at)
        if when is None and sent_at is not None:
            when = times[sent_at] = _utc(sent_at)
        states[row_id] = RowState(status, kind, when, provider, alert_id, subscriber_id, body or "")
    return states


def _utc(value: str | datetime) -> datetime:
    """A stored time as :class:`~subscribers.sqltypes.UTCDateTime` reads it: SQLite's packed read hands the
    stored DATETIME text (naive UTC), PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def mark_finished(connection: Connection,
                  changes: Sequence[tuple[int, str, str | None, str | None, str | None]],
                  finished_at: datetime) -> None:
    """``(id, status, channel, result_code, result_message)`` for each row (ids distinct), all finished at
    ``finished_at``: one statement."""
    if not changes:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(text(
            "UPDATE delivery AS d SET status = u.status, channel = u.channel, result_code = u.result_code, "
            "result_message = u.result_message, finished_at = :finished_at "
            "FROM unnest(CAST(:ids AS integer[]), CAST(:statuses AS text[]), CAST(:channels AS text[]), "
            "CAST(:codes AS text[]), CAST(:messages AS text[])) AS u(id, status, channel, result_code, "
            "result_message) WHERE d.id = u.id"),
            {"ids": [c[0] for c in changes], "statuses": [c[1] for c in changes],
             "channels": [c[2] for c in changes], "codes": [c[3] for c in changes],
             "messages": [c[4] for c in changes], "finished_at": finished_at})
        return
    connection.connection.driver_connection.execute(  # type: ignore[union-attr]
        "UPDATE delivery SET status = j.value ->> 1, channel = j.value ->> 2, result_code = j.value ->> 3, "
        "result_message = j.value ->> 4, finished_at = ? FROM json_each(?) AS j WHERE delivery.id = j.value ->> 0",
        (sqlite_datetime(finished_at), orjson.dumps(changes).decode()))
