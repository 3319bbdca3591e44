"""A raster of one alert polygon, so that most points are decided by the cell they fall in.

Why: a province-wide coastal warning over a million subscribed points has tens of thousands of candidates in
its bounding box. Testing each against a detailed outline (thousands of vertices) with shapely, and measuring
each point with a radius against that outline, cost tens of milliseconds; but only the points in cells the
outline passes through need a test at all, and of the points with a radius only those whose radius is about their
distance to the outline. The grid (``CELLS`` cells across the box) is built once per alert polygon (cached by the
index):

* EDGE cells are every cell the outline touches: the rings are densified to a quarter of a cell, each vertex
  marks its cell, and two consecutive vertices in diagonal cells also mark the two cells beside them (a
  segment shorter than a cell can only cut through those). Points there are tested exactly.
* Any other cell lies wholly inside or wholly outside; a run of such cells along a row is on one side, so one
  centre per run decides them all (one shapely test per run, not per cell).
* Distance bounds per cell, in the metric ``sqrt((w·dlon)² + dlat²)`` (degrees, ``w`` the cosine of the highest
  latitude): every outline point lies in an EDGE cell, so the gap between a cell and the nearest EDGE cell is a
  lower bound of any point's distance to the outline; and every EDGE cell has an outline point within ``u`` of its
  centre (a vertex inside it, or, for a cell marked beside a diagonal step, a vertex within a quarter cell of its
  corner), so the gap plus a cell and a half and ``u`` is an upper bound. Both are a distance
  transform computed in two separable passes (along columns, then across a few columns); they turn into km with
  the extremes of the latitude's cosine over the box. Points whose radius is below the lower bound are out,
  those whose radius is above the upper bound are in, and only the rest (a band about three cells wide) are
  measured exactly.

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
                 reach_km: float = 0.0, max_abs_lat: float = 0.0, min_abs_lat: float = 0.0,
                 cells: int = CELLS) -> None:
        """``reach_km``: the largest radius of the points to be classified; ``max_abs_lat`` and ``min_abs_lat`` the
        highest and lowest |latitude| in the box (0 when it straddles the equator): they bound the ground size of
        a cell."""
        self.x0, self.y0 = x0, y0
        self.size = max(x1 - x0, y1 - y0, 1e-9) / cells
        self.nx = int(math.floor((x1 - x0) / self.size)) + 1
        self.ny = int(math.floor((y1 - y0) / self.size)) + 1
        hi = math.radians(min(max_abs_lat, 89.9))
        lo = math.radians(min(max(min_abs_lat, 0.0), max_abs_lat, 89.9))
        # The exact test measures to the outline drawn straight in Mercator (vertices every 0.25°), the grid
        # to it drawn straight in lon/lat: they part by at most ~15 m x tan(latitude); 50 m x (1 + tan) is kept.
        self.slack_km = 0.05 * (1.0 + math.tan(hi))
        #: cos(highest)/cos(lowest latitude): the metric's km per degree lies within [a, 1/a] x the kilometres
        #: of a degree of latitude (the index's Mercator measure, scaled at the point, see ``subscribers.geodesy``)
        self.a = math.cos(hi) / math.cos(lo)
        self.w = max(math.cos(hi), 1e-6)
        self.km_per_deg = math.radians(1.0) * EARTH_RADIUS_KM
        edge = self._edges(geom)
        state = np.where(edge, EDGE, OUTSIDE).astype(np.int8)
        self._fill_inside(geom, edge, state)
        self.state = state
        self._lo_km, self._hi_km = self._bounds_km(edge, reach_km)

    def cells_of(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ix, iy, in_grid) of each point; points off the grid must be tested exactly."""
        ix = np.floor((lon - self.x0) / self.size).astype(np.intp)
        iy = np.floor((lat - self.y0) / self.size).astype(np.intp)
        # one unsigned comparison per axis: a negative cell number reads as a huge one
        in_grid = (ix.view(np.uintp) < self.nx) & (iy.view(np.uintp) < self.ny)
        if not in_grid.all():
            ix = np.where(in_grid, ix, 0)
            iy = np.where(in_grid, iy, 0)
        return ix, iy, in_grid

    def classify(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(state, cell) of each point: INSIDE, OUTSIDE or EDGE, and the flat cell number (off-grid points are EDGE,
        cell -1) for :meth:`min_km` and :meth:`max_km`."""
        ix, iy, in_grid = self.cells_of(lon, lat)
        cell = iy * self.nx + ix
        state = self.state.ravel()[cell]
        if not in_grid.all():
            state = np.where(in_grid, state, EDGE)
            cell = np.where(in_grid, cell, -1)
        return state, cell

    def min_km(self, cell: np.ndarray) -> np.ndarray:
        """A lower bound of the distance (the index's Mercator measure, km) from a point in ``cell`` to the outline."""
        return np.where(cell >= 0, self._lo_km[cell], 0.0)

    def max_km(self, cell: np.ndarray) -> np.ndarray:
        """An upper bound of the distance (km) from a point in ``cell`` to the outline."""
        return np.where(cell >= 0, self._hi_km[cell], np.inf)

    def _bounds_km(self, edge: np.ndarray, reach_km: float) -> tuple[np.ndarray, np.ndarray]:
        """Per cell (flat): lower and upper bounds in km of the distance from any point of it to the outline.

        In cells of the metric ``sqrt((w·dx)² + dy²)``, for an EDGE cell (dx, dy) cells away: the gap between the
        two cells is ``L = sqrt((w·max(|dx|-1, 0))² + max(|dy|-1, 0)²)``; a point of this cell is within
        ``sqrt((w·(|dx|+½))² + (|dy|+½)²) <= L + 1.5·sqrt(w² + 1)`` of that cell's centre (triangle inequality), and
        the outline within ``u`` of it. The smallest ``L`` is separable and monotone in |dx|, |dy|: first the
        nearest EDGE cell along each column (exact, two running maxima), then the minimum over the columns within
        reach (columns farther than every radius are bounded by their distance alone).
        """
        w, ny, nx = self.w, self.ny, self.nx
        rows = np.arange(ny, dtype=np.float32)[:, None]
        above = np.where(edge, rows, np.float32(-np.inf))
        np.maximum.accumulate(above, axis=0, out=above)
        below = np.where(edge, -rows, np.float32(-np.inf))[::-1]
        np.maximum.accumulate(below, axis=0, out=below)
        column = np.minimum(rows - above, -below[::-1] - rows)  # rows to the nearest EDGE cell in the column
        low_y = np.square(np.maximum(column - 1.0, 0.0))
        if reach_km > 0:
            per_col_km = self.km_per_deg * self.size * self.a * w
            cap = min(int(math.ceil((reach_km + self.slack_km) / per_col_km)) + 2, nx)
        else:
            cap = 1
        # float32: a relative rounding of 1e-7, far inside the 0.1 % margins of the conversion to km below
        far = np.float32((w * max(cap - 1, 0)) ** 2)
        low = np.minimum(low_y, far)  # the column itself (dx = 0)
        pair = np.empty_like(low)
        for dx in range(1, min(cap, nx)):
            # columns x - dx and x + dx cost the same: their minimum first, then one addition for both
            add = np.float32((w * (dx - 1)) ** 2)
            inner = slice(dx, nx - dx)  # columns with a neighbour on either side
            if nx > 2 * dx:
                np.minimum(low_y[:, :nx - 2 * dx], low_y[:, 2 * dx:], out=pair[:, inner])
            for dst, src in ((slice(0, min(dx, nx - dx)), slice(dx, min(2 * dx, nx))),  # left edge: x + dx only
                             (slice(max(nx - dx, dx), nx), slice(max(nx - 2 * dx, 0), nx - dx))):  # right: x - dx
                pair[:, dst] = low_y[:, src]
            if nx <= 2 * dx:  # columns in the middle of a narrow grid have neither neighbour
                pair[:, nx - dx:dx] = np.inf
            pair += add
            np.minimum(low, pair, out=low)
        gap = np.sqrt(low)
        scale = self.km_per_deg * self.size
        u = 0.5 * math.hypot(w, 1.0) + 0.25
        lo_km = gap * np.float32(scale * self.a * 0.999) - np.float32(self.slack_km)
        hi_km = (gap + np.float32(1.5 * math.hypot(w, 1.0) + u)) * np.float32(scale / self.a * 1.001) \
            + np.float32(self.slack_km)
        hi_km[low >= far] = np.inf  # no EDGE cell within reach: the bound above came from no cell at all
        lo_km[edge] = -self.slack_km
        hi_km[edge] = (0.5 * math.hypot(w, 1.0) + u) * (scale / self.a * 1.001) + self.slack_km
        return lo_km.ravel(), hi_km.ravel()

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
