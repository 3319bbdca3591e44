"""Writing a page of ledger rows at once: each price group priced once, one INSERT ... SELECT for every row.

Why: collecting 20,000 delivery results spent more on the ledger than on the wire (profiled: 0.29 s pricing
each row through :func:`alerts.costs.ledger_row`, 0.44 s in the driver's executemany). The rows of a page differ
only in the delivery (its id, alert and person) and in a handful of price groups: what the price depends on
(status, channel, fallback kind, provider, when it went out, its text, when it finished) is shared by every
recipient of one request. So each group is priced once, by :func:`~alerts.costs.ledger_row` itself on the
group's first row (one definition of the price), and the database makes the rows: the deliveries travel as one
packed array (JSON on SQLite, integer arrays on PostgreSQL), each naming its group, the groups as a small table
joined to it (the same shape as :mod:`alerts.outbox_write`); each row's alert and person come from its outbox row.

The rows are those :func:`alerts.costs.record_costs` writes (same columns, the same stored text for times and
booleans), in the order given, and a delivery already in the ledger is left alone (``ON CONFLICT DO
NOTHING``): nothing is billed twice. The rollup triggers (migration 0006) see ordinary inserts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection

from alerts.config import Prices
from alerts.costs import BILLED_STATUSES, Billable, ledger_row
from alerts.db import sqlite_datetime

#: The columns every row of a group shares, in the order of the groups' table.
_GROUP_COLUMNS = ("month", "channel", "price_krw", "baseline_channel", "baseline_krw", "dry_run", "created_at",
                  "price_e4", "baseline_e4", "short_saving_e4", "status", "provider")
_INSERTED = ", ".join(("delivery_id", "alert_id", "subscriber_id", *_GROUP_COLUMNS))
_CONFLICT = "ON CONFLICT (delivery_id) DO NOTHING"


def price_groups(rows: Sequence[tuple[int, Billable]], prices: Prices, *, dry_run: bool, now: datetime
                 ) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    """(the groups' ledger values, one ``(delivery id, group)`` per billed row), in the order given.

    Each row is its delivery's id and what it is priced by (a :class:`~alerts.costs.Billable` whose identity
    fields are not read): rows priced alike share that object, and each object is priced once."""
    index: dict[int, int | None] = {}
    groups: list[dict[str, Any]] = []
    members: list[tuple[int, int]] = []
    for delivery_id, priced in rows:
        group = index.get(id(priced), -1)
        if group == -1:
            row = ledger_row(priced, prices, dry_run=dry_run, now=now) if priced.status in BILLED_STATUSES else None
            group = index[id(priced)] = None if row is None else len(groups)
            if row is not None:
                groups.append(row)
        if group is not None:
            members.append((delivery_id, group))
    return groups, members


def insert_ledger(connection: Connection, rows: Sequence[tuple[int, Billable]], prices: Prices, *, dry_run: bool,
                  now: datetime) -> int:
    """The ledger rows of these finished deliveries (``(id, what it is priced by)``, see :func:`price_groups`):
    the billed ones, each delivery's alert and person read from its outbox row; returns how many were new."""
    groups, members = price_groups(rows, prices, dry_run=dry_run, now=now)
    if not members:
        return 0
    if connection.dialect.name == "postgresql":
        return _postgres(connection, groups, members)
    return _sqlite(connection, groups, members)


def _sqlite(connection: Connection, groups: list[dict[str, Any]], members: list[tuple[int, int]]) -> int:
    """One statement; CROSS JOIN keeps the packed rows as the outer loop (SQLite never reorders it), so they are
    inserted in order. The driver's count is the statement's own inserts (not the rollup triggers' writes)."""
    width = len(_GROUP_COLUMNS) + 1
    values = ", ".join(f"({', '.join('?' * width)})" for _ in groups)
    picked = ", ".join(f"g.column{i + 2}" for i in range(len(_GROUP_COLUMNS)))
    sql = (f"INSERT INTO cost_entry ({_INSERTED}) SELECT d.id, d.alert_id, d.subscriber_id, {picked} "
           f"FROM json_each(?) AS j CROSS JOIN delivery AS d CROSS JOIN (VALUES {values}) AS g "
           f"WHERE d.id = j.value ->> 0 AND g.column1 = j.value ->> 1 {_CONFLICT}")
    params: list[Any] = [orjson.dumps(members).decode()]
    for i, group in enumerate(groups):
        # the values SQLAlchemy would store: booleans as 0/1, times as DATETIME text
        params += [i, *(_sqlite_value(group[c]) for c in _GROUP_COLUMNS)]
    cursor = connection.connection.driver_connection.execute(sql, params)  # type: ignore[union-attr]
    return int(cursor.rowcount)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return sqlite_datetime(value)
    return value


def _postgres(connection: Connection, groups: list[dict[str, Any]], members: list[tuple[int, int]]) -> int:
    """One statement: the rows as two arrays (``unnest ... WITH ORDINALITY`` keeps their order), the groups as
    arrays of their columns; the count comes back from ``RETURNING`` in the same statement (one statement, so
    the rollup's statement trigger appends one delta per group)."""
    sql = text(
        "WITH g AS (SELECT * FROM unnest(CAST(:month AS text[]), CAST(:channel AS text[]), "
        "CAST(:price_krw AS float8[]), CAST(:baseline_channel AS text[]), CAST(:baseline_krw AS float8[]), "
        "CAST(:dry_run AS boolean[]), CAST(:created_at AS timestamptz[]), CAST(:price_e4 AS bigint[]), "
        "CAST(:baseline_e4 AS bigint[]), CAST(:short_saving_e4 AS bigint[]), CAST(:status AS text[]), "
        "CAST(:provider AS text[])) WITH ORDINALITY AS g(" + ", ".join(_GROUP_COLUMNS) + ", gi)), "
        f"ins AS (INSERT INTO cost_entry ({_INSERTED}) "
        "SELECT d.id, d.alert_id, d.subscriber_id, " + ", ".join(f"g.{c}" for c in _GROUP_COLUMNS) + " "
        "FROM unnest(CAST(:ids AS integer[]), CAST(:groups AS integer[])) WITH ORDINALITY AS t(id, gi, n) "
        f"JOIN delivery AS d ON d.id = t.id JOIN g ON g.gi = t.gi ORDER BY t.n {_CONFLICT} RETURNING 1) "
        "SELECT count(*) FROM ins")
    params: dict[str, Any] = {c: [g[c] for g in groups] for c in _GROUP_COLUMNS}
    params.update(ids=[m[0] for m in members], groups=[m[1] + 1 for m in members])
    return int(connection.execute(sql, params).scalar_one())
