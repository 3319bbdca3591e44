"""The polygon grid decides points by their cell only where that is provably the exact answer.

GeoIndex with the grid (many candidates) must return exactly what it returns testing every candidate, on
detailed random outlines (hundreds of vertices, holes, far north) with radii and vessels, and on the real
전라남도 coast; and every cell the grid calls INSIDE or OUTSIDE must hold no point of the other side.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from subscribers import geoindex
from subscribers.geodesy import EARTH_RADIUS_KM, OutlineReach, mercator, mercator_y, outline_segments, reaches_km
from subscribers.geoindex import GeoIndex
from subscribers.geometry import feature_geometry
from subscribers.polygon_grid import EDGE, INSIDE, OUTSIDE, PolygonGrid

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def star(rng: np.random.Generator, lat: float, lon: float, n: int, size: float) -> list[tuple[float, float]]:
    """A star-shaped ring of n vertices with a ragged coast (lat, lon)."""
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    r = size * rng.uniform(0.3, 1.0, n)
    return [(lat + 0.8 * ri * math.sin(a), lon + ri * math.cos(a)) for ri, a in zip(r, ang, strict=True)]


def index_around(rng: np.random.Generator, lat: float, lon: float, spread: float, n: int) -> GeoIndex:
    p_lat = rng.uniform(lat - spread, lat + spread, n)
    p_lon = (rng.uniform(lon - spread, lon + spread, n) + 180.0) % 360.0 - 180.0
    p_rad = np.where(rng.random(n) < 0.4, rng.uniform(0.05, 12.0, n), 0.0)
    v = n // 4
    return GeoIndex(point_lat=p_lat, point_lon=p_lon, point_radius_km=p_rad, point_owner=np.arange(n),
                    vessel_mmsi=np.arange(v), vessel_lat=rng.uniform(lat - spread, lat + spread, v),
                    vessel_lon=(rng.uniform(lon - spread, lon + spread, v) + 180.0) % 360.0 - 180.0,
                    vessel_fix_at=np.full(v, NOW.timestamp()), vessel_owner=np.arange(n, n + v), buffer_nm=1.0)


def both_ways(monkeypatch: pytest.MonkeyPatch, index: GeoIndex, polygon: list[tuple[float, float]],
              geos: bool) -> tuple[np.ndarray, np.ndarray]:
    monkeypatch.setattr(geoindex, "_NUMPY_DISTANCE_SEGMENTS", 0 if geos else 10**9)
    monkeypatch.setattr(geoindex, "_GRID_MIN_CANDIDATES", 0)
    with_grid = index.affected(polygons=[polygon], at=NOW).subscriber_ids
    monkeypatch.setattr(geoindex, "_GRID_MIN_CANDIDATES", 10**12)
    without = index.affected(polygons=[polygon], at=NOW).subscriber_ids
    return with_grid, without


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), vertices=st.integers(3, 400), lat=st.sampled_from([-33.0, 0.5, 35.0, 71.0]),
       size=st.sampled_from([0.05, 0.4, 1.5]), geos=st.booleans())
def test_grid_gives_the_same_ids_as_testing_every_point(monkeypatch: pytest.MonkeyPatch, seed: int, vertices: int,
                                                         lat: float, size: float, geos: bool) -> None:
    rng = np.random.default_rng(seed)
    lon = float(rng.uniform(-170, 170))
    index = index_around(rng, lat, lon, 1.3 * size + 0.1, 3000)
    polygon = star(rng, lat, lon, vertices, size)
    with_grid, without = both_ways(monkeypatch, index, polygon, geos)
    assert np.array_equal(with_grid, without)


def test_grid_across_the_antimeridian(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    index = index_around(rng, 10.0, 179.8, 1.5, 6000)
    ring = star(rng, 10.0, 179.8, 200, 1.0)  # crosses 180: unwrapped by the index
    with_grid, without = both_ways(monkeypatch, index, ring, geos=True)
    assert np.array_equal(with_grid, without) and len(with_grid) > 100


@pytest.mark.parametrize("geos", [False, True])
def test_grid_on_a_zone_outline_with_a_hole(monkeypatch: pytest.MonkeyPatch, geos: bool) -> None:
    rng = np.random.default_rng(8)
    outer = Polygon([(lon, lat) for lat, lon in star(rng, 35.0, 127.0, 300, 1.0)])
    zone = outer.difference(shapely.Point(127.0, 35.0).buffer(0.2))  # a hole round the centre
    index = index_around(rng, 35.0, 127.0, 1.3, 8000)
    index.zones = geoindex.ZoneTree(["Z1"], [zone])
    monkeypatch.setattr(geoindex, "_NUMPY_DISTANCE_SEGMENTS", 0 if geos else 10**9)
    monkeypatch.setattr(geoindex, "_GRID_MIN_CANDIDATES", 0)
    with_grid = index.affected_by_zones(["Z1"], at=NOW).subscriber_ids
    monkeypatch.setattr(geoindex, "_GRID_MIN_CANDIDATES", 10**12)
    without = index.affected_by_zones(["Z1"], at=NOW).subscriber_ids
    assert np.array_equal(with_grid, without) and len(with_grid) > 100


def jeonnam(shared_dir: Path) -> list[tuple[float, float]]:
    sido = shared_dir / "zones" / "kr_sido_2018_kostat_geo_simple.geojson"
    feature = next(f for f in json.loads(sido.read_text(encoding="utf-8"))["features"]
                   if f["properties"]["name"] == "전라남도")
    geom, _ = feature_geometry(feature, 0, "L1050000")
    part = max(shapely.get_parts(geom), key=lambda p: p.area)
    return [(y, x) for x, y in part.exterior.coords]


def test_grid_on_the_jeonnam_coast(monkeypatch: pytest.MonkeyPatch, shared_dir: Path) -> None:
    rng = np.random.default_rng(11)
    index = index_around(rng, 34.9, 127.0, 1.0, 20_000)
    with_grid, without = both_ways(monkeypatch, index, jeonnam(shared_dir), geos=True)
    assert np.array_equal(with_grid, without) and len(with_grid) > 1000


@pytest.mark.parametrize("geos", [False, True])
def test_points_on_the_outline_with_and_without_a_reach_over_it(monkeypatch: pytest.MonkeyPatch, geos: bool) -> None:
    """Points in the cells the outline crosses, inside and outside, with radii below and above their cell's bound
    (a disc surely over the outline is a hit from either side, without asking which): as testing every point."""
    rng = np.random.default_rng(14)
    ring = star(rng, 35.0, 127.0, 300, 1.0)
    vertices = np.array(ring)[rng.integers(0, len(ring), 6000)]
    p_lat, p_lon = vertices[:, 0] + rng.normal(0, 0.004, 6000), vertices[:, 1] + rng.normal(0, 0.004, 6000)
    radius = np.where(rng.random(6000) < 0.3, 0.0, rng.uniform(0.05, 4.0, 6000))
    index = GeoIndex(point_lat=p_lat, point_lon=p_lon, point_radius_km=radius, point_owner=np.arange(6000),
                     vessel_mmsi=np.arange(1500), vessel_lat=p_lat[:1500], vessel_lon=p_lon[:1500],
                     vessel_fix_at=np.full(1500, NOW.timestamp()), vessel_owner=np.arange(6000, 7500), buffer_nm=1.0)
    geoindex._SHAPES.clear()
    with_grid, without = both_ways(monkeypatch, index, ring, geos)
    assert np.array_equal(with_grid, without)
    (shape,) = geoindex._SHAPES.values()
    (grid,) = shape._grids.values()
    state, cell = grid.classify(p_lon, p_lat)
    on_edge = state == EDGE
    over = on_edge & (grid.max_km(cell) <= radius)
    inside = shapely.intersects_xy(shape.unwrapped, p_lon, p_lat)
    assert on_edge.mean() > 0.5 and (over & inside).any() and (over & ~inside).any()
    assert np.isin(np.flatnonzero(over), with_grid).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), vertices=st.integers(3, 300))
def test_cells_called_inside_or_outside_are(seed: int, vertices: int) -> None:
    rng = np.random.default_rng(seed)
    ring = star(rng, 35.0, 127.0, vertices, 0.5)
    poly = shapely.make_valid(Polygon([(lon, lat) for lat, lon in ring]))
    x0, y0, x1, y1 = poly.bounds
    grid = PolygonGrid(poly, x0 - 0.1, y0 - 0.1, x1 + 0.1, y1 + 0.1, cells=int(rng.integers(8, 200)))
    lon, lat = rng.uniform(x0 - 0.1, x1 + 0.1, 20_000), rng.uniform(y0 - 0.1, y1 + 0.1, 20_000)
    state, _ = grid.classify(lon, lat)
    inside = shapely.intersects_xy(poly, lon, lat)
    assert inside[state == INSIDE].all()
    assert not inside[state == OUTSIDE].any()
    assert (state == EDGE).sum() < len(state)  # the grid decides some points on its own


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), vertices=st.integers(3, 300), lat=st.sampled_from([-60.0, 0.0, 37.0, 80.0]))
def test_geos_distance_agrees_with_numpy(seed: int, vertices: int, lat: float) -> None:
    """``reaches_km`` (GEOS, for detailed outlines) is ``distance_km_to <= radius`` (numpy) outside the polygon,
    but for exact ties."""
    from subscribers.geodesy import distance_km_to, mercator, reaches_km

    rng = np.random.default_rng(seed)
    poly = shapely.make_valid(Polygon([(x, y) for y, x in star(rng, lat, 20.0, vertices, 0.6)]))
    merc = mercator(poly)
    lon, plat = rng.uniform(19.0, 21.0, 3000), rng.uniform(lat - 1.0, lat + 1.0, 3000)
    radius = rng.uniform(0.0, 30.0, 3000)
    d = distance_km_to(merc, lon, plat)
    # the index asks only about points outside the polygon (inside, the outline may be far but the area is not)
    clear = (np.abs(d - radius) > 1e-9) & ~shapely.intersects_xy(poly, lon, plat)
    assert np.array_equal(reaches_km(merc, lon, plat, radius)[clear], (d <= radius)[clear])


def outline_reach_case(seed: int, vertices: int, lat: float, lon: float) -> tuple[Polygon, BaseGeometry, OutlineReach]:
    """A ragged star with a hole (longitudes beyond 180 when ``lon`` is near it: an unwrapped alert), its Mercator
    outline for GEOS, and that outline's OutlineReach."""
    rng = np.random.default_rng(seed)
    # a star of a few vertices can cross itself (GEOS's difference then raises): made valid first
    outer = shapely.make_valid(Polygon([(x, y) for y, x in star(rng, lat, lon, vertices, 0.6)]))
    poly = shapely.make_valid(outer.difference(shapely.Point(lon, lat).buffer(0.1)))
    merc = mercator(poly)
    outline = shapely.boundary(merc)
    shapely.prepare(outline)
    return poly, outline, OutlineReach(outline_segments(merc), outline)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), vertices=st.integers(3, 700), lat=st.sampled_from([-60.0, 0.0, 37.0, 80.0]),
       lon=st.sampled_from([20.0, 179.9]), block=st.sampled_from([7, OutlineReach.BLOCK]))
def test_outline_reach_answers_as_geos(monkeypatch: pytest.MonkeyPatch, seed: int, vertices: int, lat: float,
                                       lon: float, block: int) -> None:
    """``OutlineReach`` (numpy where the answer is certain, GEOS where not) says exactly what ``reaches_km`` says, for
    points anywhere round the outline and radii from a metre to 50 km, a few pairs at a time or many."""
    monkeypatch.setattr(OutlineReach, "BLOCK", block)
    rng = np.random.default_rng(seed)
    poly, outline, reach = outline_reach_case(seed, vertices, lat, lon)
    near = shapely.get_coordinates(poly)[rng.integers(0, len(shapely.get_coordinates(poly)), 1500)]
    plon = np.concatenate([rng.uniform(lon - 1.0, lon + 1.0, 1500), near[:, 0] + rng.normal(0, 0.02, 1500)])
    plat = np.concatenate([rng.uniform(lat - 1.0, lat + 1.0, 1500), near[:, 1] + rng.normal(0, 0.02, 1500)])
    radius = np.where(rng.random(3000) < 0.1, 0.001, rng.uniform(0.0, 50.0, 3000))
    got = reach.reaches_km(plon, plat, radius)
    assert np.array_equal(got, reaches_km(outline, plon, plat, radius))
    assert 0 < got.sum() < len(got)


def test_outline_reach_leaves_ties_to_geos() -> None:
    """Points whose radius is their distance to the outline (as GEOS measures it, to within rounding) are too close
    to call in numpy: their answers are GEOS's, as before."""
    rng = np.random.default_rng(21)
    poly, outline, reach = outline_reach_case(21, 400, 37.0, 127.0)
    plon, plat = rng.uniform(126.0, 128.0, 2000), rng.uniform(36.0, 38.0, 2000)
    d = shapely.distance(outline, shapely.points(np.radians(plon), mercator_y(plat)))
    scale = EARTH_RADIUS_KM * np.cos(np.radians(plat))
    for nudge in (1 - 1e-15, 1.0, 1 + 1e-15):
        radius = d * scale * nudge
        assert (np.abs(d - radius / scale) <= OutlineReach.margin(radius / scale)).all()  # all in the unsure band
        assert np.array_equal(reach.reaches_km(plon, plat, radius), reaches_km(outline, plon, plat, radius))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), vertices=st.integers(3, 300), lat=st.sampled_from([-60.0, 0.2, 37.0, 71.0]),
       cells=st.integers(16, 300), reach=st.sampled_from([0.5, 4.0, 12.0]))
def test_distance_bounds_hold_for_every_point(seed: int, vertices: int, lat: float, cells: int, reach: float) -> None:
    """A cell's lower and upper bounds enclose the exact distance (the index's Mercator measure) from every point
    in it to the outline, and they are tight enough to decide most points."""
    from subscribers.geodesy import distance_km_to, mercator

    rng = np.random.default_rng(seed)
    poly = shapely.make_valid(Polygon([(x, y) for y, x in star(rng, lat, 20.0, vertices, 0.6)]))
    x0, y0, x1, y1 = poly.bounds
    pad = 0.3
    box = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    max_abs = max(abs(box[1]), abs(box[3]))
    min_abs = 0.0 if box[1] <= 0 <= box[3] else min(abs(box[1]), abs(box[3]))
    grid = PolygonGrid(poly, *box, reach_km=reach, max_abs_lat=max_abs, min_abs_lat=min_abs, cells=cells)
    lon, plat = rng.uniform(box[0], box[2], 4000), rng.uniform(box[1], box[3], 4000)
    _, cell = grid.classify(lon, plat)
    d = distance_km_to(mercator(poly), lon, plat)
    assert (grid.min_km(cell) <= d + 1e-9).all()
    assert (d <= grid.max_km(cell) + 1e-9).all()
    decided = (grid.min_km(cell) > reach) | (grid.max_km(cell) < reach)
    assert decided.any()


def test_points_and_vessels_share_one_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    """One grid per polygon and index (built for the larger reach: points up to 12 km, vessels 1 NM) decides both
    sets, with the answer of testing every point."""
    rng = np.random.default_rng(12)
    index = index_around(rng, 35.0, 127.0, 1.3, 8000)
    ring = star(rng, 35.0, 127.0, 250, 1.0)
    geoindex._SHAPES.clear()
    with_grid, without = both_ways(monkeypatch, index, ring, geos=True)
    assert np.array_equal(with_grid, without) and len(with_grid) > 100
    (shape,) = geoindex._SHAPES.values()
    assert len(shape._grids) == 1
    ((reach, _),) = shape._grids
    assert reach == index.points.max_radius > index.vessels.max_radius


@pytest.mark.parametrize("latlon", [[(35.0, 127.0), (35.5, 127.2), (35.1, 127.6)],
                                    [[35.0, 127.0], [35.5, 127.2], [35.1, 127.6]],
                                    np.array([(35.0, 127.0), (35.5, 127.2), (35.1, 127.6)]),
                                    ((35.0, 127.0), (35.5, 127.2), (35.1, 127.6))])
def test_polygon_coordinates_read_once_in_any_form(latlon: object) -> None:
    coords = geoindex._coordinates(latlon)  # type: ignore[arg-type]
    assert coords.shape == (3, 2) and coords.tolist() == [[35.0, 127.0], [35.5, 127.2], [35.1, 127.6]]


def test_a_bad_polygon_is_named() -> None:
    index = index_around(np.random.default_rng(1), 35.0, 127.0, 1.0, 10)
    for bad in ([(35.0, 127.0, 1.0), (35.5, 127.2), (35.1, 127.6)], [(35.0, 127.0), (35.5, 127.2)], ["x", "y", "z"]):
        with pytest.raises(ValueError, match="polygon 0"):
            index.affected(polygons=[bad], at=NOW)


def test_unique_ids_in_and_beyond_int32() -> None:
    """Owner ids that fit int32 are sorted as int32; others (SQLite ids may pass 2**31) as they are."""
    rng = np.random.default_rng(13)
    for low, high in ((1, 10**6), (-(2**31), 2**31 - 1), (2**31 - 50, 2**31 + 50), (2**40, 2**40 + 10**6)):
        values = rng.integers(low, high, 5000, dtype=np.int64, endpoint=True)
        got = geoindex._unique(values)
        assert got.dtype == np.int64 and got.tolist() == sorted(set(values.tolist()))


def jeonnam_outline(shared_dir: Path) -> BaseGeometry:
    """The whole 전라남도 outline: its coast and 34 islands."""
    sido = shared_dir / "zones" / "kr_sido_2018_kostat_geo_simple.geojson"
    feature = next(f for f in json.loads(sido.read_text(encoding="utf-8"))["features"]
                   if f["properties"]["name"] == "전라남도")
    geom, _ = feature_geometry(feature, 0, "L1050000")
    return geom


def island_index(rng: np.random.Generator, zone: BaseGeometry, code: str = "Z") -> GeoIndex:
    """Points and vessels over the outline's box (and 0.3° around), the outline stored under ``code``."""
    x0, y0, x1, y1 = zone.bounds
    n = 30_000
    p_rad = np.where(rng.random(n) < 0.4, rng.uniform(0.05, 12.0, n), 0.0)
    v = n // 4
    return GeoIndex(zones=geoindex.ZoneTree([code], [zone]),
                    point_lat=rng.uniform(y0 - 0.3, y1 + 0.3, n), point_lon=rng.uniform(x0 - 0.3, x1 + 0.3, n),
                    point_radius_km=p_rad, point_owner=np.arange(n), vessel_mmsi=np.arange(v),
                    vessel_lat=rng.uniform(y0 - 0.3, y1 + 0.3, v), vessel_lon=rng.uniform(x0 - 0.3, x1 + 0.3, v),
                    vessel_fix_at=np.full(v, NOW.timestamp()), vessel_owner=np.arange(n, n + v), buffer_nm=1.0)


def part_by_part(index: GeoIndex, zone: BaseGeometry) -> np.ndarray:
    """The outline's answer as the union of its parts' answers, each part stored as a zone of its own."""
    parts = list(shapely.get_parts(zone))
    single = GeoIndex(zones=geoindex.ZoneTree([f"P{k}" for k in range(len(parts))], parts))
    single.points, single.vessels = index.points, index.vessels
    return single.affected_by_zones([f"P{k}" for k in range(len(parts))], at=NOW).subscriber_ids


def test_an_outline_with_islands_is_matched_as_one_shape_with_the_answers_of_its_parts(shared_dir: Path) -> None:
    zone = jeonnam_outline(shared_dir)
    index = island_index(np.random.default_rng(12), zone)
    shapes = index.zones.shapes(0)
    assert len(shapes) < len(shapely.get_parts(zone)) // 4  # the islands share their coast's shape and grid
    got = index.affected_by_zones(["Z"], at=NOW).subscriber_ids
    assert np.array_equal(got, part_by_part(index, zone)) and len(got) > 1000


def test_parts_far_apart_or_across_the_antimeridian_stay_apart() -> None:
    near = shapely.MultiPolygon([shapely.box(127.0, 35.0, 127.5, 35.5), shapely.box(127.6, 35.0, 127.7, 35.1)])
    far = shapely.MultiPolygon([shapely.box(128.0, 36.0, 129.0, 37.0), shapely.box(130.8, 37.4, 131.0, 37.6)])
    dateline = shapely.MultiPolygon([shapely.box(179.8, -17.0, 180.0, -16.0),
                                     shapely.box(-180.0, -17.0, -179.8, -16.0)])
    assert [len(shapely.get_parts(g)) for g in geoindex._zone_clusters(near)] == [2]
    assert len(geoindex._zone_clusters(far)) == 2  # 울릉도 is 150 km off the coast: one box would hold the sea between
    assert len(geoindex._zone_clusters(dateline)) == 2
    rng = np.random.default_rng(13)
    for zone in (near, far, dateline):
        index = island_index(rng, zone)
        got = index.affected_by_zones(["Z"], at=NOW).subscriber_ids
        assert np.array_equal(got, part_by_part(index, zone)) and len(got) > 10


def test_many_islets_are_gathered_by_their_neighbours() -> None:
    """Islets in pairs (0.1 degree apart) a degree from the next pair, listed in shuffled order: each pair is one
    cluster, whatever the order, and a chain of near parts is one cluster however far its ends are."""
    rng = np.random.default_rng(15)
    pairs = []
    for k in rng.permutation(300):
        x, y = 120.0 + (k % 30), 20.0 + (k // 30)
        pairs += [shapely.box(x, y, x + 0.01, y + 0.01), shapely.box(x + 0.1, y, x + 0.11, y + 0.01)]
    clusters = geoindex._zone_clusters(shapely.MultiPolygon(pairs))
    assert sorted(len(shapely.get_parts(c)) for c in clusters) == [2] * 300
    for cluster in clusters:
        a, b = shapely.get_parts(cluster)
        assert abs(a.bounds[1] - b.bounds[1]) < 1e-9 and abs(abs(a.bounds[0] - b.bounds[0]) - 0.1) < 1e-9
    chain = shapely.MultiPolygon([shapely.box(120.0 + 0.2 * k, 30.0, 120.01 + 0.2 * k, 30.01)
                                  for k in rng.permutation(50)])
    assert [len(shapely.get_parts(c)) for c in geoindex._zone_clusters(chain)] == [50]


def test_outlines_prepared_with_the_index_answer_as_outlines_prepared_by_the_first_warning(shared_dir: Path) -> None:
    zone = jeonnam_outline(shared_dir)
    lazy = island_index(np.random.default_rng(14), zone)
    prepared = island_index(np.random.default_rng(14), zone)
    prepared.prepare_zones()
    shapes = prepared.zones.shapes(0)
    coast = max(shapes, key=lambda s: s.unwrapped.area)
    assert coast._grids  # the coast's grid is built before any warning
    (grid,) = coast._grids.values()
    x0, y0, x1, y1 = coast.unwrapped.bounds
    as_alert = geoindex._grid_cells(max(x1 - x0, y1 - y0), 12.0, len(prepared.points) + len(prepared.vessels))
    assert max(grid.nx, grid.ny) > 2 * as_alert  # finer than an alert polygon's: built with the index, not by a warning
    for _ in range(2):  # the lazy index builds its grids on the first call, then reuses them
        want = lazy.affected_by_zones(["Z"], at=NOW)
        got = prepared.affected_by_zones(["Z"], at=NOW)
        assert np.array_equal(got.subscriber_ids, want.subscriber_ids) and np.array_equal(got.mmsis, want.mmsis)
    assert prepared.zones.shapes(0) is shapes  # kept, not rebuilt
    for candidates in (1_000, 2_000, 4_000, 8_000, 16_000):  # other indexes' grids (a snapshot's recheck of changes)
        coast.grid(12.0, candidates)
    assert grid in coast._grids.values()  # the index's own is never the one evicted


def test_outline_hits_kept_with_the_index_answer_as_found_afresh(shared_dir: Path) -> None:
    """What ``prepare_zones`` found inside each outline is the answer for every warning after it (the rows never
    change): the same as an index that looks each time, with people and vessels left out (a snapshot's stale rows)
    and at a time when some fixes are stale; and not used once the index's rows are swapped for others."""
    zone = jeonnam_outline(shared_dir)
    lazy = island_index(np.random.default_rng(16), zone)
    prepared = island_index(np.random.default_rng(16), zone)
    prepared.prepare_zones()
    owners = np.unique(np.concatenate([lazy.points.owner, lazy.vessels.owner]))
    leave = geoindex.LeaveOut(people=owners[::7], vessels=np.sort(lazy.vessels.mmsi)[::5])
    for at, leave_out in ((NOW, None), (NOW, leave), (datetime(2026, 5, 2, 12, tzinfo=UTC), None)):
        want = lazy.affected_by_zones(["Z", "elsewhere"], at=at, leave_out=leave_out)
        got = prepared.affected_by_zones(["Z", "elsewhere"], at=at, leave_out=leave_out)
        assert np.array_equal(got.subscriber_ids, want.subscriber_ids) and np.array_equal(got.mmsis, want.mmsis)
        assert got.zone_codes == want.zone_codes == {"Z"}
    assert len(lazy.affected_by_zones(["Z"], at=datetime(2026, 5, 2, 12, tzinfo=UTC)).mmsis) == 0  # fixes stale
    other = island_index(np.random.default_rng(17), zone)
    prepared.points, prepared.vessels = other.points, other.vessels  # rows swapped in: found afresh
    got = prepared.affected_by_zones(["Z"], at=NOW)
    assert np.array_equal(got.subscriber_ids, other.affected_by_zones(["Z"], at=NOW).subscriber_ids)


def test_an_outline_is_not_matched_again_by_each_warning(shared_dir: Path) -> None:
    """The points inside an outline prepared with the index are handed out as kept (read-only), not found again."""
    zone = jeonnam_outline(shared_dir)
    full = island_index(np.random.default_rng(18), zone)
    index = GeoIndex(zones=full.zones, point_lon=full.points.lon, point_lat=full.points.lat,
                     point_radius_km=full.points.radius, point_owner=full.points.owner)  # no vessels
    index.prepare_zones()
    first, again = (index.affected_by_zones(["Z"], at=NOW).subscriber_ids for _ in range(2))
    assert first is again and not first.flags.writeable and len(first) > 1000
    assert np.array_equal(first, full.affected_by_zones(["Z"], at=NOW, leave_out=geoindex.LeaveOut(
        people=np.empty(0, dtype=np.int64), vessels=np.empty(0, dtype=np.int64), every_vessel=True)).subscriber_ids)
