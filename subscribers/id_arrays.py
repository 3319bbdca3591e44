"""Large id lists to and from PostgreSQL as one text value each, not a Python object per id.

Why: a national fan-out moves 100,000-id lists several times (the outbox's ids and groups, the people a catch-up
asks about, the people who already have a row). psycopg adapts a Python list element by element (77 ms for
100,000 ints, measured) and a result row by row through SQLAlchemy's result (about 1 us a row); the same ids as
one array literal or one comma-separated text cost far less. Both ways go through C: the text is written by orjson
(its numpy support: 0.34 ms for 100,000 ids against 13.5 ms for ``",".join(map(str, ...))``) and read by numpy's
text parser (1.3 ms against 9.7 ms for ``split`` and an array of strings; measured on this machine), and a first
match after an import moves six such lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Text, cast, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select


def int_array(ids: np.ndarray | Iterable[int]) -> str:
    """PostgreSQL's text form of an integer array (``{1,2,3}``), for a parameter read as ``CAST(:p AS integer[])``."""
    values = np.ascontiguousarray(ids, dtype=np.int64) if isinstance(ids, np.ndarray) else [int(i) for i in ids]
    # orjson writes ``[1,2,3]``: the same digits between other brackets
    return "{" + orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode() + "}"


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
    """Comma-separated integers (``string_agg``'s output) as an int64 array; None or empty: no ids. Anything else
    raises ValueError (numpy's parser stops at what is not an integer: the count is checked too)."""
    if not joined:
        return np.empty(0, dtype=np.int64)
    try:
        ids = np.fromstring(joined, dtype=np.int64, sep=",")
    except ValueError:
        ids = None
    if ids is None or len(ids) != joined.count(",") + 1:
        raise ValueError(f"not a comma-separated list of integers: {joined[:60]!r}")
    return ids
