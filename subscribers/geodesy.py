"""Distances on the ground for lon/lat data, without a projection library.

Why these three tools and not one projection: warnings and subscribers are stored in WGS 84 lon/lat
(what CAP, GeoJSON and AIS speak), and every distance in this project is small (a point's radius, a
1-2 NM boundary buffer, a circle of tens of kilometres), but the data can sit anywhere on the globe,
including across the antimeridian or around a pole. So:

* circle vs point: exact great-circle (haversine) distance on a sphere of the mean Earth radius
  (the ellipsoid changes distances by at most ~0.5 %); it has no trouble with the antimeridian or poles;
* point vs polygon: the polygon and the points are put in (unwrapped) Web-Mercator coordinates, shapely
  measures the planar distance and it is scaled by ``R·cos(latitude of the point)``, Mercator's exact
  local scale at that point. Mercator is conformal, so the only error is the change of scale over the
  distance measured: a relative error of about ``d·tan(lat)/R`` (0.1 % for 10 km at 37°N). Latitudes
  are clamped at ±89.9° so Mercator stays finite;
* circle vs polygon (zone outlines in an STRtree): the circle is drawn as a geodesic polygon in lon/lat
  (destination-point formula, vertices on a slightly larger circle so the polygon contains the true
  circle), split at the antimeridian, and closed over the pole when the pole is inside.

Longitudes of one alert shape are *unwrapped* (continuous, possibly beyond ±180) and points are moved
into the same 360° frame before testing, so a polygon crossing the antimeridian needs no special case;
only the STRtree query against stored zones (which live in [-180, 180]) uses the split form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

#: Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088
KM_PER_NM = 1.852
KM_PER_DEG_LAT = math.pi * EARTH_RADIUS_KM / 180.0
_MAX_MERCATOR_LAT = 89.9
WORLD = box(-180.0, -90.0, 180.0, 90.0)


def haversine_km(lat1: np.ndarray | float, lon1: np.ndarray | float, lat2: float, lon2: float) -> np.ndarray:
    """Great-circle distance (km) from each (lat1, lon1) to one point."""
    p1 = np.radians(lat1)
    p2 = math.radians(lat2)
    dp = p1 - p2
    dl = np.radians(np.asarray(lon1) - lon2)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * math.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def lon_half_width_deg(lat: float, radius_km: float) -> float:
    """Half the longitude span of a spherical cap of ``radius_km`` around ``lat``; 180 if it holds a pole.

    Exact for a cap (the tangent meridians touch it at ``asin(sin d / cos lat)``), so it is a safe bound
    for bounding-box prefilters.
    """
    d = radius_km / EARTH_RADIUS_KM
    if d >= math.pi / 2:
        return 180.0
    if abs(lat) + math.degrees(d) >= 90.0:
        return 180.0
    s = math.sin(d) / math.cos(math.radians(lat))
    return 180.0 if s >= 1.0 else math.degrees(math.asin(s))


def wrap_lon(lon: np.ndarray, centre: float) -> np.ndarray:
    """Move longitudes by multiples of 360 into [centre - 180, centre + 180)."""
    return (np.asarray(lon) - centre + 180.0) % 360.0 - 180.0 + centre


def lon_intervals(lo: float, hi: float) -> list[tuple[float, float]]:
    """An unwrapped longitude range as one or two ranges inside [-180, 180]."""
    if hi - lo >= 360.0:
        return [(-180.0, 180.0)]
    shift = math.floor((lo + 180.0) / 360.0) * 360.0
    lo, hi = lo - shift, hi - shift
    if hi <= 180.0:
        return [(lo, hi)]
    return [(lo, 180.0), (-180.0, hi - 360.0)]


def mercator_y(lat: np.ndarray | float) -> np.ndarray:
    phi = np.radians(np.clip(lat, -_MAX_MERCATOR_LAT, _MAX_MERCATOR_LAT))
    return np.log(np.tan(np.pi / 4 + phi / 2))


def mercator(geom: BaseGeometry, max_segment_deg: float = 0.25, *, valid: bool = False) -> BaseGeometry:
    """Unwrapped Web-Mercator (unit sphere) copy; edges densified first so they follow lon/lat lines.

    ``valid``: the caller knows ``geom`` is valid. GEOS's segmentize of a polygon checks the validity of what it made
    (0.6 ms for a 3,600-vertex coast, most of a first match's Mercator copy) even when no edge needed a vertex; a
    valid polygon with no edge that long and no repeated vertex (segmentize drops those) comes out unchanged, so it
    is not asked then.
    """
    keep = valid and not _needs_segmentize(geom, max_segment_deg)
    dense = geom if keep else shapely.segmentize(geom, max_segment_deg)

    def _xy(coords: np.ndarray) -> np.ndarray:
        return np.column_stack([np.radians(coords[:, 0]), mercator_y(coords[:, 1])])

    return shapely.transform(dense, _xy)


def _needs_segmentize(geom: BaseGeometry, max_segment_deg: float) -> bool:
    """Whether ``shapely.segmentize(geom, max_segment_deg)`` could change ``geom``'s coordinates: an edge longer than
    the limit (or within a hair of it: GEOS compares its own rounding of the length), or a vertex repeated."""
    xy, ring = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(geom)), return_index=True)
    if len(xy) < 2:
        return True
    dx, dy = np.diff(xy[:, 0]), np.diff(xy[:, 1])
    same_ring = ring[1:] == ring[:-1]
    dx, dy = dx[same_ring], dy[same_ring]
    if ((dx == 0) & (dy == 0)).any():
        return True
    return bool((dx * dx + dy * dy > (max_segment_deg * (1.0 - 1e-9)) ** 2).any())


def distance_km_to(geom_merc: BaseGeometry, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Ground distance (km) from each point to the *outline* of a Mercator geometry (module docstring: error).

    Callers use it for points already known to be outside, where distance to the outline is the distance
    to the area. Point-to-segment distances are computed in numpy in blocks: for alert polygons (tens
    of vertices) that is several times faster than creating shapely points.
    """
    return distance_km_to_segments(outline_segments(geom_merc), lon, lat)


def distance_km_to_segments(segs: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """``distance_km_to`` with the outline given as ``outline_segments`` (cached by callers)."""
    x = np.radians(np.asarray(lon, dtype=float))
    y = mercator_y(np.asarray(lat, dtype=float))
    out = np.full(len(x), np.inf)
    if len(segs) == 0 or len(x) == 0:
        return out
    ax, ay, bx, by = segs.T
    dx, dy = bx - ax, by - ay
    len2 = np.where(dx * dx + dy * dy > 0, dx * dx + dy * dy, 1.0)
    step = max(1, 2_000_000 // len(segs))
    for start in range(0, len(x), step):
        px = x[start:start + step, None]
        py = y[start:start + step, None]
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / len2, 0.0, 1.0)
        ex, ey = px - (ax + t * dx), py - (ay + t * dy)
        out[start:start + step] = np.sqrt((ex * ex + ey * ey).min(axis=1))
    lat_c = np.clip(lat, -_MAX_MERCATOR_LAT, _MAX_MERCATOR_LAT)
    return out * EARTH_RADIUS_KM * np.cos(np.radians(lat_c))


def reaches_km(geom_merc: BaseGeometry, lon: np.ndarray, lat: np.ndarray, radius_km: np.ndarray) -> np.ndarray:
    """``distance_km_to(geom_merc, lon, lat) <= radius_km``, asked of GEOS instead of numpy.

    The same distance (planar in Mercator, scaled by ``R·cos(latitude of the point)``) compared the other way
    round: the radius is turned into Mercator units at each point and GEOS answers "within" with the indexed
    facet distance of a prepared geometry. For a detailed outline (thousands of vertices: a province's coast)
    that is tens of times faster than measuring every point against every segment. ``geom_merc`` may be the
    outline alone (``shapely.boundary``, prepared by the caller): for points outside the polygon the answer is the
    same, and GEOS skips its point-in-polygon test.
    """
    lat = np.asarray(lat, dtype=float)
    if len(lat) == 0:
        return np.zeros(0, dtype=bool)
    shapely.prepare(geom_merc)
    pts = shapely.points(np.radians(np.asarray(lon, dtype=float)), mercator_y(lat))
    lat_c = np.clip(lat, -_MAX_MERCATOR_LAT, _MAX_MERCATOR_LAT)
    reach = np.asarray(radius_km, dtype=float) / (EARTH_RADIUS_KM * np.cos(np.radians(lat_c)))
    return shapely.dwithin(geom_merc, pts, reach)


class OutlineReach:
    """``reaches_km`` for one detailed outline, decided in numpy where that is certain and by GEOS where it is not.

    Why: GEOS's prepared ``dwithin`` costs about 2 µs a point (it builds facet trees for every point it is asked
    about), and a province's coast leaves about 1,500 points near its outline to measure: 3 ms of an 11 ms match.
    Here the outline's segments are kept in runs of ``RUN`` with each run's box in an STRtree; a point is measured in
    numpy against the runs whose box its disc reaches, in the same Mercator measure. That distance and GEOS's are both
    within ~1e-16 (relative to the coordinates subtracted) of the exact one, so where it is more than ``margin`` from
    the radius it decides what GEOS would; the few points closer to a tie than that (none, for real data) are left to
    GEOS. The answers are those of ``reaches_km``.
    """

    #: Consecutive segments per box: fewer boxes to query, more segments measured per box (16 measured best).
    RUN = 16
    #: Pairs of a point and a run measured at once (each run is ``RUN`` segments): bounds the temporary arrays.
    BLOCK = 32_768

    def __init__(self, segments: np.ndarray, outline_merc: BaseGeometry) -> None:
        """``segments``: ``outline_segments`` of the Mercator geometry; ``outline_merc``: its outline for GEOS."""
        self.outline = outline_merc
        n = len(segments)
        runs = -(-n // self.RUN)
        padded = np.concatenate([segments, np.repeat(segments[-1:], runs * self.RUN - n, axis=0)]) if n else segments
        by_run = padded.reshape(runs, self.RUN, 4)
        ax, ay, bx, by = by_run.transpose(2, 0, 1)
        dx, dy = bx - ax, by - ay
        len2 = dx * dx + dy * dy
        inv = np.divide(1.0, len2, out=np.zeros_like(len2), where=len2 > 0)  # a repeated vertex: its start is nearest
        #: (5, runs, RUN): start, direction and 1/length² of every segment of a run, gathered per run
        self._runs = np.stack([ax, ay, dx, dy, inv])
        xs, ys = by_run[:, :, 0::2], by_run[:, :, 1::2]
        self._tree = shapely.STRtree(shapely.box(xs.min(axis=(1, 2)), ys.min(axis=(1, 2)),
                                                 xs.max(axis=(1, 2)), ys.max(axis=(1, 2))))

    @staticmethod
    def margin(reach: np.ndarray) -> np.ndarray:
        """How far (Mercator units) from the reach a distance must be to be decided without GEOS: a billionth of it and
        1e-12 (6 µm on the ground), a thousand times the rounding of either measure."""
        return reach * 1e-9 + 1e-12

    def reaches_km(self, lon: np.ndarray, lat: np.ndarray, radius_km: np.ndarray) -> np.ndarray:
        """``reaches_km(outline, lon, lat, radius_km)``: whether each point's disc reaches the outline."""
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        radius_km = np.asarray(radius_km, dtype=float)
        if len(lat) == 0:
            return np.zeros(0, dtype=bool)
        x, y = np.radians(lon), mercator_y(lat)
        lat_c = np.clip(lat, -_MAX_MERCATOR_LAT, _MAX_MERCATOR_LAT)
        reach = radius_km / (EARTH_RADIUS_KM * np.cos(np.radians(lat_c)))
        margin = self.margin(reach)
        grow = reach + margin  # a run whose box is farther than this has no segment that could decide
        # the diagonal of each point's box, not the box: the tree compares envelopes only, and a line of two points
        # costs half a box to make
        corners = np.empty((len(x), 2, 2))
        corners[:, 0, 0], corners[:, 0, 1] = x - grow, y - grow
        corners[:, 1, 0], corners[:, 1, 1] = x + grow, y + grow
        pi, ri = self._tree.query(shapely.linestrings(corners))
        best = np.full(len(x), np.inf)  # squared distance to the nearest segment of the runs in reach
        for start in range(0, len(pi), self.BLOCK):
            p, r = pi[start:start + self.BLOCK], ri[start:start + self.BLOCK]
            ax, ay, dx, dy, inv = self._runs[:, r]
            qx, qy = x[p, None] - ax, y[p, None] - ay  # the point from each segment's start
            t = (qx * dx + qy * dy) * inv
            np.clip(t, 0.0, 1.0, out=t)
            qx -= t * dx
            qy -= t * dy
            np.minimum.at(best, p, (qx * qx + qy * qy).min(axis=1))
        d = np.sqrt(best)
        hit = d <= reach - margin
        unsure = np.flatnonzero(~hit & (d <= reach + margin))
        if len(unsure):
            hit[unsure] = reaches_km(self.outline, lon[unsure], lat[unsure], radius_km[unsure])
        return hit


def outline_segments(geom: BaseGeometry) -> np.ndarray:
    """All ring edges of a (multi)polygon as an (n, 4) array ax, ay, bx, by."""
    rings = shapely.get_rings(shapely.get_parts(geom))
    parts = []
    for ring in rings:
        c = shapely.get_coordinates(ring)
        if len(c) >= 2:
            parts.append(np.column_stack([c[:-1], c[1:]]))
    return np.concatenate(parts) if parts else np.empty((0, 4))


def mercator_buffer_for(radius_km: float, max_abs_lat: float) -> float:
    """Mercator buffer distance covering ``radius_km`` on the ground at all latitudes up to ``max_abs_lat``.

    Uses the largest scale factor in the range, so the buffer is never too small."""
    lat = min(abs(max_abs_lat), _MAX_MERCATOR_LAT)
    # The 2 % covers the polygonal approximation of round buffer joins (quad_segs=8).
    return 1.02 * radius_km / (EARTH_RADIUS_KM * math.cos(math.radians(lat)))


def unwrap_ring(latlon: Sequence[tuple[float, float]]) -> np.ndarray:
    """(lat, lon) pairs -> an (n, 2) lon/lat array with continuous longitudes (no 360° jumps)."""
    arr = np.asarray(latlon, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError("a polygon is a list of (lat, lon) pairs")
    lon = np.degrees(np.unwrap(np.radians(arr[:, 1])))
    return np.column_stack([lon, arr[:, 0]])


def split_antimeridian(geom: BaseGeometry) -> BaseGeometry:
    """An unwrapped geometry (longitudes possibly beyond ±180) as the same area inside [-180, 180]."""
    minx, _, maxx, _ = geom.bounds
    if minx >= -180.0 and maxx <= 180.0:
        return geom
    parts = []
    for k in range(math.floor((minx + 180.0) / 360.0), math.floor((maxx + 180.0) / 360.0) + 1):
        piece = shapely.intersection(geom, box(-180.0 + 360.0 * k, -90.0, 180.0 + 360.0 * k, 90.0))
        if not piece.is_empty:
            parts.append(affinity.translate(piece, xoff=-360.0 * k))
    return shapely.union_all(parts)


def geodesic_circle(lat: float, lon: float, radius_km: float, n: int = 64) -> BaseGeometry:
    """A circle on the ground as a lon/lat polygon inside [-180, 180] (split at the antimeridian if needed).

    Used against zone outlines only (points are tested with exact haversine distances). When a pole is
    inside, the outline is closed along the pole's latitude so the polygon is the polar cap.
    """
    if not (-90.0 <= lat <= 90.0) or radius_km <= 0:
        raise ValueError(f"bad circle ({lat}, {lon}, {radius_km} km)")
    d = radius_km / EARTH_RADIUS_KM / math.cos(math.pi / n)  # vertices outside, edges touch the circle
    north = math.radians(90.0 - lat) < d
    south = math.radians(90.0 + lat) < d
    if d >= math.pi or (north and south):
        return WORLD
    phi1 = math.radians(lat)
    theta = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    phi2 = np.arcsin(math.sin(phi1) * math.cos(d) + math.cos(phi1) * math.sin(d) * np.cos(theta))
    dlam = np.arctan2(np.sin(theta) * math.sin(d) * math.cos(phi1),
                      math.cos(d) - math.sin(phi1) * np.sin(phi2))
    lons = lon + np.degrees(np.unwrap(dlam))
    lats = np.degrees(phi2)
    if not (north or south):
        poly = Polygon(np.column_stack([lons, lats]))
        return split_antimeridian(poly)
    # The outline winds once around the pole: sort it by longitude over one turn and close it at the pole.
    lon_w = (lons + 180.0) % 360.0 - 180.0
    order = np.argsort(lon_w)
    lon_s, lat_s = lon_w[order], lats[order]
    # Latitude where the outline meets ±180, interpolated between the last and first vertex.
    span = lon_s[0] + 360.0 - lon_s[-1]
    t = (180.0 - lon_s[-1]) / span if span > 0 else 0.0
    lat_edge = lat_s[-1] + t * (lat_s[0] - lat_s[-1])
    pole = 90.0 if north else -90.0
    ring = ([(-180.0, lat_edge)] + list(zip(lon_s, lat_s, strict=True))
            + [(180.0, lat_edge), (180.0, pole), (-180.0, pole)])
    return shapely.make_valid(Polygon(ring))
