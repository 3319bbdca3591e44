"""subscribers/sorted_ids.py: sorted distinct arrays, against numpy's own np.unique / np.union1d."""

from __future__ import annotations

import numpy as np
import pytest

from subscribers.sorted_ids import distinct_ids, merge_disjoint, missing_from, sorted_distinct


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_sorted_distinct_keeps_the_dtype_and_takes_empty_arrays(dtype: type) -> None:
    values = np.array([5, 1, 5, 3, 1], dtype=dtype)
    got = sorted_distinct(values)
    assert got.dtype == dtype and got.tolist() == [1, 3, 5]
    assert sorted_distinct(np.empty(0, dtype=dtype)).tolist() == []


def test_distinct_ids_takes_any_ids_as_sorted_int64() -> None:
    values = [7, 2, 7, 9, 2]
    for ids in (np.array(values, dtype=np.int32), values, set(values), (v for v in values), np.empty(0, np.int32)):
        got = distinct_ids(ids)
        assert got.dtype == np.int64
        assert got.tolist() == ([] if isinstance(ids, np.ndarray) and not len(ids) else [2, 7, 9])


@pytest.mark.parametrize("seed", range(20))
def test_missing_then_merged_is_union1d(seed: int) -> None:
    """What IdParts does: the new ids the base lacks, then one merge, is the union."""
    rng = np.random.default_rng(seed)
    base = np.unique(rng.integers(0, 1000, int(rng.integers(1, 500)))).astype(np.int64)
    new = np.unique(rng.integers(-10, 1010, int(rng.integers(0, 200)))).astype(np.int64)
    assert np.array_equal(merge_disjoint(base, missing_from(base, new)), np.union1d(base, new))


@pytest.mark.parametrize("seed", range(20))
def test_missing_from_is_setdiff1d_whatever_the_dtypes(seed: int) -> None:
    """The zone index's int32 ids against an answer's int64 ids: the answer's ids ``base`` lacks, in their dtype."""
    rng = np.random.default_rng(seed)
    base = np.unique(rng.integers(0, 2000, int(rng.integers(0, 800)))).astype(np.int32)
    base.flags.writeable = False
    values = np.unique(rng.integers(-10, 2010, int(rng.integers(0, 300)))).astype(np.int64)
    got = missing_from(base, values)
    assert got.dtype == np.int64 and np.array_equal(got, np.setdiff1d(values, base))
    big = np.array([2**31 + 5], dtype=np.int64)  # beyond int32: still answered
    assert missing_from(np.array([1, 2], dtype=np.int32), big).tolist() == [2**31 + 5]


@pytest.mark.parametrize("seed", range(20))
def test_merge_disjoint_is_one_sorted_int64_array(seed: int) -> None:
    rng = np.random.default_rng(seed)
    every = rng.permutation(np.arange(1, 3000))[:int(rng.integers(1, 2999))]
    cut = int(rng.integers(0, len(every)))
    base, new = np.sort(every[cut:]).astype(np.int32), np.sort(every[:cut]).astype(np.int64)
    got = merge_disjoint(base, new)
    assert got.dtype == np.int64 and np.array_equal(got, np.sort(every))


@pytest.mark.parametrize("seed", range(10))
def test_sorted_distinct_of_sorted_runs_is_unique(seed: int) -> None:
    rng = np.random.default_rng(seed)
    runs = [np.unique(rng.integers(0, 500, int(rng.integers(0, 200)))) for _ in range(int(rng.integers(1, 16)))]
    values = np.concatenate(runs)
    assert np.array_equal(sorted_distinct(values, runs=True), np.unique(values))
