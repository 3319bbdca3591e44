"""Id lists to and from PostgreSQL as text (subscribers/id_arrays.py): the same ids whatever their array's shape."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text

from alerts.db import make_engine
from subscribers.id_arrays import fetch_ids, ids_from_text, int_array


@pytest.mark.parametrize("ids", [
    np.array([3, 1, 2], dtype=np.int64),
    np.array([7, 2_147_483_647, 0], dtype=np.int32),
    np.arange(20, dtype=np.int64)[::3],  # not contiguous
    np.arange(12, dtype=np.int64).reshape(3, 4)[:, 1],
    np.empty(0, dtype=np.int64),
    [5, 4, 9],
    (i * i for i in range(4)),
    [],
])
def test_int_array_is_postgres_array_text(ids: object) -> None:
    values = list(ids.tolist() if isinstance(ids, np.ndarray) else ids)  # type: ignore[attr-defined]
    again = ids if not hasattr(ids, "__next__") else iter(values)
    assert int_array(again) == "{" + ",".join(str(v) for v in values) + "}"  # type: ignore[arg-type]


def test_ids_from_text_round_trip_and_refusals() -> None:
    ids = np.array([1, 22, 333, 4_000_000_000], dtype=np.int64)
    assert ids_from_text(int_array(ids)[1:-1]).tolist() == ids.tolist()
    assert ids_from_text(None).dtype == np.int64 and len(ids_from_text("")) == 0
    assert ids_from_text("42").tolist() == [42]
    for bad in ("1,2,x", "1,,2", "1;2", "1,2,", "a"):
        with pytest.raises(ValueError, match="not a comma-separated list of integers"):
            ids_from_text(bad)


def test_fetch_ids_on_both_engines(db_url: str) -> None:
    engine = make_engine(db_url)
    table = Table("ids_probe", MetaData(), Column("v", Integer, nullable=False))
    try:
        table.create(engine)
        values = [9, 1, 5, 1, 2_000_000_000]
        with engine.begin() as conn:
            conn.execute(insert(table), [{"v": v} for v in values])
            got = fetch_ids(conn, select(table.c.v))
            assert got.dtype == np.int64 and sorted(got.tolist()) == sorted(values)
            assert len(fetch_ids(conn, select(table.c.v).where(table.c.v < 0))) == 0
            if engine.dialect.name == "postgresql":  # the array text goes back in as the same ids
                back = conn.execute(text("SELECT array_length(CAST(:p AS integer[]), 1), "
                                         "(CAST(:p AS integer[]))[5]"), {"p": int_array(got)}).one()
                assert tuple(back) == (5, int(got[4]))
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()
