"""GeoIndex.affected(): ground distances, the antimeridian, the poles, and agreement with brute force."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from subscribers import geoindex
from subscribers.geoindex import GeoIndex, ZoneTree

R = 6371.0088
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def hav(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Independent great-circle distance (scalar, math module only)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))


def points_index(points: list[tuple[float, float, float]], zones: ZoneTree | None = None) -> GeoIndex:
    """Subscriber i owns point i (lat, lon, radius_km)."""
    return GeoIndex(zones=zones, point_lat=[p[0] for p in points], point_lon=[p[1] for p in points],
                    point_radius_km=[p[2] for p in points], point_owner=list(range(len(points))))


# -- circles near the antimeridian and the poles ---------------------------------------------------------

ANTIMERIDIAN_POINTS = [(0.0, -179.8, 0.0), (0.0, -179.4, 0.0), (0.3, 179.7, 0.0), (0.0, 179.0, 0.0),
                       (0.0, -179.2, 40.0), (0.0, 0.0, 0.0)]
POLAR_POINTS = [(89.7, 180.0, 0.0), (89.3, 180.0, 0.0), (89.9, -90.0, 0.0), (89.5, 0.0, 0.0), (88.9, 45.0, 0.0),
                (88.9, 45.0, 60.0)]


@pytest.mark.parametrize(
    ("circle", "points"),
    [
        ((0.0, 179.9, 50.0), ANTIMERIDIAN_POINTS),   # centre east of 180, reaching lon -179.8
        ((0.0, -179.95, 80.0), ANTIMERIDIAN_POINTS),  # centre west of 180
        ((89.8, 0.0, 60.0), POLAR_POINTS),           # disc over the North Pole
        ((-89.9, 120.0, 30.0), [(-89.8, -60.0, 0.0), (-89.5, 120.0, 0.0), (-89.95, 0.0, 0.0)]),
    ],
)
def test_circle_hits_match_great_circle_distance(circle: tuple[float, float, float],
                                                 points: list[tuple[float, float, float]]) -> None:
    lat, lon, radius = circle
    expected = {i for i, (plat, plon, prad) in enumerate(points) if hav(lat, lon, plat, plon) <= radius + prad}
    got = points_index(points).affected(circles=[circle], at=NOW).subscriber_ids
    assert set(got.tolist()) == expected
    assert expected and len(expected) < len(points)  # the table exercises both sides


def test_circle_at_179_9_reaches_minus_179_8() -> None:
    assert hav(0, 179.9, 0, -179.8) < 50  # 33 km across the antimeridian
    got = points_index([(0.0, -179.8, 0.0)]).affected(circles=[(0.0, 179.9, 50.0)], at=NOW)
    assert got.subscriber_ids.tolist() == [0]


def test_circle_zones_across_antimeridian_and_pole() -> None:
    zones = ZoneTree(["WEST", "EAST", "FAR", "POLE", "SUBPOLE"],
                     [box(-180, -1, -179.85, 1), box(179.5, -1, 180, 1), box(-179.0, -1, -178.5, 1),
                      box(170, 89.5, 175, 89.9), box(170, 88.0, 175, 89.0)])
    index = points_index([], zones)
    assert index.affected(circles=[(0.0, 179.9, 50.0)], at=NOW).zone_codes == {"WEST", "EAST"}
    # Over the pole: 60 km from (89.8, 0) reaches 89.66°N on the far side (lon 170-175) but not 89°N.
    assert index.affected(circles=[(89.8, 0.0, 60.0)], at=NOW).zone_codes == {"POLE"}


def test_polygon_across_antimeridian() -> None:
    pts = [(0.0, 179.8, 0.0), (0.0, -179.8, 0.0), (0.0, 179.0, 0.0), (0.0, -179.0, 0.0), (0.0, 0.0, 0.0),
           (0.0, -179.4, 2.0)]  # 0.1° = 11 km outside the east edge: a 2 km disc does not reach
    zones = ZoneTree(["W", "E", "X"], [box(-180, -2, -179.6, 2), box(179.6, -2, 180, 2), box(10, -2, 11, 2)])
    poly = [(-1.0, 179.5), (-1.0, -179.5), (1.0, -179.5), (1.0, 179.5)]
    got = points_index(pts, zones).affected(polygons=[poly], at=NOW)
    assert set(got.subscriber_ids.tolist()) == {0, 1}
    assert got.zone_codes == {"W", "E"}


def test_zone_outlines_met_only_at_their_edge_count() -> None:
    """Outlines are asked (prepared once with the tree) whether they meet the alert shape: sharing an edge, a vertex
    or a corner counts, an outline in the alert's bounding box but outside it does not, as GEOS answers unprepared."""
    alert = Polygon([(126.0, 34.0), (127.0, 34.0), (127.0, 35.0)])  # a triangle: its box is twice its area
    zones = {"EDGE": box(127.0, 34.2, 127.5, 34.4),      # shares part of the east edge
             "VERTEX": box(127.0, 35.0, 127.3, 35.3),    # touches the top corner only
             "INSIDE": box(126.8, 34.1, 126.9, 34.2),
             "AROUND": box(125.0, 33.0, 128.0, 36.0),
             "INBOX": box(126.05, 34.6, 126.3, 34.9),    # in the bounding box, beyond the hypotenuse
             "HOLE": box(125.0, 33.0, 128.0, 36.0).difference(box(125.9, 33.9, 127.1, 35.1)),  # alert in its hole
             "FAR": box(10.0, 10.0, 11.0, 11.0)}
    index = points_index([], ZoneTree(list(zones), list(zones.values())))
    expected = {code for code, zone in zones.items() if zone.intersects(alert)}
    assert expected == {"EDGE", "VERTEX", "INSIDE", "AROUND"}
    latlon = [(lat, lon) for lon, lat in alert.exterior.coords]
    assert index.affected(polygons=[latlon], at=NOW).zone_codes == expected
    assert index.zones.intersecting(alert) == expected


# -- kilometres on the ground ------------------------------------------------------------------------------

EDGE_POLY = [(34.0, 126.0), (34.0, 127.0), (36.0, 127.0), (36.0, 126.0)]  # east edge: meridian 127°E


@pytest.mark.parametrize("offset_deg", [0.05, 0.1, 0.2])
def test_point_radius_is_ground_distance_to_the_outline(offset_deg: float) -> None:
    lat, lon = 35.0, 127.0 + offset_deg
    # Distance from a point to a meridian on the sphere: asin(sin Δλ · cos φ).
    d = R * math.asin(math.sin(math.radians(offset_deg)) * math.cos(math.radians(lat)))
    pts = [(lat, lon, d * 1.005), (lat, lon, d * 0.995)]
    got = points_index(pts).affected(polygons=[EDGE_POLY], at=NOW).subscriber_ids
    assert got.tolist() == [0]


def vessel_index(lat: float, lon: float, buffer_nm: float, fix_at: datetime) -> GeoIndex:
    return GeoIndex(vessel_mmsi=[440000001], vessel_lat=[lat], vessel_lon=[lon], vessel_fix_at=[fix_at.timestamp()],
                    vessel_owner=[7], buffer_nm=buffer_nm)


@pytest.mark.parametrize(
    ("km_outside", "buffer_nm", "inside"),
    [(1.5, 1.0, True), (1.5, 0.5, False), (2.0, 1.0, False), (3.0, 2.0, True), (-5.0, 0.0, True)],
)
def test_vessel_boundary_buffer(km_outside: float, buffer_nm: float, inside: bool) -> None:
    lat = 35.0
    lon = 127.0 + math.degrees(math.asin(math.sin(km_outside / R) / math.cos(math.radians(lat))))
    got = vessel_index(lat, lon, buffer_nm, NOW - timedelta(minutes=5)).affected(polygons=[EDGE_POLY], at=NOW)
    assert (got.subscriber_ids.tolist() == [7]) is inside
    assert (got.mmsis.tolist() == [440000001]) is inside


def test_stale_vessel_is_not_affected() -> None:
    index = vessel_index(35.0, 126.5, 1.0, NOW - timedelta(hours=7))
    assert index.affected(polygons=[EDGE_POLY], at=NOW).subscriber_ids.size == 0
    assert index.affected(polygons=[EDGE_POLY], at=NOW - timedelta(hours=2)).subscriber_ids.tolist() == [7]


def test_subscriber_with_point_and_vessel_inside_appears_once() -> None:
    index = GeoIndex(point_lat=[35.0, 35.1], point_lon=[126.5, 126.6], point_radius_km=[0.0, 3.0],
                     point_owner=[42, 42],
                     vessel_mmsi=[440000001, 440000002], vessel_lat=[35.2, 35.3], vessel_lon=[126.4, 126.3],
                     vessel_fix_at=[NOW.timestamp()] * 2, vessel_owner=[42, 43])
    got = index.affected(polygons=[EDGE_POLY, EDGE_POLY], circles=[(35.0, 126.5, 20.0)], at=NOW)
    assert got.subscriber_ids.tolist() == [42, 43]


@pytest.mark.parametrize(
    ("polygons", "circles", "message"),
    [([[(35.0, 126.0), (35.1, 126.0)]], [], "polygon 0"), ([[(135.0, 126.0), (35.1, 126.0), (35.0, 127.0)]], [],
                                                             "polygon 0"),
     ([], [(35.0, 126.0, 0.0)], "circle 0"), ([], [(95.0, 126.0, 5.0)], "circle 0")],
)
def test_bad_shapes_are_named(polygons: list, circles: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        points_index([(35.0, 126.0, 0.0)]).affected(polygons=polygons, circles=circles, at=NOW)


# -- agreement with brute force ----------------------------------------------------------------------------


def brute_distance_km(poly: Polygon, lat: float, lon: float) -> float:
    """Great-circle distance to the outline, densified to ~100 m (independent of the Mercator method)."""
    dense = shapely.segmentize(poly.exterior, 0.001)
    return min(hav(lat, lon, y, x) for x, y in dense.coords)


@pytest.mark.parametrize(("buffered_prefilter", "geos_distance", "grid"),
                         [(False, False, False), (True, False, False), (True, True, False), (False, False, True),
                          (False, True, True)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_affected_agrees_with_brute_force(seed: int, buffered_prefilter: bool, geos_distance: bool, grid: bool,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if buffered_prefilter:  # the path taken for large candidate sets or detailed outlines
        monkeypatch.setattr(geoindex, "_DIRECT_DISTANCE_WORK", 0)
    if geos_distance:  # the path taken for outlines with many vertices
        monkeypatch.setattr(geoindex, "_NUMPY_DISTANCE_SEGMENTS", 0)
    if grid:  # the path taken for many candidates: most points decided by their cell of a PolygonGrid
        monkeypatch.setattr(geoindex, "_GRID_MIN_CANDIDATES", 0)
    rng = np.random.default_rng(seed)
    n_pts, n_ves = 3000, 800
    p_lat, p_lon = rng.uniform(33.0, 38.0, n_pts), rng.uniform(124.0, 131.0, n_pts)
    p_rad = np.where(rng.random(n_pts) < 0.4, rng.uniform(0.2, 15.0, n_pts), 0.0)
    p_own = rng.integers(0, 2000, n_pts)
    v_lat, v_lon = rng.uniform(33.0, 38.0, n_ves), rng.uniform(124.0, 131.0, n_ves)
    v_age = rng.uniform(0, 10, n_ves)  # hours; older than 6 is stale
    v_own = rng.integers(1500, 3000, n_ves)
    v_mmsi = 440_000_000 + np.arange(n_ves)
    zone_geoms = [box(x, y, x + 0.5, y + 0.4) for x, y in zip(rng.uniform(124, 130.5, 60), rng.uniform(33, 37.6, 60),
                                                             strict=True)]
    index = GeoIndex(zones=ZoneTree([f"Z{i}" for i in range(60)], zone_geoms),
                     point_lat=p_lat, point_lon=p_lon, point_radius_km=p_rad, point_owner=p_own,
                     vessel_mmsi=v_mmsi, vessel_lat=v_lat, vessel_lon=v_lon,
                     vessel_fix_at=NOW.timestamp() - v_age * 3600, vessel_owner=v_own, buffer_nm=1.0)
    centre_lat, centre_lon = rng.uniform(34.5, 36.5), rng.uniform(126.0, 129.0)
    ang = np.sort(rng.uniform(0, 2 * np.pi, 7))
    poly_latlon = [(centre_lat + 0.8 * rng.uniform(0.4, 1) * math.sin(a),
                    centre_lon + rng.uniform(0.4, 1) * math.cos(a)) for a in ang]
    circle = (float(rng.uniform(34, 37)), float(rng.uniform(125, 130)), float(rng.uniform(10, 60)))
    got = index.affected(polygons=[poly_latlon], circles=[circle], at=NOW)

    poly = Polygon([(lon, lat) for lat, lon in poly_latlon])
    tol = 0.02  # km: ignore subscribers within 20 m of the threshold (densification error)
    expected, ambiguous = set(), set()

    def judge(owner: int, lat: float, lon: float, reach: float) -> None:
        if hav(circle[0], circle[1], lat, lon) <= circle[2] + reach:
            expected.add(owner)
            return
        if poly.intersects(Point(lon, lat)):
            expected.add(owner)
            return
        if reach > 0:
            d = brute_distance_km(poly, lat, lon) if poly.distance(Point(lon, lat)) < reach / 80 + 0.01 else 1e9
            if abs(d - reach) < tol:
                ambiguous.add(owner)
            elif d <= reach:
                expected.add(owner)

    for i in range(n_pts):
        judge(int(p_own[i]), p_lat[i], p_lon[i], p_rad[i])
    for i in range(n_ves):
        if v_age[i] <= 6.0:
            judge(int(v_own[i]), v_lat[i], v_lon[i], 1.852)
    got_ids = set(got.subscriber_ids.tolist())
    assert len(got_ids) == got.subscriber_ids.size  # duplicate-free
    assert got_ids - ambiguous == expected - ambiguous
    assert len(expected) > 50
    expected_zones = {f"Z{i}" for i, g in enumerate(zone_geoms)
                      if g.intersects(poly) or _zone_meets_circle(g, circle)}
    assert got.zone_codes == expected_zones


def _zone_meets_circle(zone: Polygon, circle: tuple[float, float, float]) -> bool:
    lat, lon, radius = circle
    if zone.intersects(Point(lon, lat)):
        return True
    dense = shapely.segmentize(zone.exterior, 0.002)
    return min(hav(lat, lon, y, x) for x, y in dense.coords) <= radius
