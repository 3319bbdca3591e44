"""Large id lists to and from PostgreSQL as one text value each, not a Python object per id.

Why: a national fan-out moves 100,000-id lists several times (the outbox's ids and groups, the people a catch-up
asks about, the people who already have a row). psycopg adapts a Python list element by element (77 ms for
100,000 ints, measured) and a result row by row through SQLAlchemy's result (about 1 us a row); the same ids as
one array literal or one comma-separated text cost a ``join`` (14 ms) or a numpy parse (a few ms).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import Text, cast, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select


def int_array(ids: np.ndarray | Iterable[int]) -> str:
    """PostgreSQL's text form of an integer array (``{1,2,3}``), for a parameter read as ``CAST(:p AS integer[])``."""
    values = ids.tolist() if isinstance(ids, np.ndarray) else ids
    return "{" + ",".join(map(str, values)) + "}"


def fetch_ids(connection: Connection, stmt: Select[Any], params: dict[str, Any] | None = None) -> np.ndarray:
    """The first column of ``stmt`` (integers, never NULL), as an int64 array in no guaranteed order. On PostgreSQL
    the database joins them into one text value (``string_agg``); elsewhere the rows are read as they come."""
    if connection.dialect.name != "postgresql":
        return np.fromiter((row[0] for row in connection.execute(stmt, params)), dtype=np.int64)
    inner = stmt.subquery()
    joined = connection.execute(select(func.string_agg(cast(list(inner.c)[0], Text), ",")).select_from(inner),
                                params).scalar_one()
    return ids_from_text(joined)


def ids_from_text(joined: str | None) -> np.ndarray:
    """Comma-separated integers (``string_agg``'s output) as an int64 array; None or empty: no ids."""
    if not joined:
        return np.empty(0, dtype=np.int64)
    return np.array(joined.split(","), dtype=np.int64)
