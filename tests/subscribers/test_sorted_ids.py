"""subscribers/sorted_ids.py: sorted distinct arrays, against numpy's own np.unique / np.union1d."""

from __future__ import annotations

import numpy as np
import pytest

from subscribers.sorted_ids import sorted_distinct, sorted_union


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_sorted_distinct_keeps_the_dtype_and_takes_empty_arrays(dtype: type) -> None:
    values = np.array([5, 1, 5, 3, 1], dtype=dtype)
    got = sorted_distinct(values)
    assert got.dtype == dtype and got.tolist() == [1, 3, 5]
    assert sorted_distinct(np.empty(0, dtype=dtype)).tolist() == []


@pytest.mark.parametrize("seed", range(20))
def test_sorted_union_is_union1d(seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = np.unique(rng.integers(0, 1000, int(rng.integers(1, 500)))).astype(np.int64)
    new = np.unique(rng.integers(-10, 1010, int(rng.integers(0, 200)))).astype(np.int64)
    assert np.array_equal(sorted_union(base, new), np.union1d(base, new))
