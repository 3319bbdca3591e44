"""Reading millions of rows into numpy without holding them all as Python objects.

Building an index at national scale (10,000,000 subscribers, 22,000,000 zone rows) from ``fetchall`` would hold
every row as a tuple at once (gigabytes) and pay SQLAlchemy's Row objects on top (about 3x slower than the
driver's plain tuples). ``raw_chunks`` runs a Core query on the driver's own cursor and hands over one chunk of
plain tuples at a time, for the caller to turn into arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

T = TypeVar("T")


def raw_chunks(conn: Connection, query: Any, convert: Callable[[list[tuple[Any, ...]]], T],
               size: int = 500_000) -> Iterator[T]:
    """Run ``query`` (a Core select, its parameters rendered inline) on the raw DBAPI cursor of ``conn`` and
    yield ``convert(rows)`` for each chunk of at most ``size`` rows."""
    compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled))
        while rows := cursor.fetchmany(size):
            yield convert(rows)
    finally:
        cursor.close()
