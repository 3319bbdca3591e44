"""An SVG map of warned zones drawn from the imported zone outlines (``alimcast zones import``).

Served inline in the page: no tiles, no script, nothing fetched. Without outlines for the zones, there is
no map (the page lists the zones in words, which it does anyway).
"""

from __future__ import annotations

from collections.abc import Iterable

import shapely
from markupsafe import Markup, escape
from shapely.geometry.base import BaseGeometry
from sqlmodel import Session

from subscribers.geometry import load_zone_polygons

WIDTH = 360


def _rings(geom: BaseGeometry) -> list[list[tuple[float, float]]]:
    out: list[list[tuple[float, float]]] = []
    for polygon in getattr(geom, "geoms", [geom]):
        if polygon.geom_type != "Polygon":
            continue
        out.append(list(polygon.exterior.coords))
    return out


def zone_map(session: Session, warned: Iterable[str], *, points: Iterable[tuple[float, float, str]] = ()) -> Markup:
    """The warned zones (filled) over the neighbouring outlines, and optional points (lat, lon, label)."""
    codes = set(warned)
    shapes = [s for s in load_zone_polygons(session) if s.code in codes]
    if not shapes:
        return Markup("")
    union = shapely.union_all([s.geometry for s in shapes])
    minx, miny, maxx, maxy = union.bounds
    pad = max(maxx - minx, maxy - miny) * 0.25 + 0.05
    minx, miny, maxx, maxy = minx - pad, miny - pad, maxx + pad, maxy + pad
    context = [s for s in load_zone_polygons(session) if s.code not in codes
               and s.geometry.intersects(shapely.box(minx, miny, maxx, maxy))]
    scale = WIDTH / (maxx - minx)
    height = (maxy - miny) * scale

    def path(geom: BaseGeometry) -> str:
        parts = []
        for ring in _rings(geom):
            pts = " ".join(f"{(x - minx) * scale:.1f},{(maxy - y) * scale:.1f}" for x, y in ring)
            parts.append(f"M{pts}Z")
        return " ".join(parts)

    body = [f'<path class="ctx" d="{path(s.geometry)}"><title>{escape(s.name)}</title></path>' for s in context]
    body += [f'<path class="warned" d="{path(s.geometry)}"><title>{escape(s.name)}</title></path>' for s in shapes]
    for shape in shapes:  # names on the warned zones, so the map reads without a legend
        spot = shape.geometry.representative_point()
        body.append(f'<text x="{(spot.x - minx) * scale:.1f}" y="{(maxy - spot.y) * scale:.1f}" '
                    f'text-anchor="middle">{escape(shape.name)}</text>')
    for lat, lon, label in points:
        if minx <= lon <= maxx and miny <= lat <= maxy:
            x, y = (lon - minx) * scale, (maxy - lat) * scale
            body.append(f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="4"><title>{escape(label)}</title></circle>')
    return Markup(f'<svg class="zonemap" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
                  f'aria-label="특보 구역 지도 / map of the warned zones">{"".join(body)}</svg>')


def sea_map(session: Session) -> Markup:
    """Every imported sea-zone outline with its name, for the subscription page (no outlines: no map)."""
    shapes = [s for s in load_zone_polygons(session) if s.code.startswith("S")]
    if not shapes:
        return Markup("")
    minx, miny, maxx, maxy = shapely.union_all([s.geometry for s in shapes]).bounds
    pad = max(maxx - minx, maxy - miny) * 0.05 + 0.02
    minx, miny, maxx, maxy = minx - pad, miny - pad, maxx + pad, maxy + pad
    scale = WIDTH / (maxx - minx)
    body: list[str] = []
    for shape in shapes:
        d = " ".join("M" + " ".join(f"{(x - minx) * scale:.1f},{(maxy - y) * scale:.1f}" for x, y in ring) + "Z"
                     for ring in _rings(shape.geometry))
        spot = shape.geometry.representative_point()
        body.append(f'<path class="zone" d="{d}"><title>{escape(shape.name)}</title></path>'
                    f'<text x="{(spot.x - minx) * scale:.1f}" y="{(maxy - spot.y) * scale:.1f}" '
                    f'text-anchor="middle">{escape(shape.name)}</text>')
    return Markup(f'<svg class="zonemap seamap" viewBox="0 0 {WIDTH} {(maxy - miny) * scale:.0f}" role="img" '
                  f'aria-label="해역 지도 / map of the sea zones">{"".join(body)}</svg>')
