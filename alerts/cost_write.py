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


def insert_ledger(connection: Connection, priced: Sequence[Billable], rows: Sequence[tuple[int, int]],
                  prices: Prices, *, dry_run: bool, now: datetime) -> int:
    """The ledger rows of finished deliveries; returns how many were new.

    ``priced``: what the rows are priced by, one record per group of rows priced alike (a
    :class:`~alerts.costs.Billable` whose identity fields are not read); ``rows``: ``(delivery id, index into
    priced)`` for each delivery, in order. Each record is priced once; a row whose record is not billed (a
    failure) gets no ledger row, and each row's alert and person are read from its outbox row."""
    groups: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, record in enumerate(priced):
        row = ledger_row(record, prices, dry_run=dry_run, now=now) if record.status in BILLED_STATUSES else None
        if row is not None:
            groups.append(row)
            numbers.append(number)
    if not groups or not rows:
        return 0
    if connection.dialect.name == "postgresql":
        return _postgres(connection, groups, numbers, rows)
    return _sqlite(connection, groups, numbers, rows)


def _sqlite(connection: Connection, groups: list[dict[str, Any]], numbers: list[int],
            rows: Sequence[tuple[int, int]]) -> int:
    """One statement; CROSS JOIN keeps the packed rows as the outer loop (SQLite never reorders it), so they are
    inserted in order; a row whose group is not in the groups' table (not billed) joins nothing. The driver's
    count is the statement's own inserts (not the rollup triggers' writes)."""
    width = len(_GROUP_COLUMNS) + 1
    values = ", ".join(f"({', '.join('?' * width)})" for _ in groups)
    picked = ", ".join(f"g.column{i + 2}" for i in range(len(_GROUP_COLUMNS)))
    sql = (f"INSERT INTO cost_entry ({_INSERTED}) SELECT d.id, d.alert_id, d.subscriber_id, {picked} "
           f"FROM json_each(?) AS j CROSS JOIN delivery AS d CROSS JOIN (VALUES {values}) AS g "
           f"WHERE d.id = j.value ->> 0 AND g.column1 = j.value ->> 1 {_CONFLICT}")
    params: list[Any] = [orjson.dumps(rows).decode()]
    for number, group in zip(numbers, groups, strict=True):
        # the values SQLAlchemy would store: booleans as 0/1, times as DATETIME text
        params += [number, *(_sqlite_value(group[c]) for c in _GROUP_COLUMNS)]
    cursor = connection.connection.driver_connection.execute(sql, params)  # type: ignore[union-attr]
    return int(cursor.rowcount)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return sqlite_datetime(value)
    return value


def _postgres(connection: Connection, groups: list[dict[str, Any]], numbers: list[int],
              rows: Sequence[tuple[int, int]]) -> int:
    """One statement: the rows as two arrays (``unnest ... WITH ORDINALITY`` keeps their order), the groups as
    arrays of their columns; the count comes back from ``RETURNING`` in the same statement (one statement, so
    the rollup's statement trigger appends one delta per group)."""
    sql = text(
        "WITH g AS (SELECT * FROM unnest(CAST(:month AS text[]), CAST(:channel AS text[]), "
        "CAST(:price_krw AS float8[]), CAST(:baseline_channel AS text[]), CAST(:baseline_krw AS float8[]), "
        "CAST(:dry_run AS boolean[]), CAST(:created_at AS timestamptz[]), CAST(:price_e4 AS bigint[]), "
        "CAST(:baseline_e4 AS bigint[]), CAST(:short_saving_e4 AS bigint[]), CAST(:status AS text[]), "
        "CAST(:provider AS text[]), CAST(:numbers AS integer[])) AS g(" + ", ".join(_GROUP_COLUMNS) + ", gi)), "
        f"ins AS (INSERT INTO cost_entry ({_INSERTED}) "
        "SELECT d.id, d.alert_id, d.subscriber_id, " + ", ".join(f"g.{c}" for c in _GROUP_COLUMNS) + " "
        "FROM unnest(CAST(:ids AS integer[]), CAST(:groups AS integer[])) WITH ORDINALITY AS t(id, gi, n) "
        f"JOIN delivery AS d ON d.id = t.id JOIN g ON g.gi = t.gi ORDER BY t.n {_CONFLICT} RETURNING 1) "
        "SELECT count(*) FROM ins")
    params: dict[str, Any] = {c: [g[c] for g in groups] for c in _GROUP_COLUMNS}
    params.update(numbers=numbers, ids=[r[0] for r in rows], groups=[r[1] for r in rows])
    return int(connection.execute(sql, params).scalar_one())
