"""subscribers/id_parts.py: an audience as disjoint sorted parts, against numpy's union of the same arrays."""

from __future__ import annotations

import numpy as np
import pytest

from subscribers.id_parts import IdParts


def _sorted_distinct(rng: np.random.Generator, n: int, high: int, dtype: type = np.int64) -> np.ndarray:
    return np.unique(rng.integers(1, high, n)).astype(dtype)


@pytest.mark.parametrize("seed", range(30))
def test_the_union_as_disjoint_sorted_parts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    high = int(rng.choice([50, 5_000, 10**7]))
    arrays = [_sorted_distinct(rng, int(rng.integers(0, n)), high, dtype)
              for n, dtype in zip(rng.choice([1, 10, 3_000, 60_000], 3), (np.int32, np.int64, np.int64), strict=True)]
    parts = IdParts.union(arrays)
    want = np.unique(np.concatenate([a.astype(np.int64) for a in arrays]))
    assert len(parts) == len(want)  # no id in two parts
    assert all(len(p) and np.all(p[1:] > p[:-1]) for p in parts.parts)
    got = np.sort(np.concatenate([p.astype(np.int64) for p in parts.parts])) if parts.parts else np.empty(0)
    assert np.array_equal(got, want)
    merged = parts.merged()
    assert merged.dtype == np.int64 and np.array_equal(merged, want)
    chunks = list(parts.chunks(1000))
    assert all(len(c) <= 1000 for c in chunks) and sum(len(c) for c in chunks) == len(want)
    wanted = rng.integers(1, high, 500)
    assert np.array_equal(parts.only(wanted).merged(), want[np.isin(want, wanted)])


def test_the_largest_array_is_handed_on_as_it_is() -> None:
    """A province's million zone subscribers (the zone index's read-only int32 array) are neither copied nor
    converted: only the few ids the others add are a part of their own."""
    zone_ids = np.arange(1, 200_001, 2, dtype=np.int32)
    zone_ids.flags.writeable = False
    outline = np.array([2, 3, 5, 400_001], dtype=np.int64)
    parts = IdParts.union([outline, zone_ids])
    assert parts.parts[0] is zone_ids
    assert parts.parts[1].tolist() == [2, 400_001]
    assert IdParts.union([zone_ids, zone_ids[:10].astype(np.int64)]).parts == (zone_ids,)  # nothing new: one part
    assert IdParts.union([]).merged().tolist() == [] and len(IdParts.union([np.empty(0, dtype=np.int64)])) == 0
