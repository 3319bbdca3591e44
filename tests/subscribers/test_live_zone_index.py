"""The live zone index answers exactly what SQL answers, whatever changed since it was built and by whom.

One suite on both engines: changes through the store, a CSV import, and raw SQL (moved, re-zoned and
deleted subscriptions, deleted people), a writer that commits while the index is being built, a bulk
change that triggers a rebuild, and pruning of the change log.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from alerts.db import make_engine, upgrade
from subscribers import store, zones
from subscribers.csv_import import import_csv
from subscribers.live_zone_index import PRUNE_AFTER_S, LiveZoneIndex, _positions
from subscribers.matching import matching_ids_sql

LEAVES = [z.code for z in zones.list_zones() if zones.is_leaf(z.code) and z.code.startswith("S125")]
GROUPS = ["S1250000", "S1251000", "S1252000", "서해중부앞바다"]


@pytest.fixture
def engine(db_url: str) -> Engine:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _phone(n: int) -> str:
    return f"0108{n:07d}"


def _seed(engine: Engine, rng: random.Random, people: int) -> None:
    with Session(engine) as s:
        for n in range(people):
            store.add_subscriber(s, _phone(n), rng.sample(LEAVES, rng.randint(1, 3)))
        s.commit()


def _queries(rng: random.Random) -> list[list[str]]:
    return [rng.sample(LEAVES, rng.randint(1, 4)) for _ in range(4)] + [[g] for g in GROUPS]


def _sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def test_equals_sql_through_every_kind_of_change(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(5)
    _seed(engine, rng, 120)
    live = LiveZoneIndex(max_age_s=3600, rebuild_after=10_000)
    live.ids(engine, ["S1250000"])  # built now; everything below happens after the snapshot
    counter = iter(range(1000, 10_000))

    def add_person() -> None:
        with Session(engine) as s:
            store.add_subscriber(s, _phone(next(counter)), rng.sample(LEAVES, 2))
            s.commit()

    def add_zone() -> None:
        with Session(engine) as s:
            store.add_subscriber(s, _phone(rng.randrange(120)), [rng.choice(LEAVES)])
            s.commit()

    def pause_or_resume() -> None:
        with Session(engine) as s:
            person = store.get_by_phone(s, _phone(rng.randrange(120)))
            if person is not None and person.status != "unsubscribed":
                store.set_status(s, person.phone, "paused" if person.status == "active" else "active")
            s.commit()

    def unsubscribe() -> None:
        with Session(engine) as s:
            if store.get_by_phone(s, _phone(n := rng.randrange(120))) is not None:
                store.remove(s, _phone(n))
            s.commit()

    def import_rows() -> None:
        path = tmp_path / f"import-{next(counter)}.csv"
        rows = [f"{_phone(next(counter))},,{' '.join(rng.sample(LEAVES, 2))}," for _ in range(5)]
        path.write_text("phone,name,zones,min_severity\n" + "\n".join(rows) + "\n", encoding="utf-8")
        assert import_csv(engine, path).inserted == 5

    def drop_subscription() -> None:
        _sql(engine, "DELETE FROM subscription WHERE id = (SELECT min(id) FROM subscription WHERE kind = 'zone' "
                     "AND subscriber_id % 7 = :r)", r=rng.randrange(7))

    def rezone() -> None:
        _sql(engine, "UPDATE subscription SET zone_code = :z WHERE id = (SELECT max(id) FROM subscription "
                     "WHERE kind = 'zone' AND subscriber_id % 5 = :r) AND NOT EXISTS (SELECT 1 FROM subscription "
                     "x WHERE x.subscriber_id = subscription.subscriber_id AND x.zone_code = :z)",
             z=rng.choice(LEAVES), r=rng.randrange(5))

    def move() -> None:  # a subscription handed to another person (an operator's fix)
        _sql(engine, "UPDATE subscription SET subscriber_id = :to WHERE id = (SELECT min(id) FROM subscription "
                     "WHERE kind = 'zone' AND subscriber_id % 11 = :r) AND NOT EXISTS (SELECT 1 FROM subscription x "
                     "WHERE x.subscriber_id = :to AND x.zone_code = subscription.zone_code)",
             to=rng.randrange(1, 120), r=rng.randrange(11))

    def delete_person() -> None:
        _sql(engine, "DELETE FROM subscriber WHERE id = :id", id=rng.randrange(1, 120))

    changes: list[Callable[[], None]] = [add_person, add_zone, pause_or_resume, unsubscribe, import_rows,
                                         drop_subscription, rezone, move, delete_person]
    stale_answers = by_bitmap = 0
    for step in range(60):
        changes[step % len(changes)]()
        for codes in _queries(rng):
            expected = matching_ids_sql(engine, codes)
            assert np.array_equal(live.ids(engine, codes), expected), (step, changes[step % len(changes)].__name__)
            assert live.snapshot is not None
            stale_answers += not np.array_equal(live.snapshot.lookup(codes), expected)
            # the ids of others (an outline's people: some changed since the snapshot) not among them
            answer = live.answer(engine, codes)
            others = np.unique(np.array(rng.sample(range(1, 160), 80), dtype=np.int64))
            assert np.array_equal(answer.ids, expected)
            assert np.array_equal(answer.lacking(others), np.setdiff1d(others, expected)), step
            by_bitmap += answer.bitmap is not None
    assert live.builds == 1  # every answer above came from the first snapshot plus the change log
    assert stale_answers > 50  # ... which alone would have been wrong: the log did the work
    assert by_bitmap > 200  # groups and single leaves: told apart by the snapshot's bitmap and the recheck


def test_a_change_committed_while_the_index_is_built_is_not_missed(engine: Engine) -> None:
    """A writer still open when the snapshot is taken commits after it; on PostgreSQL a later writer commits
    first (transaction ids out of commit order, which a "highest id seen" watermark would get wrong)."""
    rng = random.Random(9)
    _seed(engine, rng, 30)
    with Session(engine) as s:
        early, late = (store.add_subscriber(s, _phone(n), ["S1251100"]).id for n in (500, 501))
        s.commit()
    _sql(engine, "DELETE FROM subscription WHERE subscriber_id IN (:a, :b)", a=early, b=late)
    insert = text("INSERT INTO subscription (subscriber_id, kind, zone_code) VALUES (:id, 'zone', 'S1251100')")
    writer = engine.connect()
    try:
        writer.execute(insert, {"id": early})  # uncommitted while the index is built
        if engine.dialect.name == "postgresql":
            _sql(engine, insert.text, id=late)  # a younger transaction commits before the older one
        live = LiveZoneIndex()
        assert early not in live.ids(engine, ["S1251100"]).tolist()
        writer.commit()
    finally:
        writer.close()
    assert early in live.ids(engine, ["S1251100"]).tolist()
    assert np.array_equal(live.ids(engine, ["S1251100"]), matching_ids_sql(engine, ["S1251100"]))
    assert live.builds == 1


@pytest.mark.parametrize(("min_interval", "builds"), [(0, 2), (3600, 1)], ids=["rebuilds", "rechecks"])
def test_a_bulk_change_rebuilds_or_rechecks(engine: Engine, tmp_path: Path, min_interval: float, builds: int) -> None:
    """Past ``rebuild_after`` changed people the index is rebuilt, unless it was rebuilt too recently: then
    the large change log is rechecked in SQL. The answer is exact either way."""
    _seed(engine, random.Random(3), 10)
    live = LiveZoneIndex(rebuild_after=25, min_rebuild_interval_s=min_interval)
    live.ids(engine, ["S1250000"])
    path = tmp_path / "bulk.csv"
    path.write_text("phone,name,zones,min_severity\n" + "".join(f"{_phone(100 + n)},,S1251100,\n" for n in range(40)),
                    encoding="utf-8")
    import_csv(engine, path)
    assert np.array_equal(live.ids(engine, ["S1251100"]), matching_ids_sql(engine, ["S1251100"]))
    assert live.builds == builds
    live.ids(engine, ["S1251100"])
    assert live.builds == builds  # a rebuilt snapshot covers the import; a recheck does not rebuild either


def test_background_rebuild_never_holds_up_an_answer(engine: Engine, tmp_path: Path) -> None:
    """The running pipeline's index (``background_rebuild``): past ``rebuild_after`` changed people the answer
    comes at once from the old snapshot and the change log, exact, while a new snapshot is built on its own
    thread; once it is in, answers come from it, exact too."""
    _seed(engine, random.Random(5), 10)
    live = LiveZoneIndex(rebuild_after=25, min_rebuild_interval_s=0, background_rebuild=True)
    live.ids(engine, ["S1250000"])
    assert live.builds == 1  # the first snapshot is built while the caller waits
    path = tmp_path / "bulk.csv"
    path.write_text("phone,name,zones,min_severity\n" + "".join(f"{_phone(200 + n)},,S1251100,\n" for n in range(40)),
                    encoding="utf-8")
    import_csv(engine, path)
    for codes in (["S1251100"], ["S1250000"], ["L1000000"]):
        assert np.array_equal(live.ids(engine, codes), matching_ids_sql(engine, codes))
    assert live.wait_for_rebuild(60)
    assert live.builds == 2  # one rebuild, however many answers were asked for meanwhile
    for codes in (["S1251100"], ["S1250000"]):
        assert np.array_equal(live.ids(engine, codes), matching_ids_sql(engine, codes))
    assert live.wait_for_rebuild(60) and live.builds == 2  # the new snapshot covers the import


def test_an_old_snapshot_answers_while_it_is_replaced(engine: Engine) -> None:
    """Past ``max_age_s`` the snapshot is replaced in the background; every answer stays exact meanwhile."""
    _seed(engine, random.Random(6), 10)
    live = LiveZoneIndex(max_age_s=0.0, background_rebuild=True)
    live.ids(engine, ["S1250000"])
    with Session(engine) as session:
        store.add_subscriber(session, _phone(500), ["S1251100"])
        session.commit()
    for _ in range(3):
        assert np.array_equal(live.ids(engine, ["S1251100"]), matching_ids_sql(engine, ["S1251100"]))
        assert live.wait_for_rebuild(60)
    assert live.builds >= 2


def test_old_change_rows_are_pruned_at_build(engine: Engine) -> None:
    _seed(engine, random.Random(1), 3)
    now = time.time()
    _sql(engine, "UPDATE subscription_change SET changed_at = :old WHERE id = (SELECT min(id) FROM "
                 "subscription_change)",
         old=now - PRUNE_AFTER_S - 60)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM subscription_change")).scalar_one()
    LiveZoneIndex().ids(engine, ["S1250000"])
    with engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM subscription_change")).scalar_one()
        oldest = conn.execute(text("SELECT min(changed_at) FROM subscription_change")).scalar_one()
    assert after == before - 1 and oldest > now - 3600


def test_the_triggers_log_every_writer(engine: Engine) -> None:
    """Each way of changing who matches leaves a row naming the person (what the index relies on)."""
    with Session(engine) as s:
        a = store.add_subscriber(s, _phone(1), ["S1251100"]).id
        b = store.add_subscriber(s, _phone(2), ["S1251200"]).id
        s.commit()

    def logged_after(change: Callable[[], None]) -> set[int]:
        with engine.connect() as conn:
            mark = conn.execute(text("SELECT coalesce(max(id), 0) FROM subscription_change")).scalar_one()
        change()
        with engine.connect() as conn:
            return {sid for (sid,) in conn.execute(text("SELECT subscriber_id FROM subscription_change WHERE id > :m"),
                                                   {"m": mark})}

    def status(phone: str, value: str) -> Callable[[], None]:
        def run() -> None:
            with Session(engine) as s:
                store.set_status(s, phone, value)
                s.commit()
        return run

    def touch_without_status_change() -> None:
        _sql(engine, "UPDATE subscriber SET name = 'x' WHERE id = :id", id=a)

    assert logged_after(status(_phone(1), "paused")) == {a}
    assert logged_after(status(_phone(1), "active")) == {a}
    assert logged_after(touch_without_status_change) == set()
    assert logged_after(lambda: _sql(engine, "UPDATE subscription SET subscriber_id = :b WHERE subscriber_id = :a",
                                     a=a, b=b)) == {a, b}
    assert logged_after(lambda: _sql(engine, "DELETE FROM subscriber WHERE id = :b", b=b)) == {b}


def test_pruning_keeps_the_newest_row_so_ids_are_never_reused(engine: Engine) -> None:
    _seed(engine, random.Random(2), 4)
    _sql(engine, "UPDATE subscription_change SET changed_at = :old", old=time.time() - PRUNE_AFTER_S - 60)
    with engine.connect() as conn:
        newest = conn.execute(text("SELECT max(id) FROM subscription_change")).scalar_one()
    live = LiveZoneIndex()
    live.ids(engine, ["S1250000"])
    with engine.connect() as conn:
        assert [i for (i,) in conn.execute(text("SELECT id FROM subscription_change"))] == [newest]
    with Session(engine) as s:
        person = store.add_subscriber(s, _phone(77), ["S1251100"]).id
        s.commit()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT min(id) FROM subscription_change WHERE subscriber_id = :p"),
                            {"p": person}).scalar_one() > newest
    assert person in live.ids(engine, ["S1251100"]).tolist()


@pytest.mark.parametrize("values", [[], [5], [0, 7, 2_000_000, 2**31 - 1], [3, 2**31, 2**40]])
def test_positions_in_the_snapshot_are_found_without_copying_it(values: list[int]) -> None:
    """The change log's ids are int64, a snapshot of fewer than 2**31 ids int32: searching the one in the other
    made numpy convert the whole snapshot (7 ms per search for 'all land' at 10,000,000 people). The positions
    are searchsorted's, and no copy of the snapshot is made unless a value does not fit its type."""
    found = np.arange(0, 4_000_000, 2, dtype=np.int32)
    wanted = np.array(values, dtype=np.int64)
    tracemalloc.start()
    try:
        got = _positions(found, wanted)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(got, np.searchsorted(found.astype(np.int64), wanted))
    if not values or values[-1] < 2**31:
        assert peak < found.nbytes // 4
