"""In-memory geometry index: which zones, fixed points and vessels an alert's polygons and circles reach.

Why in memory: a national warning must be matched against about a million subscriptions in
milliseconds, and the database round trip alone is slower than the whole match (see
``benchmarks/bench_geo_match.py``, which measures PostGIS on the same data). The index is rebuilt from
the database whenever it is needed fresh (about a second for a million points).

Layout
    * zone outlines: shapely geometries in an ``STRtree``; an alert shape asks the tree for the outlines
      it intersects and returns their codes. Zone *subscribers* are not here: they are found by code.
    * fixed points (Subscription kind=point) and vessels (latest fix of every subscribed vessel, one row
      per vessel-subscriber pair): plain numpy arrays sorted by longitude. A query cuts the longitude
      range with two ``searchsorted`` calls, masks latitude, and only the survivors are tested with the
      vectorised ``shapely.intersects_xy`` (polygon) or an exact haversine distance (circle). No per-point
      shapely object is ever created for the bulk of the data. With many candidates (a province-wide
      warning at national scale) the polygon is first rasterised per alert (``subscribers.polygon_grid``):
      points in cells wholly inside, or provably too far outside for their radius, are decided by their
      cell; only the rest are tested. Detailed outlines are measured by ``geodesy.OutlineReach`` (GEOS's answers).

Distances are kilometres on the ground (see ``subscribers.geodesy``): a point with a radius is hit when
its disc reaches the alert geometry (inside, or within its radius of the outline, measured in a
Mercator frame rescaled by the local scale factor); a vessel is hit inside the geometry or within the
boundary buffer (default 1 NM); circles use great-circle distance. Alert polygons are unwrapped
(continuous longitudes) and points are moved into the polygon's 360° frame, so polygons and circles
across the antimeridian work; circles that contain a pole are polar caps. A fix older than
``stale_after`` at the query time ``at`` does not count.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry
from sqlmodel import Session, select

from subscribers.bulk_read import raw_chunks
from subscribers.geodesy import (
    EARTH_RADIUS_KM,
    KM_PER_DEG_LAT,
    KM_PER_NM,
    OutlineReach,
    distance_km_to_segments,
    geodesic_circle,
    haversine_km,
    lon_half_width_deg,
    lon_intervals,
    mercator,
    mercator_buffer_for,
    mercator_y,
    outline_segments,
    reaches_km,
    split_antimeridian,
    unwrap_ring,
    wrap_lon,
)
from subscribers.geometry import load_zone_polygons, polygonal
from subscribers.polygon_grid import EDGE, INSIDE, PolygonGrid
from subscribers.sorted_ids import sorted_distinct

DEFAULT_BUFFER_NM = 1.0
DEFAULT_STALE_AFTER = timedelta(hours=6)
#: Point x outline-segment pairs below which exact distances are cheaper than a buffered prefilter.
_DIRECT_DISTANCE_WORK = 400_000
#: Candidates from which a polygon is rasterised (``subscribers.polygon_grid``) rather than testing each point.
_GRID_MIN_CANDIDATES = 1_000
#: Ids per ``IN (...)`` list when reading the rows of changed people or vessels.
_IN_BATCH = 500
#: Outlines with more segments than this are measured by GEOS (``reaches_km``), shorter ones in numpy.
_NUMPY_DISTANCE_SEGMENTS = 200
#: Points to measure against a detailed outline from which its ``OutlineReach`` is built (fewer go to GEOS directly).
_GEOS_REACH_POINTS = 200

LatLon = tuple[float, float]
CircleSpec = tuple[float, float, float]


@dataclass
class AffectedSet:
    """Everyone an alert geometry reaches. ``subscriber_ids`` is sorted and duplicate-free."""

    subscriber_ids: np.ndarray
    zone_codes: set[str] = field(default_factory=set)
    #: Subscribed vessels found inside (or within the buffer of) the geometry.
    mmsis: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


class ZoneTree:
    """Zone outlines (lon/lat, inside [-180, 180]) in an STRtree, queried by geometry or by points."""

    def __init__(self, codes: Sequence[str], geometries: Sequence[BaseGeometry]) -> None:
        self.codes = np.asarray(list(codes), dtype=object)
        self.geometries = np.asarray(list(geometries), dtype=object)
        self.tree = shapely.STRtree(self.geometries)
        shapely.prepare(self.geometries)

    def __len__(self) -> int:
        return len(self.codes)

    @classmethod
    def from_session(cls, session: Session) -> ZoneTree:
        zones = load_zone_polygons(session)
        return cls([z.code for z in zones], [z.geometry for z in zones])

    def shapes(self, i: int) -> list[_PolygonShape]:
        """The parts of outline ``i`` as alert shapes (built once: their grids are kept with them)."""
        prepared = self.__dict__.get("_prepared")
        if prepared is not None:
            return prepared[i]
        with _SHAPES_LOCK:
            cache: OrderedDict[int, list[_PolygonShape]] = self.__dict__.setdefault("_shapes", OrderedDict())
            shapes = cache.get(i)
            if shapes is not None:
                cache.move_to_end(i)
                return shapes
        # Zone outlines live inside [-180, 180] already; each part keeps its holes.
        shapes = [_PolygonShape(part) for part in _zone_clusters(self.geometries[i])]
        with _SHAPES_LOCK:
            cache[i] = shapes
            while len(cache) > _ZONE_SHAPES_KEPT:  # their grids hold up to a few MB each
                cache.popitem(last=False)
        return shapes

    def prepare(self) -> list[list[_PolygonShape]]:
        """The shapes of every outline, built now and kept for the tree's life (not evicted as ``shapes`` caches are):
        the outlines never change between index builds, so ``GeoIndex.prepare_zones`` builds their grids with the
        index, not on the first zone-coded warning after each build."""
        prepared = [self.shapes(i) for i in range(len(self.codes))]
        self.__dict__["_prepared"] = prepared
        return prepared

    @cached_property
    def _mercator(self) -> np.ndarray:
        return np.asarray([mercator(g) for g in self.geometries], dtype=object)

    def intersecting(self, geom: BaseGeometry) -> set[str]:
        """Codes of the outlines ``geom`` meets. Asked of the outlines, prepared once with the tree, not of ``geom``:
        the tree's own ``intersects`` prepares the query shape, and a new detailed alert polygon's segment index
        (0.7 ms for a 3,604-vertex coast) was built for the few outlines near it and never used again."""
        if len(self.codes) == 0:
            return set()
        near = self.tree.query(geom)
        meets = shapely.intersects(self.geometries[near], geom)
        return set(self.codes[near[meets]].tolist())

    def containing(self, lon: np.ndarray, lat: np.ndarray,
                   buffer_km: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (point index, zone index) for every point inside a zone or within ``buffer_km`` of it."""
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        if len(self.codes) == 0 or len(lon) == 0:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
        pts = shapely.points(lon, lat)
        if buffer_km <= 0:
            pi, zi = self.tree.query(pts, predicate="intersects")
            return pi, zi
        # A degree bound that is never smaller than the buffer, then the exact ground distance.
        max_lat = min(float(np.max(np.abs(lat))) + buffer_km / KM_PER_DEG_LAT, 89.9)
        deg = buffer_km / (KM_PER_DEG_LAT * math.cos(math.radians(max_lat)))
        pi, zi = self.tree.query(pts, predicate="dwithin", distance=deg)
        if len(pi) == 0:
            return pi, zi
        inside = shapely.intersects(self.geometries[zi], pts[pi])
        out = np.nonzero(~inside)[0]
        if len(out):
            merc_pts = shapely.points(np.radians(lon[pi[out]]), mercator_y(lat[pi[out]]))
            d = shapely.distance(self._mercator[zi[out]], merc_pts)
            d_km = d * EARTH_RADIUS_KM * np.cos(np.radians(np.clip(lat[pi[out]], -89.9, 89.9)))
            inside[out] = d_km <= buffer_km
        return pi[inside], zi[inside]


def _zone_clusters(geom: BaseGeometry) -> list[BaseGeometry]:
    """The parts of a zone outline gathered into clusters of parts less than ``_CLUSTER_GAP_DEG`` apart (boxes, one
    part to the next), each a (multi)polygon matched as one shape. Why: a coast with islands (전라남도: 35 parts)
    matched part by part cut the point arrays, built a grid and measured distances 35 times (36 ms for its first
    alert, 19 ms repeated); as one shape, once (15 and 9 ms). Parts far apart (울릉도 off 경상북도) stay apart: one
    box around both would hold mostly points far from either. A point reaches the union when it reaches a part, so
    the answers are the same however the parts are gathered.

    The near pairs come from one query of the parts' boxes (an STRtree), joined by union-find: every index build
    prepares every outline, and comparing boxes pair by pair, again after each merge, took 132 s for an outline of
    1,600 islets in pairs. A cluster that would span more than half the globe in longitude (a chain across the
    antimeridian) is left as its parts."""
    parts = list(getattr(geom, "geoms", [geom]))
    if len(parts) == 1:
        return parts
    x0, y0, x1, y1 = shapely.bounds(parts).T
    gap = _CLUSTER_GAP_DEG
    near_a, near_b = shapely.STRtree(shapely.box(x0, y0, x1, y1)).query(
        shapely.box(x0 - gap, y0 - gap, x1 + gap, y1 + gap))
    root = list(range(len(parts)))

    def find(k: int) -> int:
        while root[k] != k:
            root[k] = root[root[k]]
            k = root[k]
        return k

    for a, b in zip(near_a.tolist(), near_b.tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            root[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for k in range(len(parts)):
        members.setdefault(find(k), []).append(k)
    clusters: list[BaseGeometry] = []
    for group in members.values():
        if len(group) == 1 or x1[group].max() - x0[group].min() > 180.0:
            clusters.extend(parts[k] for k in group)
        else:
            clusters.append(shapely.MultiPolygon([parts[k] for k in group]))
    return clusters


class _Points:
    """Point rows sorted by longitude, each with a radius (km) and an owner (subscriber id)."""

    def __init__(self, lon: np.ndarray, lat: np.ndarray, radius_km: np.ndarray, owner: np.ndarray,
                 mmsi: np.ndarray | None = None, fix_at: np.ndarray | None = None) -> None:
        lon = np.asarray(lon, dtype=np.float64)
        order = np.argsort(lon, kind="stable")
        self.lon = np.ascontiguousarray(lon[order])
        self.lat = np.ascontiguousarray(np.asarray(lat, dtype=np.float64)[order])
        self.radius = np.ascontiguousarray(np.asarray(radius_km, dtype=np.float64)[order])
        self.owner = np.ascontiguousarray(np.asarray(owner, dtype=np.int64)[order])
        self.mmsi = None if mmsi is None else np.asarray(mmsi, dtype=np.int64)[order]
        self.fix_at = None if fix_at is None else np.asarray(fix_at, dtype=np.float64)[order]
        self.max_radius = float(self.radius.max()) if len(self.radius) else 0.0

    def __len__(self) -> int:
        return len(self.lon)

    def candidates(self, lon_lo: float, lon_hi: float, lat_lo: float, lat_hi: float) -> np.ndarray:
        parts = []
        for lo, hi in lon_intervals(lon_lo, lon_hi):
            a = int(np.searchsorted(self.lon, lo, side="left"))
            b = int(np.searchsorted(self.lon, hi, side="right"))
            if b <= a:
                continue
            lat = self.lat[a:b]
            parts.append(np.flatnonzero((lat >= lat_lo) & (lat <= lat_hi)) + a)
        if not parts:
            return np.empty(0, dtype=np.intp)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def polygon_candidates(self, shape: _PolygonShape) -> np.ndarray:
        """Rows within reach of the polygon's bounding box (their radius at most ``max_radius``)."""
        if len(self) == 0:
            return np.empty(0, dtype=np.intp)
        (x0, y0, x1, y1), _ = _reach_box(shape, self.max_radius)
        return self.candidates(x0, x1, y0, y1)

    def polygon_hits(self, shape: _PolygonShape, idx: np.ndarray | None = None,
                     grid: PolygonGrid | None = None) -> np.ndarray:
        """Rows reaching the polygon, of the candidates ``idx`` (``polygon_candidates`` when not given): decided by
        their cell of ``grid`` where it can (a grid covering the reach of every row here), exactly otherwise."""
        if idx is None:
            idx = self.polygon_candidates(shape)
        if len(idx) == 0:
            return idx
        lon = self.lon[idx]
        # into the polygon's frame [centre - 180, centre + 180). One run of ascending rows (no second range past
        # the antimeridian) spans lon[0] .. lon[-1]: inside the frame already, nothing moves (a pass saved).
        if not (idx[0] <= idx[-1] and shape.centre_lon - 180.0 <= lon[0] and lon[-1] < shape.centre_lon + 180.0):
            lon = wrap_lon(lon, shape.centre_lon)
        lat = self.lat[idx]
        if grid is not None:
            return idx[self._grid_hits(shape, lon, lat, idx, grid)]
        hit = shapely.intersects_xy(shape.unwrapped, lon, lat)
        r_max = self.max_radius
        if r_max > 0:
            rad = self.radius[idx]
            rest = np.flatnonzero(~hit & (rad > 0))
            if len(shape.segments) > _NUMPY_DISTANCE_SEGMENTS:
                # A detailed outline (a province's coast): measured against the segments near each point (GEOS's
                # answers, see OutlineReach). No buffered prefilter: buffering thousands of vertices costs more.
                hit[rest] = shape.reaches_km(lon[rest], lat[rest], rad[rest])
                return idx[hit]
            if len(rest) * len(shape.segments) > _DIRECT_DISTANCE_WORK:
                # Many points: keep only those inside the buffered outline first.
                _, max_abs = _reach_box(shape, r_max)
                near = shapely.intersects_xy(shape.mercator_buffer(r_max, max_abs), np.radians(lon[rest]),
                                             mercator_y(lat[rest]))
                rest = rest[near]
            if len(rest):
                d = distance_km_to_segments(shape.segments, lon[rest], lat[rest])
                hit[rest[d <= rad[rest]]] = True
        return idx[hit]

    def _grid_hits(self, shape: _PolygonShape, lon: np.ndarray, lat: np.ndarray, idx: np.ndarray,
                   grid: PolygonGrid) -> np.ndarray:
        """``polygon_hits`` for many candidates: decided by their cell of a ``PolygonGrid`` where it can, exactly
        otherwise. Returns a mask over the candidates."""
        state, cell = grid.classify(lon, lat)
        hit = state == INSIDE
        edge = np.flatnonzero(state == EDGE)
        if self.max_radius > 0:
            rad = self.radius[idx]
            # a disc that surely reaches over the outline is a hit from either side of it: no point-in-polygon test
            # (every vessel in an EDGE cell of a grid finer than its 1 NM, a quarter of the detailed coast's tests)
            over = grid.max_km(cell[edge]) <= rad[edge]
            hit[edge[over]] = True
            edge = edge[~over]
        hit[edge] = shapely.intersects_xy(shape.unwrapped, lon[edge], lat[edge])
        if self.max_radius <= 0:
            return hit
        maybe = np.flatnonzero(~hit & (rad > 0))  # outside (INSIDE cells are hits), with a radius
        cell, rad_maybe = cell[maybe], rad[maybe]
        surely = grid.max_km(cell) <= rad_maybe  # outside, but its disc reaches over the outline
        hit[maybe[surely]] = True
        rest = maybe[~surely & ((state[maybe] == EDGE) | (grid.min_km(cell) <= rad_maybe))]
        if len(rest) == 0:
            return hit
        if len(shape.segments) > _NUMPY_DISTANCE_SEGMENTS:
            hit[rest] = shape.reaches_km(lon[rest], lat[rest], rad[rest])
        else:
            d = distance_km_to_segments(shape.segments, lon[rest], lat[rest])
            hit[rest[d <= rad[rest]]] = True
        return hit

    def circle_hits(self, lat0: float, lon0: float, radius_km: float) -> np.ndarray:
        if len(self) == 0:
            return np.empty(0, dtype=np.intp)
        reach = radius_km + self.max_radius
        dlat = reach / KM_PER_DEG_LAT
        dlon = lon_half_width_deg(lat0, reach)
        idx = self.candidates(lon0 - dlon, lon0 + dlon, lat0 - dlat, lat0 + dlat)
        if len(idx) == 0:
            return idx
        d = haversine_km(self.lat[idx], self.lon[idx], lat0, lon0)
        return idx[d <= radius_km + self.radius[idx]]


class _PolygonShape:
    """One alert polygon: unwrapped lon/lat (for points), split (for zones), Mercator (for distances)."""

    def __init__(self, geom: BaseGeometry, *, valid: bool = False) -> None:
        """``valid``: ``geom`` is known to be valid (checked or repaired when it was built), which spares a second
        check when its Mercator copy is made."""
        self.unwrapped: BaseGeometry = geom
        self.valid = valid
        minx, _, maxx, _ = geom.bounds
        self.centre_lon = (minx + maxx) / 2.0
        shapely.prepare(self.unwrapped)
        self._buffers: dict[tuple[float, float], BaseGeometry] = {}
        self._grids: dict[tuple[float, ...], PolygonGrid] = {}
        #: the key of a grid built with ``detail`` (with the index, for its rows): not evicted by other indexes' grids
        self._kept_grid: tuple[float, ...] | None = None

    @classmethod
    def from_latlon(cls, latlon: Sequence[LatLon]) -> _PolygonShape:
        """The shape of a CAP polygon, kept for the next ``_SHAPES_KEPT`` distinct polygons asked about (its
        Mercator outline, segments and grids are built once per alert polygon, not once per match)."""
        coords = _coordinates(latlon)
        key = coords.tobytes()
        with _SHAPES_LOCK:
            shape = _SHAPES.get(key)
            if shape is not None:
                _SHAPES.move_to_end(key)
                return shape
        shape = cls._build(coords)
        with _SHAPES_LOCK:
            _SHAPES[key] = shape
            while len(_SHAPES) > _SHAPES_KEPT:
                _SHAPES.popitem(last=False)
        return shape

    @classmethod
    def _build(cls, latlon: Sequence[LatLon] | np.ndarray) -> _PolygonShape:
        ring = unwrap_ring(latlon)
        if len(ring) < 3:
            raise ValueError("a polygon needs at least 3 points")
        if not np.all(np.abs(ring[:, 1]) <= 90.0):
            raise ValueError("polygon latitude outside [-90, 90] (pairs are (lat, lon))")
        poly = Polygon(ring)
        if not poly.is_valid:
            fixed = polygonal(shapely.make_valid(poly))
            if fixed is None:
                raise ValueError("polygon has no area")
            poly = fixed
        return cls(poly, valid=True)

    @cached_property
    def split(self) -> BaseGeometry:
        return split_antimeridian(self.unwrapped)

    @cached_property
    def mercator(self) -> BaseGeometry:
        return mercator(self.unwrapped, valid=self.valid)

    @cached_property
    def segments(self) -> np.ndarray:
        return outline_segments(self.mercator)

    @cached_property
    def mercator_outline(self) -> BaseGeometry:
        """The Mercator rings alone, prepared: the points measured are all outside the polygon, and GEOS then skips
        its point-in-polygon step (15 % of a detailed coast's distance tests)."""
        outline = shapely.boundary(self.mercator)
        shapely.prepare(outline)
        return outline

    @cached_property
    def outline_reach(self) -> OutlineReach:
        return OutlineReach(self.segments, self.mercator_outline)

    def reaches_km(self, lon: np.ndarray, lat: np.ndarray, radius_km: np.ndarray) -> np.ndarray:
        """Whether each point's disc reaches the outline (points outside the polygon), for a detailed outline. A few
        points go to GEOS at once; more are worth the numpy measure's runs of segments (built once per shape)."""
        if len(lon) < _GEOS_REACH_POINTS and "outline_reach" not in self.__dict__:
            return reaches_km(self.mercator_outline, lon, lat, radius_km)
        return self.outline_reach.reaches_km(lon, lat, radius_km)

    def grid(self, reach_km: float, candidates: int, detail: float = 1.0) -> PolygonGrid:
        """The polygon's grid over its bounding box grown by ``reach_km``, for points reaching at most that far: a
        function of its arguments only, so kept with the shape (an alert is matched again by the fan-out, the
        catch-up, the notices). One grid serves the fixed points and the vessels of an index."""
        (x0, y0, x1, y1), max_abs_lat = _reach_box(self, reach_km)
        span = max(x1 - x0, y1 - y0)
        key = (reach_km, _grid_cells(span, reach_km, candidates))
        grid = self._grids.get(key)
        if grid is None:
            # kept under the key an alert computes, whatever its detail: any grid gives the same answers
            cells = _grid_cells(span, reach_km, candidates, detail)
            min_abs = 0.0 if y0 <= 0.0 <= y1 else min(abs(y0), abs(y1))
            grid = PolygonGrid(self.unwrapped, x0, y0, x1, y1, reach_km=reach_km, max_abs_lat=max_abs_lat,
                               min_abs_lat=min_abs, cells=cells)
            with _SHAPES_LOCK:
                if len(self._grids) >= _GRIDS_PER_SHAPE:  # the oldest, but never the one built with the index
                    self._grids.pop(next(k for k in self._grids if k != self._kept_grid))
                self._grids[key] = grid
                if detail != 1.0:
                    self._kept_grid = key
        return grid

    def mercator_buffer(self, radius_km: float, max_abs_lat: float) -> BaseGeometry:
        key = (radius_km, max_abs_lat)
        if key not in self._buffers:
            buf = shapely.buffer(self.mercator, mercator_buffer_for(radius_km, max_abs_lat), quad_segs=8)
            shapely.prepare(buf)
            self._buffers[key] = buf
        return self._buffers[key]


#: Alert polygons whose shapes (and grids) are kept, most recently asked last.
_SHAPES: OrderedDict[bytes, _PolygonShape] = OrderedDict()
_SHAPES_LOCK = threading.Lock()
_SHAPES_KEPT = 8
#: Grid cells across per square root of the candidates, at most (``_grid_cells``).
_GRID_CELLS_PER_SQRT_CANDIDATE = 4.0
#: Cells x passes a grid's distance bounds may cost (a few ms).
_GRID_BUILD_BUDGET = 2.5e6
#: Zone outlines whose shapes (and grids) are kept per index, most recently asked last.
_ZONE_SHAPES_KEPT = 32
#: Zone outlines' grids built with the index (``GeoIndex.prepare_zones``) are this much finer across than those built
#: by a warning (``_grid_cells``): they cost no warning, and leave fewer points near the outline to test exactly.
_ZONE_GRID_DETAIL = 3.0
#: Parts of a zone outline closer than this (degrees, between their boxes) are matched as one shape.
_CLUSTER_GAP_DEG = 0.25
#: Grids kept per shape (one per index: its points and vessels share it; a few more across snapshots).
_GRIDS_PER_SHAPE = 4


def _epoch(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError("naive datetime given as 'at'")
    return at.timestamp()


class GeoIndex:
    def __init__(self, *, zones: ZoneTree | None = None,
                 point_lon: Iterable[float] = (), point_lat: Iterable[float] = (),
                 point_radius_km: Iterable[float] = (), point_owner: Iterable[int] = (),
                 vessel_mmsi: Iterable[int] = (), vessel_lon: Iterable[float] = (),
                 vessel_lat: Iterable[float] = (),
                 vessel_fix_at: Iterable[float] = (), vessel_owner: Iterable[int] = (),
                 buffer_nm: float = DEFAULT_BUFFER_NM, stale_after: timedelta = DEFAULT_STALE_AFTER) -> None:
        """Build from arrays (benchmarks, tests); ``vessel_fix_at`` is POSIX seconds. See ``from_session``."""
        self.zones = zones if zones is not None else ZoneTree([], [])
        self.buffer_nm = float(buffer_nm)
        self.stale_after = stale_after
        self.points = _Points(_arr(point_lon), _arr(point_lat), _arr(point_radius_km),
                              _arr(point_owner, np.int64))
        v_lon = _arr(vessel_lon)
        self.vessels = _Points(v_lon, _arr(vessel_lat), np.full(len(v_lon), self.buffer_nm * KM_PER_NM),
                               _arr(vessel_owner, np.int64), mmsi=_arr(vessel_mmsi, np.int64),
                               fix_at=_arr(vessel_fix_at))
        for name, arrays in (("point", (self.points.lat, self.points.radius, self.points.owner)),
                             ("vessel", (self.vessels.lat, self.vessels.owner))):
            base = self.points if name == "point" else self.vessels
            if any(len(a) != len(base) for a in arrays):
                raise ValueError(f"{name} arrays differ in length")

    @classmethod
    def from_session(cls, session: Session, *, buffer_nm: float = DEFAULT_BUFFER_NM,
                     stale_after: timedelta = DEFAULT_STALE_AFTER,
                     statuses: Sequence[str] = ("active",), vessels_only: Sequence[int] | None = None,
                     people: Sequence[int] | None = None, every_vessel: bool = False) -> GeoIndex:
        """Zone outlines, point subscriptions, latest fix of subscribed vessels (people in ``statuses``).

        ``vessels_only``: just these vessels, nothing else (where did the boats that just moved go?).
        ``people`` (with ``vessels_only``, possibly empty): the points and vessel rows of these people as well, no
        zone outlines (what a snapshot rechecks: the people and the vessels changed since it was built);
        ``every_vessel``: with those, every vessel row (when many boats moved, cheaper than listing them).
        """
        from subscribers.geo_models import Vessel
        from subscribers.models import Subscriber, Subscription

        restricted = vessels_only is not None or people is not None
        by_person = [list(people[i:i + _IN_BATCH]) for i in range(0, len(people or ()), _IN_BATCH)]
        by_mmsi = [list(vessels_only[i:i + _IN_BATCH]) for i in range(0, len(vessels_only or ()), _IN_BATCH)]
        # one query per batch, each through its own index (an OR across the two tables would scan every vessel)
        point_filters: list[Any] = [Subscription.subscriber_id.in_(b) for b in by_person] if restricted else [None]  # type: ignore[attr-defined]
        vessel_filters: list[Any] = (
            [None] if not restricted or every_vessel
            else [Subscription.subscriber_id.in_(b) for b in by_person] + [Vessel.mmsi.in_(b) for b in by_mmsi]  # type: ignore[attr-defined]
        )
        pts = np.empty((4, 0))
        for extra in point_filters:
            query = (
                select(Subscription.lon, Subscription.lat, Subscription.radius_km, Subscription.subscriber_id)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)  # type: ignore[arg-type]
                .where(Subscription.kind == "point", Subscriber.status.in_(list(statuses)),  # type: ignore[attr-defined]
                       Subscription.lat.is_not(None), Subscription.lon.is_not(None))  # type: ignore[union-attr]
            )
            if extra is not None:
                query = query.where(extra)
            # plain tuples in chunks (a million points would be a million Rows); small chunks, so that a build on a
            # thread of its own never holds the GIL long from a warning answered meanwhile
            pts = np.concatenate([pts, *raw_chunks(session.connection(), query, _point_columns, size=50_000)],
                                 axis=1)
        rows: dict[tuple[Any, ...], None] = {}
        for extra in vessel_filters:
            query = (
                select(Vessel.mmsi, Vessel.last_lon, Vessel.last_lat, Vessel.last_fix_at, Subscription.subscriber_id)
                .join(Subscription, (Subscription.mmsi == Vessel.mmsi) & (Subscription.kind == "vessel"))  # type: ignore[arg-type]
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)  # type: ignore[arg-type]
                .where(Subscriber.status.in_(list(statuses)), Vessel.last_fix_at.is_not(None))  # type: ignore[attr-defined,union-attr]
            )
            if extra is not None:
                query = query.where(extra)
            rows.update(dict.fromkeys(tuple(r) for r in session.exec(query)))
        ves = list(rows)
        index = cls(
            zones=ZoneTree.from_session(session) if vessels_only is None and people is None else None,
            point_lon=pts[0], point_lat=pts[1], point_radius_km=pts[2], point_owner=pts[3].astype(np.int64),
            vessel_mmsi=np.array([r[0] for r in ves], dtype=np.int64),
            vessel_lon=np.array([r[1] for r in ves], dtype=float),
            vessel_lat=np.array([r[2] for r in ves], dtype=float),
            vessel_fix_at=np.array([r[3].timestamp() for r in ves], dtype=float),
            vessel_owner=np.array([r[4] for r in ves], dtype=np.int64),
            buffer_nm=buffer_nm, stale_after=stale_after,
        )
        if len(index.zones):
            index.prepare_zones()
        return index

    def prepare_zones(self) -> None:
        """Match every zone outline once, so that its shapes, grid and distance runs are built and kept with this index,
        and so are its hits (``_KeptHits``: what ``affected_by_zones`` answers from while the rows are these).

        Why: a zone-coded warning after each build (every minute in the background) otherwise paid for them itself (a
        grid per outline is most of a first match); the outlines never change between builds. The grids are those the
        warning would build (a function of the outline and of this index's rows), so the answers are the same."""
        kept = []
        for shapes in self.zones.prepare():
            found = [self._polygon_hits(shape, grid_detail=_ZONE_GRID_DETAIL) for shape in shapes]
            kept.append(_OutlineHits.of(self, found))
        self._outline_hits = _KeptHits(self.zones, self.points, self.vessels, kept)

    def _kept_outline_hits(self) -> list[_OutlineHits] | None:
        """The hits ``prepare_zones`` kept, while they are still this index's answer: the same outlines, points and
        vessels (a snapshot's recheck shares the outlines with new rows; tests swap rows in)."""
        kept: _KeptHits | None = self.__dict__.get("_outline_hits")
        if kept is None or kept.zones is not self.zones or kept.points is not self.points \
                or kept.vessels is not self.vessels:
            return None
        return kept.hits

    def affected(self, polygons: Sequence[Sequence[LatLon]] = (), circles: Sequence[CircleSpec] = (), *,
                 at: datetime | None = None, leave_out: LeaveOut | None = None) -> AffectedSet:
        """Zones, point owners and vessel owners reached by the union of ``polygons`` and ``circles``.

        Polygons are lists of (lat, lon) like CAP; circles are (lat, lon, radius_km). ValueError names a
        bad shape. ``leave_out``: rows of these people and vessels are not counted (a snapshot's stale rows).
        """
        shapes = []
        for i, latlon in enumerate(polygons):
            try:
                shapes.append(_PolygonShape.from_latlon(latlon))
            except ValueError as exc:
                raise ValueError(f"polygon {i}: {exc}") from None
        for i, (lat, lon, radius) in enumerate(circles):
            if not (-90.0 <= lat <= 90.0) or not math.isfinite(lon) or not radius > 0:
                raise ValueError(f"circle {i}: bad centre or radius ({lat}, {lon}, {radius})")
        zones: set[str] = set()
        point_idx: list[np.ndarray] = []
        vessel_idx: list[np.ndarray] = []
        for shape in shapes:
            zones |= self.zones.intersecting(shape.split)
            points, vessels = self._polygon_hits(shape)
            point_idx.append(points)
            vessel_idx.append(vessels)
        for lat, lon, radius in circles:
            if len(self.zones):
                zones |= self.zones.intersecting(geodesic_circle(lat, lon, radius))
            point_idx.append(self.points.circle_hits(lat, lon, radius))
            vessel_idx.append(self.vessels.circle_hits(lat, lon, radius))
        return self._collect(zones, [self.points.owner[i] for i in point_idx], vessel_idx, at, leave_out)

    def affected_by_zones(self, codes: Iterable[str], *, at: datetime | None = None,
                          leave_out: LeaveOut | None = None) -> AffectedSet:
        """Points and vessels inside the stored outlines of ``codes`` (a zone-coded warning).

        Codes without an outline are ignored here: their subscribers are found by code elsewhere.
        """
        wanted = set(codes)
        sel = [i for i, c in enumerate(self.zones.codes) if c in wanted]
        zones = {str(self.zones.codes[i]) for i in sel}
        kept = self._kept_outline_hits()
        if kept is not None:  # the rows inside each outline, found with the index (the outlines are its own)
            return self._collect(zones, [kept[i].owners for i in sel], [kept[i].vessel_rows for i in sel], at,
                                 leave_out, presorted=True)
        point_idx: list[np.ndarray] = []
        vessel_idx: list[np.ndarray] = []
        for i in sel:
            for shape in self.zones.shapes(i):
                points, vessels = self._polygon_hits(shape)
                point_idx.append(points)
                vessel_idx.append(vessels)
        return self._collect(zones, [self.points.owner[i] for i in point_idx], vessel_idx, at, leave_out)

    def _polygon_hits(self, shape: _PolygonShape, grid_detail: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the fixed points and of the vessels reaching the polygon. With many candidates, both sets are
        decided by one grid of the polygon (built for the larger of their reaches): the grid is most of the cost
        of a new warning's first match, and its distance bounds hold for every radius up to its reach."""
        sets = (self.points, self.vessels)
        found = [rows.polygon_candidates(shape) for rows in sets]
        total = sum(len(idx) for idx in found)
        grid = None
        if total >= _GRID_MIN_CANDIDATES:
            grid = shape.grid(max(rows.max_radius for rows in sets), total, grid_detail)
        points, vessels = (rows.polygon_hits(shape, idx, grid) for rows, idx in zip(sets, found, strict=True))
        return points, vessels

    def _collect(self, zones: set[str], point_owners: list[np.ndarray], vessel_idx: list[np.ndarray],
                 at: datetime | None, leave_out: LeaveOut | None = None, *,
                 presorted: bool = False) -> AffectedSet:
        """The answer from the owners of the points hit and the rows of the vessels hit (fresh at ``at``, not left
        out). ``presorted``: each array of owners and of vessel rows is sorted and distinct already (an outline's
        kept hits): one alone is the answer without another sort, several are merged as sorted runs."""
        owners = [o for o in point_owners if len(o)]
        if leave_out is not None and len(leave_out.people):
            owners = [o[~_member(o, leave_out.people)] for o in owners]
        mmsis = np.empty(0, dtype=np.int64)
        vi = np.empty(0, dtype=np.intp)
        if vessel_idx:
            rows = np.concatenate(vessel_idx)
            vi = sorted_distinct(rows, runs=True) if presorted else _unique(rows)
        if len(vi):
            cutoff = _epoch(at or datetime.now(UTC)) - self.stale_after.total_seconds()
            assert self.vessels.fix_at is not None and self.vessels.mmsi is not None
            vi = vi[self.vessels.fix_at[vi] >= cutoff]
            if leave_out is not None and leave_out.every_vessel:
                vi = vi[:0]
            elif leave_out is not None:
                vi = vi[~_member(self.vessels.owner[vi], leave_out.people)
                        & ~_member(self.vessels.mmsi[vi], leave_out.vessels)]
            if len(vi):
                owners.append(_unique(self.vessels.owner[vi]) if presorted else self.vessels.owner[vi])
            mmsis = _unique(self.vessels.mmsi[vi])
        if not owners:
            ids = np.empty(0, dtype=np.int64)
        elif presorted and len(owners) == 1:
            ids = owners[0]
        elif presorted:  # several outlines' owners: sorted runs, merged by timsort
            ids = sorted_distinct(np.concatenate(owners), runs=True)
        else:
            ids = _unique(np.concatenate(owners))
        return AffectedSet(subscriber_ids=ids.astype(np.int64, copy=False), zone_codes=zones, mmsis=mmsis)


@dataclass(frozen=True, slots=True)
class _OutlineHits:
    """What one stored outline reaches among an index's rows, whatever the time: the owners of the points (sorted,
    distinct) and the rows of the vessels (sorted, distinct; whether a fix is fresh depends on the warning's time)."""

    owners: np.ndarray
    vessel_rows: np.ndarray

    @classmethod
    def of(cls, index: GeoIndex, parts: list[tuple[np.ndarray, np.ndarray]]) -> _OutlineHits:
        """From the (point rows, vessel rows) each part of the outline reaches in ``index``."""
        points = [p for p, _ in parts if len(p)]
        vessels = [v for _, v in parts if len(v)]
        owners = (_unique(index.points.owner[np.concatenate(points)]).astype(np.int64, copy=False) if points
                  else np.empty(0, dtype=np.int64))
        rows = _unique(np.concatenate(vessels)) if vessels else np.empty(0, dtype=np.intp)
        for array in (owners, rows):
            array.flags.writeable = False  # handed out as an answer: nobody may change what later ones read
        return cls(owners, rows)


@dataclass(frozen=True, slots=True)
class _KeptHits:
    """``GeoIndex.prepare_zones``'s hits, with the outlines and rows they were found among.

    Why keep them: the index's rows and outlines never change (a snapshot is replaced whole), so an outline's hits
    are the same for every warning; finding them again cost a zone-coded warning for 전남 5.7 ms of its first
    match at 10,000,000 people, all land's 15 outlines 36 ms. About 8 bytes a point inside an outline."""

    zones: ZoneTree
    points: _Points
    vessels: _Points
    hits: list[_OutlineHits]


def _coordinates(latlon: Sequence[LatLon] | np.ndarray) -> np.ndarray:
    """(lat, lon) pairs as an (n, 2) float array, read once (the shapes' key and their build share it): a CAP
    outline of thousands of tuples takes 0.45 ms through ``np.asarray``, 0.2 ms through ``np.fromiter``."""
    if not isinstance(latlon, np.ndarray):
        try:
            flat = np.fromiter(itertools.chain.from_iterable(latlon), dtype=float)
        except (TypeError, ValueError):
            flat = None
        if flat is not None and len(flat) == 2 * len(latlon):
            return flat.reshape(-1, 2)
    return np.asarray(latlon, dtype=float)  # the same values, or the error a bad shape gives


def _reach_box(shape: _PolygonShape, reach_km: float) -> tuple[tuple[float, float, float, float], float]:
    """The polygon's (unwrapped) bounding box grown by ``reach_km`` on the ground, and the highest |latitude| in
    it: every point whose disc of that radius reaches the polygon lies in the box."""
    minx, miny, maxx, maxy = shape.unwrapped.bounds
    dlat = reach_km / KM_PER_DEG_LAT
    lat_lo, lat_hi = miny - dlat, maxy + dlat
    max_abs = min(max(abs(lat_lo), abs(lat_hi)), 90.0)
    dlon = lon_half_width_deg(max_abs, reach_km) if reach_km > 0 else 0.0
    return (minx - dlon, lat_lo, maxx + dlon, lat_hi), max_abs


def _grid_cells(span_deg: float, reach_km: float, candidates: int, detail: float = 1.0) -> int:
    """Cells across a polygon's grid. Finer grids leave fewer points to measure exactly (the band left is about
    three cells wide), but cost more to build (a pass over the grid per cell of the largest radius): no cell
    smaller than a tenth of that radius, at most four per square root of the candidates, within [32, 384], and
    the build within ``_GRID_BUILD_BUDGET`` cell passes. ``detail`` scales the cells across (and the budget by its
    cube: cells² x passes) for grids built with the index rather than by a warning."""
    cap = 384.0 * detail
    cells = min(cap, max(32.0, math.sqrt(candidates) * _GRID_CELLS_PER_SQRT_CANDIDATE * detail))
    if reach_km <= 0:
        return int(min(cells, 256 * detail))
    span_km = max(span_deg * KM_PER_DEG_LAT, 1e-6)
    cells = max(min(cells, span_km / (reach_km / (10.0 * detail))), 32.0)
    budget = _GRID_BUILD_BUDGET * detail ** 3
    while cells > 32 and cells * cells * (2 * reach_km / (span_km / cells) + 5) > budget:
        cells *= 0.9
    return int(cells)


@dataclass(frozen=True)
class LeaveOut:
    """People and vessels (sorted, distinct int64 arrays) whose rows in an index are out of date."""

    people: np.ndarray
    vessels: np.ndarray
    #: every vessel row is out of date (many boats moved)
    every_vessel: bool = False


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_set)`` by binary search: the few hits of an alert against a short sorted list."""
    if len(sorted_set) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def _point_columns(rows: list[tuple[Any, ...]]) -> np.ndarray:
    """(lon, lat, radius_km or 0, subscriber id) rows as a 4 x n float array (ids stay exact below 2**53)."""
    return np.array([[r[0], r[1], r[2] or 0.0, r[3]] for r in rows], dtype=np.float64).reshape(-1, 4).T


def _arr(values: Iterable[float] | np.ndarray, dtype: type = np.float64) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(dtype, copy=False)
    return np.asarray(list(values), dtype=dtype)


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values; sort-based because numpy 2's hash-based ``np.unique`` is ~10x slower here."""
    if len(values) == 0:
        return values
    if values.dtype == np.int64 and int(values.min()) >= -(2**31) and int(values.max()) < 2**31:
        # ids as int32 sort in half the time (tens of thousands of owners: 0.3 ms of a polygon's match)
        s = np.sort(values.astype(np.int32)).astype(np.int64)
    else:
        s = np.sort(values)
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]
