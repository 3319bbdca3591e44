"""Matching at national scale: 10,000,000 subscribers in SQLite, the indexes built from it as the pipeline does.

Data (seeded, deterministic), written into a SQLite file made by the shipped migrations with fast raw inserts
(indexes and change-log triggers dropped during the load and re-created after, so the file ends up exactly as
production's schema; the CSV importer is measured by ``bench_zone_match.py``):
  * ``--people`` subscribers, 1 % paused; zones mixed as in ``bench_zone_match.write_csv``: 60 % one leaf zone,
    30 % two, 10 % a group or broad name (stored as its leaves, up to 42 for 경기도);
  * ``--point-share`` of them also with a fixed point in Korean waters (124-132°E, 32-39°N; 30 % with a radius
    of 0.5-10 km), and ``--vessels`` followed vessels with fresh fixes, as in ``bench_geo_match.py``;
  * 15 province outlines (KOSTAT 시도, ``zones/`` of the shared corpus: ``../shared`` or ``$ALIMCAST_SHARED``)
    imported as zone outlines under their KMA codes.
The file is kept in ``--workdir`` and reused by later runs with the same size and seed.

Then, in a fresh process (so that its resident memory is the indexes' and nothing else's):
  * build time and memory of ``LiveZoneIndex`` (the ZoneIndex snapshot the pipeline builds) and of
    ``GeoIndex.from_session``: resident set size (RSS, /proc/self/statm) before and after each build, the peak
    RSS of the process (VmHWM), and the bytes of the index's numpy arrays;
  * zone alerts (leaf, group, broad name, province, all land, a multi-zone bulletin): median and p95 of
    ``ZoneIndex.lookup`` and of ``LiveZoneIndex.ids`` (what the pipeline calls; with an empty change log and
    after one person changed), each returning a sorted read-only numpy array of ids, against the SQL query
    ``matching_ids_sql`` in the same run (answers asserted equal);
  * polygon alerts (a 60 x 50 km sea area off 전남; the 전라남도 coast simplified to 1 km, ~300 vertices; and
    its full 3,604-vertex outline): median and p95 of
    ``GeoIndex.affected`` (points, vessels, zone outlines), and of the zone subscribers of the outlines it
    touches, against a brute-force exact numpy/shapely test of every point and vessel (answers asserted equal);
  * zone alerts by stored outline (a leaf sea zone, 전남, all land): ``GeoIndex.affected_by_zones`` and the whole
    zone-alert audience (zone ids plus those, as disjoint parts and as one array), first call and repeated, against
    brute force per outline (the audience against the zone ids plus brute force).
Turning an id array into a list of Python ints is timed apart: it is not matching, and it costs more.

Run: .venv/bin/python benchmarks/bench_national_match.py [--people 10000000] [--point-share 0.1]
     [--vessels 100000] [--repeat 51] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import subscribers.all_models  # noqa: E402, F401
from alerts.db import make_engine, sqlite_datetime, upgrade  # noqa: E402
from subscribers import geoindex, zones  # noqa: E402
from subscribers.geodesy import distance_km_to_segments, mercator, outline_segments, reaches_km  # noqa: E402
from subscribers.geoindex import GeoIndex  # noqa: E402

#: The read-only corpus beside the checkout (as CI lays it out), or wherever $ALIMCAST_SHARED points.
SHARED = Path(os.environ.get("ALIMCAST_SHARED") or Path(__file__).resolve().parents[2] / "shared")
SIDO = SHARED / "zones" / "kr_sido_2018_kostat_geo_simple.geojson"
EXTRAS = ["S1251000", "서해중부먼바다", "제주도남쪽먼바다", "파주시", "S1330000", "L1010000"]
ZONE_ALERTS = {
    "leaf S1251100": ["S1251100"],
    "group S1251000 (4 leaves)": ["S1251000"],
    "broad 서해중부먼바다": ["서해중부먼바다"],
    "province 경기도 L1010000": ["L1010000"],
    "all land L1000000": ["L1000000"],
    "bulletin: 4 앞바다 + 1 먼바다": ["S1251000", "S1231000", "S1321000", "S1323000", "서해중부먼바다"],
}
#: Zone alerts whose audience also takes in the points and vessels inside stored zone outlines (``affected_by_zones``).
OUTLINE_ALERTS = {
    "leaf sea S1251100": ["S1251100"],
    "province 전남 L1050000": ["L1050000"],
    "all land L1000000": ["L1000000"],
}
SEA_BOX = [(34.2, 125.9), (34.6, 125.8), (34.75, 126.3), (34.5, 126.55), (34.15, 126.35)]
SCHEMA_VERSION = 1  # bump when the generated data changes, so cached files are rebuilt
#: First calls (a new warning: nothing kept) timed per alert; their median is printed.
FIRST_CALLS = 15


# -- data ---------------------------------------------------------------------------------------------------


def make_people(n: int, seed: int) -> dict[str, Any]:
    """Zone rows (leaf code number, subscriber id), statuses, points and vessels as numpy arrays."""
    rng = np.random.default_rng(seed)
    leaves = [z.code for z in zones.list_zones() if zones.is_leaf(z.code)]
    number = {code: k for k, code in enumerate(leaves)}
    ids = np.arange(1, n + 1, dtype=np.int64)
    roll = rng.random(n)
    one, two, extra = roll < 0.6, (roll >= 0.6) & (roll < 0.9), roll >= 0.9
    first = rng.integers(0, len(leaves), n)
    second = (first + rng.integers(1, len(leaves), n)) % len(leaves)  # never the first
    which = rng.integers(0, len(EXTRAS), n)
    zi = [first[one | two], second[two]]
    owner = [ids[one | two], ids[two]]
    for k, name in enumerate(EXTRAS):
        chosen = ids[extra & (which == k)]
        for leaf in zones.expand(name):
            zi.append(np.full(len(chosen), number[leaf]))
            owner.append(chosen)
    zone_leaf, zone_owner = np.concatenate(zi), np.concatenate(owner)
    order = np.argsort(zone_owner, kind="stable")
    return {"leaves": leaves, "zone_leaf": zone_leaf[order], "zone_owner": zone_owner[order],
            "paused": ids[rng.random(n) < 0.01], "rng": rng, "ids": ids}


def make_geo(people: dict[str, Any], point_share: float, n_vessels: int, now: datetime) -> dict[str, np.ndarray]:
    rng = people["rng"]
    ids = people["ids"]
    owners = ids[rng.random(len(ids)) < point_share]
    k = len(owners)
    return {
        "p_own": owners, "p_lon": rng.uniform(124.0, 132.0, k), "p_lat": rng.uniform(32.0, 39.0, k),
        "p_rad": np.where(rng.random(k) < 0.3, rng.uniform(0.5, 10.0, k), np.nan),  # NULL radius: a bare point
        "v_mmsi": 440_000_000 + np.arange(n_vessels, dtype=np.int64),
        "v_own": rng.integers(1, len(ids) + 1, n_vessels).astype(np.int64),
        "v_lon": rng.uniform(124.0, 132.0, n_vessels), "v_lat": rng.uniform(32.0, 39.0, n_vessels),
        "v_at": np.full(n_vessels, (now - timedelta(minutes=10)).timestamp()),
    }


def write_database(path: Path, n: int, point_share: float, n_vessels: int, seed: int) -> None:
    """The schema by the migrations, then raw inserts with the indexes and triggers set aside meanwhile."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    now = datetime.now(UTC)
    people = make_people(n, seed)
    geo = make_geo(people, point_share, n_vessels, now)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    saved = db.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS "
                       "NOT NULL AND tbl_name IN ('subscriber', 'subscription', 'vessel')").fetchall()
    for kind, name, _ in saved:
        db.execute(f"DROP {kind.upper()} {name}")
    stamp = sqlite_datetime(now)
    db.execute("BEGIN")
    paused = np.zeros(n + 1, dtype=bool)
    paused[people["paused"]] = True
    step = 1_000_000
    for start in range(1, n + 1, step):
        stop = min(start + step, n + 1)
        db.executemany(
            "INSERT INTO subscriber (id, phone, name, language, status, min_severity, categories, hazards, "
            "consent_at, consent_source, consent_text, created_at, updated_at) "
            "VALUES (?, ?, ?, 'ko', ?, 'Unknown', '[]', '[]', ?, 'bench', '', ?, ?)",
            ((i, f"010{i:08d}", f"P{i}", "paused" if paused[i] else "active", stamp, stamp, stamp)
             for i in range(start, stop)))
    codes = np.asarray(people["leaves"], dtype=object)
    leaf, owner = people["zone_leaf"], people["zone_owner"]
    for start in range(0, len(leaf), step):
        db.executemany("INSERT INTO subscription (subscriber_id, kind, zone_code) VALUES (?, 'zone', ?)",
                       zip(owner[start:start + step].tolist(), codes[leaf[start:start + step]].tolist(),
                           strict=True))
    radius = [None if np.isnan(r) else r for r in geo["p_rad"].tolist()]
    db.executemany("INSERT INTO subscription (subscriber_id, kind, lat, lon, radius_km) VALUES (?, 'point', ?, ?, ?)",
                   zip(geo["p_own"].tolist(), geo["p_lat"].tolist(), geo["p_lon"].tolist(), radius, strict=True))
    fix = sqlite_datetime(now - timedelta(minutes=10))
    db.executemany("INSERT INTO vessel (mmsi, name, last_lat, last_lon, last_fix_at, created_at) "
                   "VALUES (?, '', ?, ?, ?, ?)",
                   ((m, la, lo, fix, stamp) for m, la, lo in zip(geo["v_mmsi"].tolist(), geo["v_lat"].tolist(),
                                                                geo["v_lon"].tolist(), strict=True)))
    db.executemany("INSERT INTO subscription (subscriber_id, kind, mmsi) VALUES (?, 'vessel', ?)",
                   zip(geo["v_own"].tolist(), geo["v_mmsi"].tolist(), strict=True))
    db.execute("COMMIT")
    for _, _, sql in saved:
        db.execute(sql)
    db.execute("ANALYZE")
    db.close()
    import_outlines(path)


def import_outlines(path: Path) -> None:
    """The 시도 outlines as zone outlines under the KMA code their name resolves to (15 of 17 resolve)."""
    from sqlmodel import Session

    from subscribers.geometry import import_zone_geojson

    features = []
    for feature in json.loads(SIDO.read_text(encoding="utf-8"))["features"]:
        try:
            (code,) = zones.resolve(feature["properties"]["name"])
        except (zones.ZoneError, ValueError):
            continue
        features.append({**feature, "properties": {"WarnCode": code, "name": feature["properties"]["name"]}})
    with tempfile.NamedTemporaryFile("w", suffix=".geojson", delete=False) as handle:
        json.dump({"type": "FeatureCollection", "features": features}, handle)
    engine = make_engine(f"sqlite:///{path}")
    with Session(engine) as session:
        report = import_zone_geojson(session, Path(handle.name), known=zones.is_known)
        session.commit()
    engine.dispose()
    os.unlink(handle.name)
    print(f"  zone outlines imported: {len(report.imported)} ({len(report.repaired)} repaired)")


def jeonnam_outline(tolerance_deg: float = 0.0) -> list[tuple[float, float]]:
    """The largest part of the 전라남도 outline as (lat, lon): a coastal warning polygon drawn along the coast.
    Simplified by ``tolerance_deg`` (0.01° is about 1 km: the ~300 vertices a drawn warning area might have)."""
    from subscribers.geometry import feature_geometry

    feature = next(f for f in json.loads(SIDO.read_text(encoding="utf-8"))["features"]
                   if f["properties"]["name"] == "전라남도")
    geom, _ = feature_geometry(feature, 0, "L1050000")
    part = max(shapely.get_parts(geom), key=lambda p: p.area)
    if tolerance_deg:
        part = part.simplify(tolerance_deg)
    return [(lat, lon) for lon, lat in part.exterior.coords]


# -- measuring ----------------------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM). Not getrusage's ru_maxrss: on Linux that keeps the parent's RSS
    at fork time across exec, so a child of the data-generating parent would report the parent's 2 GB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median ms, p95 ms, last result) of ``repeat`` calls after one warm-up call."""
    result = fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))], result


def first_calls(fn: Callable[[], Any], forget: Callable[[], Any], times: int = FIRST_CALLS) -> tuple[float, float]:
    """Median wall-clock ms and median CPU ms (this thread's) of ``times`` calls of ``fn``, each right after
    ``forget()`` dropped what earlier calls kept (a new warning's first match). On a
    machine shared with other work the wall clock includes waiting for a core; the CPU time is the call's own."""
    walls, cpus = [], []
    for _ in range(times):
        forget()
        cpu, started = time.thread_time(), time.perf_counter()
        fn()
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.thread_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" (1/5/15 min, {os.cpu_count()} cores)"


def geo_nbytes(index: GeoIndex) -> int:
    total = 0
    for points in (index.points, index.vessels):
        total += sum(a.nbytes for a in vars(points).values() if isinstance(a, np.ndarray))
    return total


def brute_force(index: GeoIndex, latlon: list[tuple[float, float]] | Any, at: datetime) -> np.ndarray:
    """Every point and vessel tested against the polygon (a CAP ring of (lat, lon), or a stored outline: a shapely
    (multi)polygon), exactly as documented, with no index: the baseline. Distances in numpy against every segment;
    for a detailed outline (that would take minutes) by GEOS."""
    poly = shapely.Polygon([(lon, lat) for lat, lon in latlon]) if isinstance(latlon, list) else latlon
    shapely.prepare(poly)
    merc = mercator(poly)
    segs = outline_segments(merc)
    owners = []
    for pts, fresh in ((index.points, None), (index.vessels, index.vessels.fix_at)):
        hit = shapely.intersects_xy(poly, pts.lon, pts.lat)
        rest = np.flatnonzero(~hit & (pts.radius > 0))
        if len(segs) > 400:
            hit[rest] = reaches_km(merc, pts.lon[rest], pts.lat[rest], pts.radius[rest])
        else:
            hit[rest] = distance_km_to_segments(segs, pts.lon[rest], pts.lat[rest]) <= pts.radius[rest]
        if fresh is not None:
            hit &= fresh >= at.timestamp() - index.stale_after.total_seconds()
        owners.append(pts.owner[hit])
    return np.unique(np.concatenate(owners))


def measure(db_path: Path, repeat: int) -> None:
    from sqlmodel import Session

    from subscribers import store
    from subscribers.live_zone_index import LiveZoneIndex
    from subscribers.matching import matching_ids_sql

    engine = make_engine(f"sqlite:///{db_path}")
    with Session(engine) as session:
        people = session.connection().exec_driver_sql("SELECT count(*) FROM subscriber").scalar_one()
    now = datetime.now(UTC)
    base = rss_mb()
    live = LiveZoneIndex(max_age_s=3600)
    started = time.perf_counter()
    live.ensure_built(engine)
    zone_build_s = time.perf_counter() - started
    after_zone, peak_zone = rss_mb(), peak_rss_mb()
    index = live.snapshot
    assert index is not None
    with Session(engine) as session:
        started = time.perf_counter()
        geo = GeoIndex.from_session(session, buffer_nm=1.0)
        geo_build_s = time.perf_counter() - started
    after_geo = rss_mb()
    print(f"{people:,} subscribers in {db_path} ({db_path.stat().st_size / 2**30:.1f} GiB); "
          f"load average {load_average()}")
    print(f"process RSS before building: {base:,.0f} MB")
    print(f"ZoneIndex (LiveZoneIndex.ensure_built): {zone_build_s:6.1f} s, RSS +{after_zone - base:,.0f} MB, "
          f"id arrays {index.nbytes() / 2**20:,.0f} MB ({index.subscription_count():,} zone rows, "
          f"{len(index._groups)} precomputed groups, {index.id_dtype}); peak RSS so far {peak_zone:,.0f} MB")
    print(f"GeoIndex.from_session:                  {geo_build_s:6.1f} s, RSS +{after_geo - after_zone:,.0f} MB, "
          f"arrays {geo_nbytes(geo) / 2**20:,.0f} MB ({len(geo.points):,} points, {len(geo.vessels):,} vessels, "
          f"{len(geo.zones)} outlines)")
    total = after_geo - base
    print(f"both indexes resident: {total:,.0f} MB (goal < 2,048 MB: {'met' if total < 2048 else 'NOT met'}); "
          f"peak RSS of the process while building: {peak_rss_mb():,.0f} MB")

    print(f"\nzone alerts: median / p95 of {repeat} calls (ms); SQL: median of 3")
    print(f"(live.ids keeps a snapshot's answer per set of zones: 'first' is the median of {FIRST_CALLS} calls with "
          "nothing kept, as the first match of a new warning; 'cpu' the same calls' CPU time)")
    print(f"{'alert':<28} {'matched':>10} {'lookup':>15} {'live.ids':>15} {'first':>7} {'cpu':>6} {'SQL':>9} "
          f"{'ratio':>7}")
    live.ids(engine, ["S1251100"])  # the statements' first compilation is not a warning's match
    for label, codes in ZONE_ALERTS.items():
        sql_ms, _, expected = timed(lambda c=codes: matching_ids_sql(engine, c), 3)
        med, p95, got = timed(lambda c=codes: index.lookup(c), repeat)
        first_ms, first_cpu = first_calls(lambda c=codes: live.ids(engine, c), live._lookups.clear)
        lmed, lp95, lgot = timed(lambda c=codes: live.ids(engine, c), repeat)
        assert np.array_equal(got, expected) and np.array_equal(lgot, expected), label
        print(f"{label:<28} {len(got):>10,} {med:>7.3f} /{p95:>6.3f} {lmed:>7.3f} /{lp95:>6.3f} {first_ms:>7.2f} "
              f"{first_cpu:>6.2f} {sql_ms:>9.0f} {sql_ms / lmed:>6.0f}x")
    with Session(engine) as session:
        # a new number each run: the file is reused, and adding a known person again may change nothing
        store.add_subscriber(session, f"0199{time.time_ns() // 1000 % 10**7:07d}", ["S1251100", "L1010200"])
        session.commit()
    print("after one person subscribed (the change log the live index rechecks):")
    for label, codes in ZONE_ALERTS.items():
        lmed, lp95, lgot = timed(lambda c=codes: live.ids(engine, c), repeat)
        assert np.array_equal(lgot, matching_ids_sql(engine, codes)), label
        print(f"  {label:<26} {len(lgot):>10,} live.ids {lmed:7.3f} / {lp95:6.3f} ms")
    assert live.builds == 1, "a change must not rebuild the index"
    largest = live.ids(engine, ["L1000000"])
    tl_ms, _, _ = timed(largest.tolist, 5)
    print(f"(not matching: the {len(largest):,} ids of 'all land' as a list of Python ints take {tl_ms:.0f} ms more)")

    print(f"\npolygon alerts: GeoIndex.affected median / p95 of {repeat} calls (ms); baseline: brute force, "
          "one run after a warm-up")
    coast, detailed = jeonnam_outline(0.01), jeonnam_outline()
    for label, polygon in (("sea area off 전남, 5 vertices", SEA_BOX),
                           (f"전남 coast, {len(coast)} vertices (1 km)", coast),
                           (f"전남 coast, {len(detailed)} vertices (full)", detailed)):
        first_ms, first_cpu = first_calls(lambda p=polygon: geo.affected(polygons=[p], at=now),
                                          geoindex._SHAPES.clear)
        med, p95, found = timed(lambda p=polygon: geo.affected(polygons=[p], at=now), repeat)
        codes = sorted(found.zone_codes)
        zmed, zp95, by_zone = timed(lambda c=codes: live.ids(engine, c), repeat)
        brute_ms, _, brute = timed(lambda p=polygon: brute_force(geo, p, now), 1)
        assert np.array_equal(found.subscriber_ids, brute), label
        everyone = np.union1d(found.subscriber_ids, by_zone)
        print(f"{label}:")
        print(f"  points + vessels + outlines: {med:8.3f} / {p95:7.3f} ms -> {len(found.subscriber_ids):,} "
              f"subscribers, {len(found.mmsis):,} vessels, zones {codes}")
        print(f"  the same, first call (shape and grid of the polygon not kept yet): median of {FIRST_CALLS} "
              f"{first_ms:8.3f} ms (CPU {first_cpu:.3f} ms)")
        print(f"  subscribers of those zones:  {zmed:8.3f} / {zp95:7.3f} ms -> {len(by_zone):,}")
        print(f"  brute force (every point):   {brute_ms:8.1f} ms, same {len(brute):,}: {brute_ms / med:.0f}x slower; "
              f"everyone reached: {len(everyone):,}")
    measure_outline_alerts(engine, live, geo, now, repeat)
    measure_live_geo(engine, coast, repeat)
    engine.dispose()
    print(f"load average at the end: {load_average()}")


def measure_outline_alerts(engine: Any, live: Any, geo: GeoIndex, now: datetime, repeat: int) -> None:
    """Zone alerts whose warned zones have stored outlines: the points and vessels inside them
    (``GeoIndex.affected_by_zones``, what ``LiveGeoIndex`` asks of its snapshot when nothing changed) and the whole
    audience as ``Audience._find`` gathers it (the zone index's ids plus those; the benchmark has no vessel
    position history, and the vessels' owners are among those ids), as the fan-out reads it (disjoint sorted parts,
    ``_Found.id_parts``) and as one merged array (``_Found.id_array``, the per-person path). Asked two
    ways: with the alert's leaves, as the pipeline does (the province outlines imported here are stored under group
    codes, which no leaf list names: only the leaf-coded 부산, 대전, 울산 are matched that way), and with the codes of
    the stored outlines the warned zones cover (the outline's own code: what a leaf outline as detailed as 전남's
    costs). 'first': nothing kept by earlier alerts (what the index's build prepared stays: a new warning after a
    build). Answers asserted equal to brute force, outline by outline."""
    from alerts.audience import _Found
    from subscribers.id_parts import IdParts
    from subscribers.matching import alert_leaves

    outlines = {str(c): g for c, g in zip(geo.zones.codes, geo.zones.geometries, strict=True)}
    print(f"\nzone alerts by stored outline ({len(outlines)} outlines: {', '.join(sorted(outlines))})")
    print(f"GeoIndex.affected_by_zones: median / p95 of {repeat} calls and first call (median of {FIRST_CALLS}, "
          "nothing kept by earlier alerts) in ms; 'audience': the zone index's ids plus those, first call")

    def forget() -> None:
        geo.zones.__dict__.pop("_shapes", None)  # the outlines' shapes kept by earlier alerts
        live._lookups.clear()

    for label, codes in OUTLINE_ALERTS.items():
        leaves = alert_leaves(codes)
        covered = [c for c in outlines if set(alert_leaves([c])) <= set(leaves)]
        for how, asked in (("as the pipeline asks (leaves)", leaves), ("by the covered outlines' codes", covered)):
            matched = sorted(set(asked) & set(outlines))
            first_ms, first_cpu = first_calls(lambda a=asked: geo.affected_by_zones(a, at=now), forget)
            med, p95, found = timed(lambda a=asked: geo.affected_by_zones(a, at=now), repeat)

            def audience(a: list[str] = asked, c: list[str] = codes) -> IdParts:
                zone = live.answer(engine, c)
                ids = [zone.ids, geo.affected_by_zones(a, at=now).subscriber_ids]
                return _Found(ids=ids, at_sea=False, zone=zone).id_parts()  # as Audience.recipient_groups reads them

            def merged(a: list[str] = asked, c: list[str] = codes) -> np.ndarray:
                zone = live.answer(engine, c)
                ids = [zone.ids, geo.affected_by_zones(a, at=now).subscriber_ids]
                return _Found(ids=ids, at_sea=False, zone=zone).id_array()  # one array, as Audience.recipients does

            aud_first, _ = first_calls(audience, forget)
            aud_med, _, parts = timed(audience, repeat)
            one_first, _ = first_calls(merged, forget)
            brute = (np.unique(np.concatenate([brute_force(geo, outlines[c], now) for c in matched]))
                     if matched else np.empty(0, dtype=np.int64))
            assert np.array_equal(found.subscriber_ids, brute), (label, how)
            everyone = np.union1d(live.ids(engine, codes), brute)
            assert np.array_equal(parts.merged(), everyone) and np.array_equal(merged(), everyone), (label, how)
            assert sum(len(p) for p in parts.parts) == len(everyone), (label, how)  # disjoint parts
            print(f"{label}, {how}: {len(matched)} outlines {'+'.join(matched) if len(matched) < 4 else ''}")
            print(f"  by outline: {med:7.3f} / {p95:7.3f} ms, first {first_ms:7.3f} ms (CPU {first_cpu:.3f}) -> "
                  f"{len(found.subscriber_ids):,} subscribers, {len(found.mmsis):,} vessels; same as brute force")
            print(f"  audience (zone ids + outlines): {aud_med:7.3f} ms, first {aud_first:7.3f} ms -> "
                  f"{len(everyone):,} in {len(parts.parts)} disjoint sorted parts; as one merged array: first "
                  f"{one_first:7.3f} ms; same as zone ids + brute force")


def measure_live_geo(engine: Any, polygon: list[tuple[float, float]], repeat: int) -> None:
    """The pipeline's geometry index (``LiveGeoIndex``): its answers while a background rebuild runs, after a
    person subscribed a point and a boat moved inside ``polygon`` (both through the change logs)."""
    from sqlalchemy import inspect, text
    from sqlmodel import Session

    from subscribers.live_geoindex import LiveGeoIndex

    if not inspect(engine).has_table("vessel_change"):
        print("\n(LiveGeoIndex not measured: this file predates migration 0021; run `alimcast db upgrade` on a copy)")
        return
    now = datetime.now(UTC)
    live = LiveGeoIndex(buffer_nm=1.0, max_age_s=0.0, background_rebuild=True)
    with Session(engine) as session:
        started = time.perf_counter()
        live.ensure_built(session)
        session.commit()
        build_s = time.perf_counter() - started
    with engine.begin() as conn:
        person = conn.execute(text("SELECT min(id) FROM subscriber WHERE status = 'active'")).scalar_one()
        conn.execute(text("INSERT INTO subscription (subscriber_id, kind, lat, lon) VALUES (:p, 'point', :lat, :lon)"),
                     {"p": person, "lat": 34.8, "lon": 126.6})
        mmsi = conn.execute(text("SELECT min(mmsi) FROM vessel")).scalar_one()
        conn.execute(text("UPDATE vessel SET last_lat = 34.81, last_lon = 126.61, last_fix_at = :at WHERE mmsi = :m"),
                     {"at": sqlite_datetime(now), "m": mmsi})
    times: list[float] = []
    with Session(engine) as session:
        found = live.affected(session, [polygon], at=now)  # finds the snapshot too old: a rebuild starts
        live.max_age_s = 3600.0  # and no other after it
        started = time.perf_counter()
        while live.builds == 1 and len(times) < 100_000:  # answers for as long as the rebuild runs
            began = time.perf_counter()
            found = live.affected(session, [polygon], at=now)
            times.append((time.perf_counter() - began) * 1000)
        rebuild_s = time.perf_counter() - started
        live.wait_for_rebuild(600)
        fresh = GeoIndex.from_session(session, buffer_nm=1.0).affected([polygon], at=now)
    assert person in found.subscriber_ids and mmsi in found.mmsis
    assert np.array_equal(found.subscriber_ids, fresh.subscriber_ids), "live answer differs from a fresh build"
    with engine.begin() as conn:  # leave the file as it was
        conn.execute(text("DELETE FROM subscription WHERE subscriber_id = :p AND kind = 'point' AND lat = 34.8 "
                          "AND lon = 126.6"), {"p": person})
    times.sort()
    print(f"\nLiveGeoIndex (the pipeline's geometry index): first build {build_s:.1f} s; then a point and a boat "
          f"changed and the snapshot found too old: a background rebuild of {rebuild_s:.1f} s, during which "
          f"{len(times):,} answers for the 전남 coast ({len(polygon)} vertices, through the change logs) took median "
          f"{statistics.median(times):.2f} ms, p95 {times[int(0.95 * (len(times) - 1))]:.2f} ms, "
          f"max {times[-1]:.2f} ms; {len(found.subscriber_ids):,} subscribers, equal to a fresh build; "
          f"builds: {live.builds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000_000)
    parser.add_argument("--point-share", type=float, default=0.1)
    parser.add_argument("--vessels", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--repeat", type=int, default=51)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "alimcast_bench_national")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        measure(args.measure, args.repeat)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    name = f"national_{args.people}_{args.point_share}_{args.vessels}_{args.seed}_v{SCHEMA_VERSION}.db"
    db_path = args.workdir / name
    done = Path(f"{db_path}.done")
    if done.exists():
        print(f"reusing {db_path}")
    else:
        started = time.perf_counter()
        write_database(db_path, args.people, args.point_share, args.vessels, args.seed)
        done.touch()
        print(f"wrote {db_path} in {time.perf_counter() - started:.0f} s (raw inserts, then indexes and triggers)")
    # a fresh process: its memory before and after each build is the indexes' alone
    subprocess.run([sys.executable, __file__, "--measure", str(db_path), "--repeat", str(args.repeat)], check=True)


if __name__ == "__main__":
    main()
