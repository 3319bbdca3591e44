"""``geodesy.mercator`` on a polygon known to be valid: densified only when an edge needs it, and the copy is the same
either way (a first match of a detailed alert polygon skips GEOS's densify-and-revalidate when no edge is long)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from subscribers import geoindex
from subscribers.geodesy import _needs_segmentize, mercator


def ragged_ring(n: int, radius_deg: float, seed: int = 3, spike: float = 0.0) -> list[tuple[float, float]]:
    """(lon, lat) of a star-shaped ring round (127, 35): edges about 2π·radius/n long, but for the two beside a
    vertex ``spike`` degrees from the centre (if any)."""
    rng = np.random.default_rng(seed)
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    r = radius_deg * rng.uniform(0.6, 1.0, n)
    if spike:
        r[n // 2] = spike
    return [(127.0 + ri * math.cos(a), 35.0 + ri * math.sin(a)) for ri, a in zip(r, ang, strict=True)]


SHORT = Polygon(ragged_ring(400, 0.5))  # a detailed coast: every edge far below 0.25°
LONG = Polygon([(124.0, 33.0), (131.0, 33.0), (131.0, 38.5), (124.0, 38.5)])  # edges of 5-7°
ONE_LONG = Polygon(ragged_ring(300, 0.5, spike=1.5))  # two edges of about 1°
REPEATED = Polygon([(126.0, 34.0), (126.1, 34.0), (126.1, 34.0), (126.1, 34.1), (126.0, 34.1)])


@pytest.mark.parametrize(("poly", "needs"), [(SHORT, False), (LONG, True), (ONE_LONG, True), (REPEATED, True)])
def test_mercator_of_a_valid_polygon_is_the_densified_copy(poly: Polygon, needs: bool) -> None:
    assert poly.is_valid
    assert _needs_segmentize(poly, 0.25) is needs
    kept = mercator(poly, valid=True)
    densified = mercator(poly)  # always through shapely.segmentize
    assert shapely.get_coordinates(kept).tobytes() == shapely.get_coordinates(densified).tobytes()
    more = len(shapely.get_coordinates(densified)) - len(shapely.get_coordinates(poly))
    assert (more != 0) is needs  # vertices added along long edges, a repeated one dropped


def test_an_edge_at_the_limit_is_left_to_segmentize() -> None:
    edge = 0.25
    square = Polygon([(126.0, 34.0), (126.0 + edge, 34.0), (126.0 + edge, 34.0 + edge), (126.0, 34.0 + edge)])
    assert _needs_segmentize(square, edge)  # within a hair of the limit: GEOS's own rounding decides
    assert not _needs_segmentize(square, edge * 1.001)
    assert shapely.get_coordinates(mercator(square, edge, valid=True)).tobytes() == \
        shapely.get_coordinates(mercator(square, edge)).tobytes()


def test_holes_and_parts_are_checked_ring_by_ring() -> None:
    hole = [(126.9, 34.9), (127.1, 34.9), (127.1, 35.1), (126.9, 35.1)]
    with_hole = Polygon(ragged_ring(400, 0.5), [hole])
    assert not _needs_segmentize(with_hole, 0.25)
    # two short-edged parts far apart: the jump from one ring to the next is not an edge
    far = shapely.MultiPolygon([SHORT, shapely.affinity.translate(SHORT, 5.0, 0.0)])
    assert far.is_valid and not _needs_segmentize(far, 0.25)
    assert _needs_segmentize(shapely.MultiPolygon([SHORT, LONG.difference(SHORT.buffer(0.1))]), 0.25)


def test_an_alert_polygon_with_long_edges_is_still_densified() -> None:
    """A CAP polygon of a few long edges (a sea area) must still follow the lon/lat lines in Mercator: its shape's
    Mercator copy is the densified one, and the detailed coast's is its plain copy."""
    geoindex._SHAPES.clear()
    sea = geoindex._PolygonShape.from_latlon([(lat, lon) for lon, lat in LONG.exterior.coords])
    coast = geoindex._PolygonShape.from_latlon([(lat, lon) for lon, lat in SHORT.exterior.coords])
    assert sea.valid and coast.valid
    assert len(shapely.get_coordinates(sea.mercator)) > 100
    assert len(shapely.get_coordinates(coast.mercator)) == len(shapely.get_coordinates(coast.unwrapped))
    for shape in (sea, coast):
        assert shapely.get_coordinates(shape.mercator).tobytes() == \
            shapely.get_coordinates(mercator(shape.unwrapped)).tobytes()
