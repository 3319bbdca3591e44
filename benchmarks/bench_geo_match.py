"""Geometry matching at national scale: GeoIndex vs brute-force shapely vs PostGIS, measured in one run.

Data (seeded RNG, Korean waters 124-132°E, 32-39°N): 1,000,000 subscribers each with a fixed point
(30 % with a radius of 0.5-10 km), 50,000 subscribed vessels with fresh fixes, 200 zone outlines.
One alert polygon (~60 x 50 km off 전남) is matched. Printed: medians of building the index and of the
query, and the ratios against
  * brute force: shapely.intersects_xy of every row against the polygon buffered by the largest reach
    (no prefilter; a cheaper, approximate question than GeoIndex answers, so the ratio is conservative);
  * PostGIS 3 answering the same question, on a throwaway cluster started here, asked two ways:
    ST_DWithin on geography with a GiST index (the natural form: a point within its radius of the polygon),
    and ST_Intersects with a GiST index on each subscriber's reach stored as a geometry (the point buffered
    by its radius, a vessel by the boundary buffer). If PostGIS is not installed (Debian:
    postgresql-15-postgis-3) or the server cannot start, a "skip:" line says why.

Run: python benchmarks/bench_geo_match.py [--points 1000000] [--vessels 50000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon, box

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pgserver import PgServer  # noqa: E402

from subscribers.geodesy import KM_PER_DEG_LAT, KM_PER_NM  # noqa: E402
from subscribers.geoindex import GeoIndex, ZoneTree  # noqa: E402

NOW = datetime.now(UTC)
ALERT = [(34.2, 125.9), (34.6, 125.8), (34.75, 126.3), (34.5, 126.55), (34.15, 126.35)]


def median_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


def make_data(n_points: int, n_vessels: int, seed: int = 20260501) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "p_lon": rng.uniform(124.0, 132.0, n_points), "p_lat": rng.uniform(32.0, 39.0, n_points),
        "p_rad": np.where(rng.random(n_points) < 0.3, rng.uniform(0.5, 10.0, n_points), 0.0),
        "p_own": np.arange(1, n_points + 1, dtype=np.int64),
        "v_lon": rng.uniform(124.0, 132.0, n_vessels), "v_lat": rng.uniform(32.0, 39.0, n_vessels),
        "v_mmsi": 440_000_000 + np.arange(n_vessels, dtype=np.int64),
        "v_own": rng.integers(1, n_points + 1, n_vessels).astype(np.int64),
        "v_at": np.full(n_vessels, NOW.timestamp() - 600.0),
        "z_lon": rng.uniform(124.0, 131.5, 200), "z_lat": rng.uniform(32.0, 38.5, 200),
    }


def build(d: dict[str, np.ndarray]) -> GeoIndex:
    zones = ZoneTree([f"Z{i:03d}" for i in range(len(d["z_lon"]))],
                     [box(x, y, x + 0.5, y + 0.5) for x, y in zip(d["z_lon"], d["z_lat"], strict=True)])
    return GeoIndex(zones=zones, point_lon=d["p_lon"], point_lat=d["p_lat"], point_radius_km=d["p_rad"],
                    point_owner=d["p_own"], vessel_mmsi=d["v_mmsi"], vessel_lon=d["v_lon"], vessel_lat=d["v_lat"],
                    vessel_fix_at=d["v_at"], vessel_owner=d["v_own"], buffer_nm=1.0)


def brute_force(d: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
    poly = Polygon([(lon, lat) for lat, lon in ALERT])
    reach_deg = max(float(d["p_rad"].max()), KM_PER_NM) / (KM_PER_DEG_LAT * np.cos(np.radians(35.0)))
    buffered = poly.buffer(reach_deg)
    shapely.prepare(buffered)

    def run() -> np.ndarray:
        hit_p = shapely.intersects_xy(buffered, d["p_lon"], d["p_lat"])
        hit_v = shapely.intersects_xy(buffered, d["v_lon"], d["v_lat"])
        return np.unique(np.concatenate([d["p_own"][hit_p], d["v_own"][hit_v]]))

    return run


# -- PostGIS ------------------------------------------------------------------------------------------------


def _postgis_missing() -> str | None:
    if not list(Path("/usr/share/postgresql").glob("*/extension/postgis.control")):
        return "PostGIS is not installed (Debian: apt-get install postgresql-15-postgis-3)"
    return None


POSTGIS_INTERSECTS_QUERY = """
WITH alert AS (SELECT ST_GeomFromText(%(wkt)s, 4326) AS g)
SELECT sub_id FROM point_sub, alert WHERE ST_Intersects(reach, alert.g)
UNION
SELECT sub_id FROM vessel_sub, alert WHERE ST_Intersects(reach, alert.g) AND fix_at >= %(cutoff)s
"""

POSTGIS_QUERY = """
WITH alert AS (SELECT ST_GeomFromText(%(wkt)s, 4326)::geography AS g)
SELECT sub_id FROM point_sub, alert
 WHERE ST_DWithin(geog, alert.g, %(max_reach_m)s) AND ST_DWithin(geog, alert.g, radius_m)
UNION
SELECT sub_id FROM vessel_sub, alert
 WHERE ST_DWithin(geog, alert.g, %(buffer_m)s) AND fix_at >= %(cutoff)s
"""


def postgis(d: dict[str, np.ndarray], repeat: int) -> dict[str, tuple[float, int]] | str:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    server = PgServer()  # the test suite's throwaway server (initdb/pg_ctl, run as postgres under root)
    reason = server.available or _postgis_missing()
    if reason:
        return reason
    try:
        server.start()
        dsn = f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres"
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return f"PostgreSQL did not start: {getattr(exc, 'stderr', '') or exc}".strip()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION postgis")
            except psycopg.Error as exc:
                return f"CREATE EXTENSION postgis failed: {exc}".splitlines()[0]
            conn.execute("CREATE TABLE point_sub (sub_id bigint, radius_m float8, geog geography(Point, 4326))")
            conn.execute("CREATE TABLE vessel_sub (sub_id bigint, mmsi bigint, fix_at float8, "
                         "geog geography(Point, 4326))")
            t = time.perf_counter()
            _copy(conn, "COPY point_sub (sub_id, radius_m, geog) FROM STDIN",
                  zip(d["p_own"], d["p_rad"] * 1000.0, d["p_lon"], d["p_lat"], strict=True))
            _copy(conn, "COPY vessel_sub (sub_id, mmsi, fix_at, geog) FROM STDIN",
                  zip(d["v_own"], d["v_mmsi"], d["v_at"], d["v_lon"], d["v_lat"], strict=True))
            conn.execute("CREATE INDEX ON point_sub USING GIST (geog)")
            conn.execute("CREATE INDEX ON vessel_sub USING GIST (geog)")
            conn.execute("ANALYZE")
            load_s = time.perf_counter() - t
            t = time.perf_counter()
            conn.execute("ALTER TABLE point_sub ADD COLUMN reach geometry")
            conn.execute("UPDATE point_sub SET reach = CASE WHEN radius_m > 0 "
                         "THEN ST_Buffer(geog, radius_m)::geometry ELSE geog::geometry END")
            conn.execute("ALTER TABLE vessel_sub ADD COLUMN reach geometry")
            conn.execute("UPDATE vessel_sub SET reach = ST_Buffer(geog, %(buffer_m)s)::geometry",
                         {"buffer_m": KM_PER_NM * 1000.0})
            conn.execute("CREATE INDEX ON point_sub USING GIST (reach)")
            conn.execute("CREATE INDEX ON vessel_sub USING GIST (reach)")
            conn.execute("VACUUM ANALYZE")
            reach_s = time.perf_counter() - t
            params = {"wkt": Polygon([(lon, lat) for lat, lon in ALERT]).wkt,
                      "max_reach_m": float(d["p_rad"].max()) * 1000.0, "buffer_m": KM_PER_NM * 1000.0,
                      "cutoff": NOW.timestamp() - 6 * 3600}
            ms, rows = median_ms(lambda: conn.execute(POSTGIS_QUERY, params).fetchall(), repeat)
            ims, irows = median_ms(lambda: conn.execute(POSTGIS_INTERSECTS_QUERY, params).fetchall(), repeat)
            print(f"postgis load (COPY + GiST + ANALYZE):      {load_s * 1000:10.1f} ms (once)")
            print(f"postgis reach geometries (buffer + GiST):  {reach_s * 1000:10.1f} ms (once)")
            return {"ST_DWithin + GiST": (ms, len(rows)), "ST_Intersects + GiST": (ims, len(irows))}
    finally:
        server.stop()


def _copy(conn: Any, sql: str, rows: Any) -> None:
    buf = io.StringIO()
    for row in rows:
        *vals, lon, lat = row
        buf.write("\t".join(str(v) for v in vals) + f"\tSRID=4326;POINT({lon} {lat})\n")
    with conn.cursor().copy(sql) as copy:
        copy.write(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--vessels", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-postgis", action="store_true")
    args = parser.parse_args()

    d = make_data(args.points, args.vessels)
    print(f"data: {args.points:,} point subscribers (30% with a radius), {args.vessels:,} vessels, 200 zones")
    build_ms, index = median_ms(lambda: build(d), max(3, args.repeat // 10))
    query_ms, got = median_ms(lambda: index.affected(polygons=[ALERT], at=NOW), args.repeat)
    brute_ms, brute = median_ms(brute_force(d), max(3, args.repeat // 3))
    print(f"build GeoIndex (median):                   {build_ms:10.1f} ms")
    print(f"match 1 polygon alert, GeoIndex (median):  {query_ms:10.2f} ms -> {got.subscriber_ids.size:,} subscribers,"
          f" {len(got.zone_codes)} zones, {got.mmsis.size} vessels  (goal < 5 ms: "
          f"{'met' if query_ms < 5 else 'NOT met'})")
    print(f"brute-force shapely, no prefilter (median): {brute_ms:9.2f} ms -> {brute.size:,} candidates"
          f"  ratio {brute_ms / query_ms:.1f}x slower")
    if args.no_postgis:
        print("skip: PostGIS comparison (--no-postgis)")
        return
    outcome = postgis(d, args.repeat)
    if isinstance(outcome, str):
        print(f"skip: PostGIS comparison: {outcome}")
        return
    for label, (pg_ms, pg_count) in outcome.items():
        met = "met" if pg_ms >= 5 * query_ms else "NOT met"
        print(f"PostGIS {label + ' (median):':<34} {pg_ms:10.2f} ms -> {pg_count:,} subscribers"
              f"  ratio {pg_ms / query_ms:.1f}x slower (goal at least 5x: {met})")
    print("  (same question; the spheroid, the sphere and buffered polygons may differ by a few at the edges)")


if __name__ == "__main__":
    main()
