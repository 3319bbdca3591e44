"""The compact ZoneIndex (int32 slices, precomputed group unions, chunked build) answers what SQL and plain sets do.

And the live index still sees every change without a rebuild when the answer is a precomputed group's array
(patched in one copy, never written in place).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from alerts.db import make_engine, upgrade
from subscribers import live_zone_index, matching, store, zones
from subscribers.live_zone_index import LiveZoneIndex
from subscribers.matching import ZoneIndex, alert_leaves, matching_ids_sql

LEAVES = [z.code for z in zones.list_zones() if zones.is_leaf(z.code)]
GROUPS = [z.code for z in zones.list_zones() if not zones.is_leaf(z.code)]
NAMES = ["서해중부먼바다", "제주도남쪽먼바다", "서해", "파주시"]


def reference(by_zone: dict[str, np.ndarray], codes: list[str]) -> np.ndarray:
    found: set[int] = set()
    for leaf in alert_leaves(codes):
        found.update(by_zone.get(leaf, np.zeros(0, dtype=np.int64)).tolist())
    return np.array(sorted(found), dtype=np.int64)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), people=st.integers(0, 3000),
       max_id=st.sampled_from([3000, 200_000, 2**31 + 10]), alerts=st.integers(1, 12))
def test_lookup_equals_a_plain_set_union(seed: int, people: int, max_id: int, alerts: int) -> None:
    """Dense ids (bitmap union), sparse ids (sorted union) and ids beyond int32 (int64 arrays)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(1, max(max_id, people + 1), people))
    zone_pool = rng.choice(LEAVES, size=int(rng.integers(1, len(LEAVES))), replace=False)
    rows: dict[str, set[int]] = {}
    for person in ids.tolist():
        for leaf in rng.choice(zone_pool, size=int(rng.integers(1, 4))):
            rows.setdefault(str(leaf), set()).add(person)
    by_zone = {code: np.array(sorted(members), dtype=np.int64) for code, members in rows.items()}
    index = ZoneIndex(by_zone)
    assert index.subscription_count() == sum(len(a) for a in by_zone.values())
    for _ in range(alerts):
        pool = LEAVES + GROUPS + NAMES
        codes = [str(c) for c in rng.choice(pool, size=int(rng.integers(1, 6)), replace=False)]
        got = index.lookup(codes)
        assert np.array_equal(got, reference(by_zone, codes)), codes
        assert not got.flags.writeable  # shared slices: nobody may write into them


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(found=st.lists(st.integers(0, 200), unique=True), changed=st.lists(st.integers(0, 200), unique=True),
       keep=st.lists(st.booleans(), min_size=201, max_size=201), by_slices=st.booleans())
def test_patch_equals_set_arithmetic(found: list[int], changed: list[int], keep: list[bool], by_slices: bool,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_zone_index, "_PATCH_BY_SLICES", 10**9 if by_slices else 0)
    have = np.array(sorted(found), dtype=np.int32)
    moved = np.array(sorted(changed), dtype=np.int64)
    still = moved[[keep[v] for v in moved.tolist()]] if len(moved) else moved
    pos = np.searchsorted(have, moved)
    held = pos < len(have)
    held[held] = have[pos[held]] == moved[held]
    got = live_zone_index._patched(have, pos[held], still)
    expected = sorted((set(found) - set(changed)) | set(still.tolist()))
    assert got.tolist() == expected


def test_build_with_ids_beyond_32_bits_and_other_statuses(tmp_path: Path) -> None:
    """SQLite ids may exceed 2**32: the build falls back from its packed sort key and keeps int64 ids."""
    engine = make_engine(f"sqlite:///{tmp_path}/big.db")
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as session:
        small = store.add_subscriber(session, "01011110001", ["S1251100", "S1251200"])
        session.execute(text("INSERT INTO subscriber (id, phone, name, language, status, min_severity, categories, "
                             "hazards, consent_at, consent_source, consent_text, created_at, updated_at) VALUES "
                             "(:id, '01011110002', '', 'ko', 'active', 'Unknown', '[]', '[]', '2026-01-01', 'x', '', "
                             "'2026-01-01', '2026-01-01')"), {"id": 2**32 + 5})
        session.execute(text("INSERT INTO subscription (subscriber_id, kind, zone_code) "
                             "VALUES (:id, 'zone', 'S1251100')"), {"id": 2**32 + 5})
        paused = store.add_subscriber(session, "01011110003", ["S1251100"])
        store.set_status(session, paused.phone, "paused")
        session.commit()
    index = ZoneIndex.build(engine)
    assert index.id_dtype == np.int64
    assert index.lookup(["S1251000"]).tolist() == [small.id, 2**32 + 5]
    assert np.array_equal(index.lookup(["S1251100"]), matching_ids_sql(engine, ["S1251100"]))
    both = ZoneIndex.build(engine, statuses=("active", "paused"))
    assert both.lookup(["S1251100"]).tolist() == sorted([small.id, paused.id, 2**32 + 5])
    engine.dispose()


def test_build_on_an_empty_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    upgrade(engine)
    index = ZoneIndex.build(engine)
    assert index.subscription_count() == 0 and len(index.lookup(["S1251000"])) == 0
    assert len(LiveZoneIndex().ids(engine, ["L1000000"])) == 0
    engine.dispose()


@pytest.fixture
def pg_or_sqlite(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_live_index_patches_a_group_answer_without_rebuilding(pg_or_sqlite: Engine) -> None:
    engine = pg_or_sqlite
    rng = np.random.default_rng(3)
    s125 = [c for c in LEAVES if c.startswith("S125")]
    with Session(engine, expire_on_commit=False) as session:
        people = [store.add_subscriber(session, f"0107{n:07d}", [str(c) for c in rng.choice(s125, 2, replace=False)])
                  for n in range(300)]
        session.commit()
    live = LiveZoneIndex(max_age_s=3600)
    queries = [["S1250000"], ["S1251000"], ["서해중부먼바다"], [s125[0]], ["S1251000", "S1252000"]]
    before = {tuple(q): live.ids(engine, q) for q in queries}
    with Session(engine) as session:
        store.set_status(session, people[0].phone, "paused")
        store.add_subscriber(session, "01070009999", ["S1251100"])
        session.commit()
    with engine.begin() as conn:  # an operator's SQL: a subscription moved to another leaf, one deleted
        conn.execute(text("UPDATE subscription SET zone_code = 'S1131100' WHERE id = (SELECT min(id) FROM "
                          "subscription WHERE subscriber_id = :p AND kind = 'zone')"), {"p": people[1].id})
        conn.execute(text("DELETE FROM subscription WHERE subscriber_id = :p"), {"p": people[2].id})
    changed = 0
    for q in queries:
        got = live.ids(engine, q)
        assert np.array_equal(got, matching_ids_sql(engine, q)), q
        changed += not np.array_equal(got, before[tuple(q)])
        assert np.array_equal(live.snapshot.lookup(q), before[tuple(q)])  # the snapshot's arrays are untouched
    assert changed >= 3 and live.builds == 1


def test_bulletin_union_through_bitmaps_up_to_the_largest_int32_id() -> None:
    """A union of several groups goes through the Roaring bitmaps: ids up to 2**31 - 1 come back as they went in,
    sorted, distinct, read-only int32, equal to the numpy union it replaced."""
    rng = np.random.default_rng(11)
    top = 2**31 - 1
    by_zone = {leaf: np.unique(np.append(rng.integers(top - 5000, top, 300), [1, top]))
               for leaf in zones.expand("S1251000") + zones.expand("S1231000") + ["S1321100"]}
    index = ZoneIndex(by_zone)
    assert index.id_dtype == np.int32 and index._bitmaps
    codes = ["S1251000", "S1231000", "S1321100"]
    got = index.lookup(codes)
    assert got.dtype == np.int32 and not got.flags.writeable
    assert np.array_equal(got, reference(by_zone, codes))
    assert got[0] == 1 and got[-1] == top
    numpy_union = matching._union([by_zone[z].astype(np.int32) for z in alert_leaves(codes)], top)
    assert np.array_equal(got, numpy_union)
    assert index.nbytes() > index.bitmap_nbytes() > 0


def test_a_kept_bitmap_holds_exactly_the_lookup() -> None:
    """ZoneIndex.bitmap: for a leaf or a group, the bitmap of exactly lookup's ids; none for other unions."""
    from subscribers.matching import ZoneIndex

    rng = np.random.default_rng(3)
    leaves = [z.code for z in zones.list_zones() if zones.is_leaf(z.code) and z.code.startswith("S125")]
    index = ZoneIndex({code: np.unique(rng.integers(1, 5000, 300)) for code in leaves})
    for codes in ([leaves[0]], ["S1251000"], ["S1250000"]):
        assert index.bitmap(codes) is not None, codes
    unions = [[a, b] for a in leaves for b in leaves if a < b] + [[a, "S1252000"] for a in leaves]
    for codes in [*unions, [leaves[0]], ["S1251000"], ["S1250000"]]:
        bitmap = index.bitmap(codes)
        if bitmap is not None:
            assert np.array_equal(np.array(bitmap.to_array()), index.lookup(codes)), codes
    assert sum(index.bitmap(codes) is None for codes in unions) > len(unions) // 2  # most unions: no one bitmap
    assert index.bitmap(["L1000000"]) is None  # nobody there
