"""The live geometry index answers exactly what an index built from the database now would, before, during and
after a background rebuild: people adding, moving and dropping points, pausing, following vessels, boats moving.

One suite on both engines. The reference is a ``GeoIndex`` built from the database at the moment of asking, and
for its fixed points (no radius, no vessel) a brute-force shapely test of every stored point.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from alerts.db import make_engine, upgrade
from subscribers import live_geoindex, store
from subscribers.ais import Position
from subscribers.geoindex import GeoIndex
from subscribers.live_geoindex import VESSEL_PRUNE_AFTER_S, LiveGeoIndex
from subscribers.models import Subscription
from subscribers.positions import ingest_positions
from subscribers.vessels import add_vessel

NOW = datetime.now(UTC)
#: (lat, lon) like CAP: a box off the west coast, and a triangle overlapping it
AREAS = [[(37.0, 125.5), (37.0, 126.5), (37.6, 126.5), (37.6, 125.5)],
         [(36.8, 126.0), (37.8, 126.2), (37.2, 127.0)]]
CIRCLE = (37.3, 126.2, 25.0)


@pytest.fixture
def engine(db_url: str) -> Engine:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _phone(n: int) -> str:
    return f"0107{n:07d}"


def _spot(rng: random.Random) -> tuple[float, float]:
    return rng.uniform(36.5, 38.0), rng.uniform(125.0, 127.5)


def _seed(engine: Engine, rng: random.Random, people: int, boats: int) -> None:
    with Session(engine) as s:
        ids = []
        for n in range(people):
            person = store.add_subscriber(s, _phone(n), ["S1251100"])
            ids.append(person.id)
            lat, lon = _spot(rng)
            s.add(Subscription(subscriber_id=person.id, kind="point", lat=lat, lon=lon,
                               radius_km=rng.choice([None, 0.0, 3.0, 12.0])))
        for b in range(boats):
            add_vessel(s, 440_100_000 + b, f"boat {b}", subscribers=rng.sample(ids, 2))
        s.commit()
        ingest_positions(s, [Position(440_100_000 + b, *_spot(rng), NOW - timedelta(minutes=5)) for b in range(boats)],
                         now=NOW)
        s.commit()


def _check(engine: Engine, live: LiveGeoIndex) -> None:
    """Every question, live against a fresh build (and brute force for the bare points)."""
    with Session(engine) as s:
        fresh = GeoIndex.from_session(s)
        for polygons, circles in (([AREAS[0]], []), (AREAS, []), ([], [CIRCLE]), ([AREAS[1]], [CIRCLE])):
            got = live.affected(s, polygons, circles, at=NOW)
            want = fresh.affected(polygons, circles, at=NOW)
            assert np.array_equal(got.subscriber_ids, want.subscriber_ids), (polygons, circles)
            assert np.array_equal(got.mmsis, want.mmsis)
            assert got.zone_codes == want.zone_codes
        bare = s.connection().execute(text(
            "SELECT p.subscriber_id, p.lon, p.lat FROM subscription p "
            "JOIN subscriber ON subscriber.id = p.subscriber_id WHERE p.kind = 'point' "
            "AND subscriber.status = 'active' AND coalesce(p.radius_km, 0) = 0")).all()
        box = shapely.Polygon([(lon, lat) for lat, lon in AREAS[0]])
        inside = {sid for sid, lon, lat in bare if shapely.intersects_xy(box, lon, lat)}
        got_ids = set(live.affected(s, [AREAS[0]], at=NOW).subscriber_ids.tolist())
        bare_people = {sid for sid, _, _ in bare}
        assert got_ids & bare_people >= inside
        assert not (bare_people - inside) & got_ids - _with_other_rows(s, bare_people - inside)


def _with_other_rows(s: Session, people: set[int]) -> set[int]:
    """Of these people, those with a radius point or a vessel as well (they may be reached by it)."""
    rows = s.connection().execute(text(
        "SELECT DISTINCT subscriber_id FROM subscription WHERE kind = 'vessel' OR (kind = 'point' "
        "AND coalesce(radius_km, 0) > 0)")).all()
    return people & {r[0] for r in rows}


def _changes(engine: Engine, rng: random.Random) -> list:
    counter = iter(range(1000, 100_000))

    def new_person() -> None:
        with Session(engine) as s:
            person = store.add_subscriber(s, _phone(next(counter)), ["S1251100"])
            lat, lon = _spot(rng)
            s.add(Subscription(subscriber_id=person.id, kind="point", lat=lat, lon=lon, radius_km=None))
            s.commit()

    def move_point() -> None:
        lat, lon = _spot(rng)
        with engine.begin() as c:
            c.execute(text("UPDATE subscription SET lat = :lat, lon = :lon WHERE id = (SELECT min(id) FROM "
                           "subscription WHERE kind = 'point' AND subscriber_id = :sid)"),
                      {"lat": lat, "lon": lon, "sid": rng.randrange(1, 40)})

    def drop_point() -> None:
        with engine.begin() as c:
            c.execute(text("DELETE FROM subscription WHERE kind = 'point' AND subscriber_id = :sid"),
                      {"sid": rng.randrange(1, 40)})

    def pause_or_resume() -> None:
        with Session(engine) as s:
            person = store.get_by_phone(s, _phone(rng.randrange(40)))
            if person is not None:
                store.set_status(s, person.phone, "paused" if person.status == "active" else "active")
                s.commit()

    def move_boat() -> None:
        with Session(engine) as s:
            ingest_positions(s, [Position(440_100_000 + rng.randrange(8), *_spot(rng),
                                          NOW - timedelta(seconds=rng.randrange(1, 200)))], now=NOW)
            s.commit()

    def follow_boat() -> None:
        with Session(engine) as s:
            add_vessel(s, 440_100_000 + rng.randrange(8), subscribers=[rng.randrange(1, 40)])
            s.commit()

    def new_boat() -> None:
        mmsi = 440_200_000 + next(counter)
        with Session(engine) as s:
            add_vessel(s, mmsi, subscribers=[rng.randrange(1, 40)])
            s.commit()
            ingest_positions(s, [Position(mmsi, *_spot(rng), NOW - timedelta(minutes=1))], now=NOW)
            s.commit()

    def boat_gone() -> None:
        with engine.begin() as c:
            c.execute(text("DELETE FROM vessel WHERE mmsi = :m"), {"m": 440_100_000 + rng.randrange(8)})

    return [new_person, move_point, drop_point, pause_or_resume, move_boat, follow_boat, new_boat, boat_gone]


def test_equals_a_fresh_build_through_every_kind_of_change(engine: Engine) -> None:
    rng = random.Random(11)
    _seed(engine, rng, 40, 8)
    live = LiveGeoIndex(max_age_s=1800, background_rebuild=False)
    _check(engine, live)
    changes = _changes(engine, rng)
    for step in range(24):
        changes[step % len(changes)]()
        _check(engine, live)
    assert live.builds == 1  # all of it through the change logs


def test_answers_stay_exact_before_during_and_after_a_background_rebuild(engine: Engine) -> None:
    """A rebuild held just after its watermarks: answers meanwhile come from the old snapshot and the logs, the
    caller never waits, a change committed during the build is in the new snapshot's answers (through the log),
    and only one rebuild runs however often the old snapshot is found too old."""
    rng = random.Random(12)
    _seed(engine, rng, 40, 8)
    live = LiveGeoIndex(max_age_s=0.0, hard_max_age_s=1800, background_rebuild=True)
    with Session(engine) as s:
        live.ensure_built(s)
    assert live.builds == 1
    changes = _changes(engine, rng)
    changes[0]()
    changes[4]()
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        assert release.wait(60)

    live.after_watermark = hold
    _check(engine, live)  # finds the snapshot too old: a rebuild starts on its own thread
    assert entered.wait(60)
    for step in range(8):  # during the rebuild: answered at once, exactly
        changes[step]()
        _check(engine, live)
    assert live.builds == 1
    live.after_watermark = None
    release.set()
    assert live.wait_for_rebuild(60)
    assert live.builds == 2  # one rebuild, however many answers found the snapshot old meanwhile
    _check(engine, live)  # the new snapshot misses nothing written while it was built
    assert live.wait_for_rebuild(60)
    _check(engine, live)


def test_a_bulk_change_builds_a_new_snapshot_first(engine: Engine) -> None:
    rng = random.Random(13)
    _seed(engine, rng, 10, 2)
    live = LiveGeoIndex(max_age_s=1800, rebuild_after=5, reread_vessels_after=3, background_rebuild=False)
    _check(engine, live)
    new_person = _changes(engine, rng)[0]
    for _ in range(8):
        new_person()
    _check(engine, live)
    assert live.builds == 2


def test_many_moved_boats_are_read_again_all_at_once(engine: Engine) -> None:
    """Past ``reread_vessels_after`` moved boats every vessel row is read again (and a rebuild starts, held here
    so that the answers come from the old snapshot): exact."""
    rng = random.Random(14)
    _seed(engine, rng, 20, 8)
    live = LiveGeoIndex(max_age_s=1800, reread_vessels_after=3, background_rebuild=True)
    _check(engine, live)
    release = threading.Event()
    live.after_watermark = lambda: None if release.wait(60) else None
    move_boat = _changes(engine, rng)[4]
    for _ in range(12):
        move_boat()
        _check(engine, live)
    assert live.builds == 1
    release.set()
    assert live.wait_for_rebuild(60) and live.builds == 2
    _check(engine, live)


class _JustBooted:
    """The ``time`` module as the index sees it on a machine booted five seconds ago: ``monotonic()`` counts from
    boot, so a fresh machine's clock reads a few seconds (wall time unchanged)."""

    def __init__(self) -> None:
        self._offset = time.monotonic() - 5.0

    def monotonic(self) -> float:
        return time.monotonic() - self._offset

    @staticmethod
    def time() -> float:
        return time.time()


def test_the_first_rebuild_is_not_held_back_after_a_boot(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first rebuild may start at once however recently the machine booted: "last asked at 0" held every
    rebuild back for ``max_age_s`` after a boot (found on a fresh CI machine; a vessel server restarted in a storm)."""
    monkeypatch.setattr(live_geoindex, "time", _JustBooted())
    rng = random.Random(15)
    _seed(engine, rng, 10, 8)
    live = LiveGeoIndex(max_age_s=1800, reread_vessels_after=2, background_rebuild=True)
    _check(engine, live)
    move_boat = _changes(engine, rng)[4]
    for _ in range(10):
        move_boat()
        _check(engine, live)
    assert live.wait_for_rebuild(60) and live.builds == 2
    _check(engine, live)


def test_the_vessel_log_follows_every_writer_and_is_pruned(engine: Engine) -> None:
    with Session(engine) as s:
        add_vessel(s, 440_300_001)
        s.commit()
        ingest_positions(s, [Position(440_300_001, 37.0, 126.0, NOW)], now=NOW)
        s.commit()
    with engine.begin() as c:
        c.execute(text("UPDATE vessel SET last_lat = 37.5 WHERE mmsi = 440300001"))
        c.execute(text("UPDATE vessel SET name = 'renamed' WHERE mmsi = 440300001"))  # not a position: not logged
        c.execute(text("DELETE FROM vessel WHERE mmsi = 440300001"))
        logged = c.execute(text("SELECT count(*) FROM vessel_change WHERE mmsi = 440300001")).scalar_one()
        assert logged == 4  # registered, moved by the ingest, moved by SQL, deleted
        c.execute(text("UPDATE vessel_change SET changed_at = changed_at - :old"), {"old": VESSEL_PRUNE_AFTER_S + 60})
    live = LiveGeoIndex(background_rebuild=False)
    with Session(engine) as s:
        live.ensure_built(s)
        s.commit()
    with engine.begin() as c:
        assert c.execute(text("SELECT count(*) FROM vessel_change")).scalar_one() == 1  # the newest stays


def test_the_audience_never_waits_for_a_geometry_rebuild(engine: Engine) -> None:
    """The pipeline's ``Audience``: after the first build, a polygon warning is answered while the next snapshot is
    still being built (held here), and a point added after the snapshot is in the answer."""
    from alerts.audience import Audience
    from feeds.model import Alert, Area, Info

    rng = random.Random(15)
    _seed(engine, rng, 20, 4)
    audience = Audience(engine, buffer_nm=1.0, stale_after=timedelta(hours=6), ttl_seconds=0.0)
    with Session(engine) as s:
        assert audience.geo_index(s) is not None
    assert audience.geo.builds == 1
    with Session(engine) as s:
        late = store.add_subscriber(s, _phone(900), ["S1311100"])
        s.add(Subscription(subscriber_id=late.id, kind="point", lat=37.3, lon=126.0))
        s.commit()
        late_id = late.id
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(60)

    audience.geo.after_watermark = hold
    alert = Alert(sender="coastguard", identifier="CG-9", sent=NOW, infos=[
        Info(event="Tsunami Warning", areas=[Area("box", polygons=[AREAS[0] + [AREAS[0][0]]])])])
    try:
        with Session(engine) as s:
            first = audience.subscriber_ids(s, alert, ("KMA_ZONE",), at=NOW)  # starts the rebuild
            assert entered.wait(60)
            again = audience.subscriber_ids(s, alert, ("KMA_ZONE",), at=NOW)  # answered while it is held
            want = GeoIndex.from_session(s).affected([AREAS[0]], at=NOW).subscriber_ids.tolist()
        assert audience.geo.builds == 1
        assert first == again == want and late_id in want
    finally:
        release.set()
    assert audience.geo.wait_for_rebuild(60) and audience.geo.builds == 2
