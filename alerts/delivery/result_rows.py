"""A page of delivery results in the outbox: one grouped read of the rows, one UPDATE for every row.

Why: collecting results was a round trip's worth of Python per row (a SQLAlchemy row fetched one at a time,
a dict per change, every value formatted again, every row priced). Here the database groups the page's rows by
what their ledger price depends on (a request's rows share all of it: fallback kind, provider, sending time,
text), so a page comes back as a handful of groups, each with its ids, and each group's text crosses once. The
final states go in one statement whose rows travel as one array (``UPDATE ... FROM json_each`` on SQLite,
``FROM unnest`` on PostgreSQL), each row bringing only what differs (its status, channel, code and message);
the finishing time is bound once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection

from alerts.db import sqlite_datetime
from alerts.sqlutil import driver_rows

#: Statuses a result never changes (a repeated or late result finds the row final and leaves it).
FINAL = ("delivered", "fallback_sent", "failed", "uncertain")
_NOT_FINAL = f"d.status NOT IN ({', '.join(repr(s) for s in FINAL)})"
_GROUPED = "m.fallback_kind, d.provider, d.sent_at, m.text"
#: The row and its message body (alerts/message_bodies.py): the body's text and fallback kind price the row.
_FROM = "delivery AS d JOIN delivery_message AS m ON m.id = d.message_id"
#: Up to this many kinds of outcome in a page, SQLite marks each kind in a statement of its own (see
#: :func:`mark_finished`); more kinds (many failure codes) go as one statement carrying each row's values.
SAME_OUTCOME_STATEMENTS = 3


@dataclass(frozen=True, slots=True)
class RowGroup:
    """What the ledger prices an outbox row by, shared by many rows (the recipients of one request)."""

    fallback_kind: str | None
    provider: str | None
    sent_at: datetime | None
    text: str


def unfinished(connection: Connection, ids: Sequence[int]) -> dict[int, RowGroup]:
    """Among ``ids``, the rows that exist and are not final yet, each with its group (one read).

    The message's text is read here and only here (the ledger's baseline is priced by its length), from the
    row's body in ``delivery_message``."""
    if not ids:
        return {}
    if connection.dialect.name == "postgresql":
        rows: Any = connection.execute(text(
            f"SELECT {_GROUPED}, array_agg(d.id) FROM {_FROM} WHERE d.id = ANY(CAST(:ids AS integer[])) "
            f"AND {_NOT_FINAL} GROUP BY {_GROUPED}"), {"ids": list(ids)}).all()
    else:
        rows = [(*row[:4], orjson.loads(row[4])) for row in driver_rows(connection, (
            f"SELECT {_GROUPED}, json_group_array(d.id) FROM {_FROM} WHERE d.id IN (SELECT value FROM json_each(?)) "
            f"AND {_NOT_FINAL} GROUP BY {_GROUPED}"), (orjson.dumps(list(ids)).decode(),))]
    found: dict[int, RowGroup] = {}
    for kind, provider, sent_at, body, members in rows:
        found.update(dict.fromkeys(members, RowGroup(kind, provider, _utc(sent_at), body or "")))
    return found


def _utc(value: str | datetime | None) -> datetime | None:
    """A stored time as :class:`~subscribers.sqltypes.UTCDateTime` reads it: the driver hands SQLite's DATETIME
    text (naive UTC), PostgreSQL an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def mark_finished(connection: Connection,
                  changes: Sequence[tuple[int, str, str | None, str | None, str | None]],
                  finished_at: datetime) -> None:
    """``(id, status, channel, result_code, result_message)`` for each row (ids distinct), all finished at
    ``finished_at``: one statement (on SQLite, one per kind of outcome while there are few kinds)."""
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
    driver = connection.connection.driver_connection
    finished = sqlite_datetime(finished_at)
    kinds: dict[tuple[str, str | None, str | None, str | None], list[int]] = {}
    for row_id, *outcome in changes:
        kinds.setdefault(tuple(outcome), []).append(row_id)  # type: ignore[arg-type]
    if len(kinds) <= SAME_OUTCOME_STATEMENTS:
        # a page's results mostly say the same (a thousand "delivered"): the values are bound once and only the
        # ids travel, so SQLite does not take five values out of a JSON array per row (2.1 ms a thousand rows
        # instead of 3.4)
        for (status, channel, code, message), ids in kinds.items():
            driver.execute(  # type: ignore[union-attr]
                "UPDATE delivery SET status = ?, channel = ?, result_code = ?, result_message = ?, finished_at = ? "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (status, channel, code, message, finished, orjson.dumps(ids).decode()))
        return
    driver.execute(  # type: ignore[union-attr]
        "UPDATE delivery SET status = j.value ->> 1, channel = j.value ->> 2, result_code = j.value ->> 3, "
        "result_message = j.value ->> 4, finished_at = ? FROM json_each(?) AS j WHERE delivery.id = j.value ->> 0",
        (finished, orjson.dumps(changes).decode()))
