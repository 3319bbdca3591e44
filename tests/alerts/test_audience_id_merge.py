"""_Found.id_array: the sorted distinct union of the audience's id arrays, merged by insertion into the largest."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.audience import _Found


def _sorted_distinct(rng: np.random.Generator, n: int, high: int) -> np.ndarray:
    return np.unique(rng.integers(1, high, n)).astype(np.int64)


@pytest.mark.parametrize("seed", range(40))
def test_the_union_of_every_way_of_being_reached(seed: int) -> None:
    rng = np.random.default_rng(seed)
    high = int(rng.choice([50, 5_000, 10**7]))  # dense (many shared ids) to sparse
    parts = [_sorted_distinct(rng, int(rng.integers(0, n)), high) for n in rng.choice([1, 10, 3_000, 60_000], 3)]
    if seed % 3 == 0:
        parts[0].flags.writeable = False  # the zone index's arrays are read-only
    aboard = set(rng.integers(1, high, int(rng.integers(0, 20))).tolist()) if seed % 2 else set()
    got = _Found(ids=parts, at_sea=False, aboard=aboard).id_array()
    want = np.unique(np.concatenate([*parts, np.fromiter(aboard, dtype=np.int64, count=len(aboard))]))
    assert got.dtype == np.int64 and np.array_equal(got, want)


def test_ids_before_after_and_inside_the_largest_array() -> None:
    base = np.array([10, 20, 30], dtype=np.int64)
    got = _Found(ids=[base, np.array([1, 10, 25, 40], dtype=np.int64)], at_sea=False, aboard={5, 30, 50}).id_array()
    assert got.tolist() == [1, 5, 10, 20, 25, 30, 40, 50]
    assert _Found(ids=[base, base[:1]], at_sea=False).id_array().tolist() == [10, 20, 30]
    assert _Found(ids=[], at_sea=False).id_array().tolist() == []


@pytest.mark.parametrize("seed", range(20))
def test_the_parts_the_fan_out_reads_are_the_merged_ids(seed: int) -> None:
    """_Found.id_parts (what recipient_groups reads): the same people as id_array, the largest array untouched."""
    rng = np.random.default_rng(seed)
    zone_ids = np.unique(rng.integers(1, 10**6, 50_000)).astype(np.int32)  # as the zone index hands them out
    zone_ids.flags.writeable = False
    others = [_sorted_distinct(rng, int(n), 10**6) for n in rng.integers(0, 3_000, 2)]
    aboard = set(rng.integers(1, 10**6, 5).tolist()) if seed % 2 else set()
    found = _Found(ids=[zone_ids, *others], at_sea=False, aboard=aboard)
    parts = found.id_parts()
    assert parts.parts[0] is zone_ids
    assert len(parts) == len(found.id_array()) and np.array_equal(parts.merged(), found.id_array())


@pytest.mark.parametrize("seed", range(20))
def test_the_zone_answer_tells_the_new_ids_apart_as_a_search_would(seed: int) -> None:
    """With the zone index's answer (its snapshot's bitmap and the people changed since), the parts are the same."""
    from subscribers.id_bitmaps import bitmap_of
    from subscribers.zone_answer import ZoneAnswer

    rng = np.random.default_rng(seed)
    snapshot = np.unique(rng.integers(1, 10**5, 20_000)).astype(np.int32)
    changed = np.unique(rng.integers(1, 10**5, int(rng.integers(0, 300))))
    rechecked = changed[rng.random(len(changed)) < 0.5]  # of the changed people, those in the answer now
    ids = np.union1d(np.setdiff1d(snapshot, changed), rechecked).astype(np.int32)
    zone = ZoneAnswer(ids, bitmap_of(snapshot), changed, rechecked)
    others = [_sorted_distinct(rng, 3_000, 10**5), np.union1d(changed[::2], [10**6])]
    got = _Found(ids=[ids, *others], at_sea=False, zone=zone).id_parts()
    want = _Found(ids=[ids, *others], at_sea=False).id_parts()
    assert got.parts[0] is ids and len(got.parts) == len(want.parts)
    assert all(np.array_equal(a, b) for a, b in zip(got.parts, want.parts, strict=True))
