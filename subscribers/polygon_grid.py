"""A coarse raster of one alert polygon, so that most points are decided by the cell they fall in.

Why: a province-wide coastal warning over a million subscribed points has tens of thousands of candidates in
its bounding box. Testing each against a detailed outline (thousands of vertices) with shapely, and measuring
each point with a radius against that outline, cost tens of milliseconds; but only the points in cells the
outline passes through need a test at all. The grid (about 128 cells across the box) is built per alert in
well under a millisecond:

* EDGE cells are every cell the outline touches: the rings are densified to a quarter of a cell, each vertex
  marks its cell, and two consecutive vertices in diagonal cells also mark the two cells beside them (a
  segment shorter than a cell can only cut through those). Points there are tested exactly.
* Any other cell lies wholly inside or wholly outside; a run of such cells along a row is on one side, so one
  centre per run decides them all (one shapely test per run, not per cell).
* ``steps``: how many cells (Chebyshev) an outside cell is from the nearest EDGE cell, up to a cap. A point
  in a cell ``s`` steps away is at least ``(s - 1)`` cells of longitude away from the outline on the ground,
  which rules out every point whose radius is shorter than that without measuring it; and the outline is
  within ``steps + 2`` cells of it, which lets in every point whose radius is longer than that.

Nothing is approximated: every point not decided by these bounds is tested exactly as before.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from subscribers.geodesy import EARTH_RADIUS_KM

OUTSIDE, INSIDE, EDGE = 0, 1, 2
#: Cells across the longer side of the box.
CELLS = 128


class PolygonGrid:
    """Cell states of ``geom`` (lon/lat, the alert's unwrapped frame) over the box [x0, x1] x [y0, y1]."""

    def __init__(self, geom: BaseGeometry, x0: float, y0: float, x1: float, y1: float, *,
                 reach_km: float = 0.0, max_abs_lat: float = 0.0, cells: int = CELLS) -> None:
        """``reach_km``: the largest radius of the points to be classified, ``max_abs_lat`` the highest |latitude|
        among them (it fixes the smallest ground width of a cell)."""
        self.x0, self.y0 = x0, y0
        self.size = max(x1 - x0, y1 - y0, 1e-9) / cells
        self.nx = int(math.floor((x1 - x0) / self.size)) + 1
        self.ny = int(math.floor((y1 - y0) / self.size)) + 1
        lat = math.radians(min(max_abs_lat, 89.9))
        self.cell_km = math.radians(self.size) * EARTH_RADIUS_KM * math.cos(lat)
        # The exact test measures to the outline drawn straight in Mercator (vertices every 0.25°), the grid
        # to it drawn straight in lon/lat: they part by at most ~15 m x tan(latitude); 50 m x (1 + tan) is kept.
        self.slack_km = 0.05 * (1.0 + math.tan(lat))
        # Scaled by the cosine of the point's latitude, a north-south distance can grow by this factor at most.
        self.stretch = math.cos(max(lat - reach_km / EARTH_RADIUS_KM, 0.0)) / math.cos(lat)
        edge = self._edges(geom)
        state = np.where(edge, EDGE, OUTSIDE).astype(np.int8)
        self._fill_inside(geom, edge, state)
        self.state = state
        max_steps = min(int(math.ceil(reach_km / self.cell_km)) + 1, max(self.nx, self.ny)) if reach_km > 0 else 0
        self.steps = _steps_from(edge, max_steps)

    def cells_of(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ix, iy, in_grid) of each point; points off the grid must be tested exactly."""
        ix = np.floor((lon - self.x0) / self.size)
        iy = np.floor((lat - self.y0) / self.size)
        in_grid = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        ix = np.where(in_grid, ix, 0).astype(np.intp)
        iy = np.where(in_grid, iy, 0).astype(np.intp)
        return ix, iy, in_grid

    def classify(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(state, steps) of each point: INSIDE, OUTSIDE or EDGE (off-grid points are EDGE, steps 0)."""
        ix, iy, in_grid = self.cells_of(lon, lat)
        state = np.where(in_grid, self.state[iy, ix], EDGE)
        steps = np.where(in_grid, self.steps[iy, ix], 0)
        return state, steps

    def min_km(self, steps: np.ndarray) -> np.ndarray:
        """A lower bound of the distance (the index's Mercator measure, km) from a point ``steps`` cells from the
        nearest EDGE cell to the outline: ``steps - 1`` whole cells lie between them, and a cell is at least
        ``size`` degrees of longitude at the highest latitude of the points (``cell_km``)."""
        return np.maximum(steps - 1, 0) * (self.cell_km * 0.999) - self.slack_km

    def max_km(self, steps: np.ndarray) -> np.ndarray:
        """An upper bound of the distance (km) from a point ``steps`` cells from the nearest EDGE cell to the
        outline: an EDGE cell may only be marked beside one the outline touches, so the outline is within
        ``steps + 2`` cells along each axis; a cell is at most ``size`` degrees (``stretch``: the Mercator
        measure's growth north-south)."""
        cell_max_km = math.radians(self.size) * EARTH_RADIUS_KM * self.stretch * 1.001
        return (steps + 2) * (math.sqrt(2.0) * cell_max_km) + self.slack_km

    def _edges(self, geom: BaseGeometry) -> np.ndarray:
        edge = np.zeros((self.ny, self.nx), dtype=bool)
        rings = shapely.get_rings(shapely.get_parts(geom))
        for ring in shapely.segmentize(rings, self.size / 4):
            xy = shapely.get_coordinates(ring)
            ix, iy, in_grid = self.cells_of(xy[:, 0], xy[:, 1])
            if not in_grid.all():
                raise ValueError("the grid does not cover the polygon")
            edge[iy, ix] = True
            # a segment between diagonal neighbours may cut through either cell beside them
            edge[iy[1:], ix[:-1]] = True
            edge[iy[:-1], ix[1:]] = True
        return edge

    def _fill_inside(self, geom: BaseGeometry, edge: np.ndarray, state: np.ndarray) -> None:
        free = ~edge
        starts = free.copy()
        starts[:, 1:] &= edge[:, :-1]  # a run of free cells starts after an edge cell or at the row's start
        run = np.cumsum(starts.ravel()) - 1
        sy, sx = np.nonzero(starts)
        if len(sx) == 0:
            return
        inside = shapely.intersects_xy(geom, self.x0 + (sx + 0.5) * self.size, self.y0 + (sy + 0.5) * self.size)
        flat = state.ravel()
        free_flat = free.ravel()
        flat[free_flat & inside[np.maximum(run, 0)]] = INSIDE


def _steps_from(edge: np.ndarray, max_steps: int) -> np.ndarray:
    """Chebyshev distance in cells to the nearest EDGE cell, capped at ``max_steps + 1``."""
    cap = max_steps + 1
    steps = np.full(edge.shape, cap, dtype=np.int32)
    steps[edge] = 0
    reached = edge.copy()
    for s in range(1, cap):
        grown = reached.copy()
        grown[1:, :] |= reached[:-1, :]
        grown[:-1, :] |= reached[1:, :]
        wide = grown.copy()
        wide[:, 1:] |= grown[:, :-1]
        wide[:, :-1] |= grown[:, 1:]
        steps[wide & ~reached] = s
        if wide.all():
            break
        reached = wide
    return steps
