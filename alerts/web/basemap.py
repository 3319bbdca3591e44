"""The console's map, drawn as SVG by alimcast itself: no tiles, no CDN, nothing fetched at run time.

The base layer is the bundled 시도 boundaries (Statistics Korea SGIS 2018, KOGL Type 1; see
``data/kr_sido_2018_LICENSE.md``), simplified once and cached. Alerts are drawn over it in the same
projection: their polygons and circles as sent, the imported outline of each zone they name
(``alimcast zones import``), and, for a land zone without an outline, its province shaded as an
approximation. Sea zones without an outline cannot be drawn and are listed beside the map instead.

Projection: equirectangular around 36°N (x scaled by cos 36°), which is close enough at this scale and keeps
the arithmetic trivial in both Python and the browser.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon

DATA = Path(__file__).parent / "data"
SIDO_FILE = DATA / "kr_sido_2018_kostat_geo_simple.geojson"
ATTRIBUTION = "행정구역 경계: 통계청 SGIS 2018 (공공누리 제1유형)"

LON_MIN, LON_MAX = 123.6, 132.0
LAT_MIN, LAT_MAX = 32.4, 38.9
SCALE = 100.0  # px per degree of latitude
KX = SCALE * math.cos(math.radians(36.0))
WIDTH = round((LON_MAX - LON_MIN) * KX)
HEIGHT = round((LAT_MAX - LAT_MIN) * SCALE)
SIMPLIFY_DEGREES = 0.004

#: KMA's names of the top land zones -> the 2018 시도 names in the boundary file.
PROVINCE_ALIASES = {"전북자치도": "전라북도", "제주도": "제주특별자치도", "울릉도.독도": "경상북도"}


def xy(lat: float, lon: float) -> tuple[float, float]:
    return (lon - LON_MIN) * KX, (LAT_MAX - lat) * SCALE


def _ring_path(coords: Any) -> str:
    points = [xy(lat, lon) for lon, lat in coords]
    if len(points) < 3:
        return ""
    return "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in points) + "Z"


def geometry_path(geometry: Any) -> str:
    """SVG path data of a shapely (Multi)Polygon in lon/lat order."""
    parts: list[str] = []
    polygons = geometry.geoms if hasattr(geometry, "geoms") else [geometry]
    for polygon in polygons:
        if polygon.geom_type != "Polygon" or polygon.is_empty:
            continue
        parts.append(_ring_path(polygon.exterior.coords))
        parts.extend(_ring_path(interior.coords) for interior in polygon.interiors)
    return "".join(parts)


@lru_cache(maxsize=1)
def provinces() -> dict[str, Any]:
    """시도 name -> simplified shapely geometry."""
    data = json.loads(SIDO_FILE.read_text(encoding="utf-8"))
    out: dict[str, Any] = {}
    for feature in data["features"]:
        geometry = feature["geometry"]
        polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
        parts = []
        for rings in polygons:
            rings = [ring for ring in rings if len(ring) >= 4]  # the simplified file has degenerate islets
            if rings:
                parts.append(Polygon(rings[0], rings[1:]))
        merged = MultiPolygon(parts)
        out[feature["properties"]["name"]] = shapely.simplify(merged, SIMPLIFY_DEGREES, preserve_topology=True)
    return out


@lru_cache(maxsize=1)
def base_layer() -> str:
    """The land as one SVG group (cached: drawn once per process, ~100 KB)."""
    parts = [f'<rect class="sea" x="0" y="0" width="{WIDTH}" height="{HEIGHT}"/>', '<g class="land">']
    codes = province_zone_codes()
    for name, geometry in provinces().items():
        zone = f' data-zone="{codes[name]}"' if name in codes else ""
        parts.append(f'<path d="{geometry_path(geometry)}"{zone}><title>{escape(name)}</title></path>')
    parts.append("</g>")
    return "".join(parts)


@lru_cache(maxsize=1)
def province_zone_codes() -> dict[str, str]:
    """시도 name in the boundary file -> the KMA land zone code of that province (for picking on the map)."""
    from subscribers import zones

    known = provinces()
    out: dict[str, str] = {}
    for zone in zones.list_zones(marine=False):
        if zone.parent != "L1000000":
            continue
        name = PROVINCE_ALIASES.get(zone.name, zone.name)
        if name in known and name not in out:
            out[name] = zone.code
    return out


def province_of(zone_code: str) -> str | None:
    """The 시도 a land zone lies in (by the KMA catalogue's parents), or None."""
    from subscribers import zones

    if not zone_code.startswith("L") or not zones.is_known(zone_code):
        return None
    known = provinces()
    for code in [zone_code, *zones.ancestors(zone_code)]:
        name = zones.name(code)
        name = PROVINCE_ALIASES.get(name, name)
        if name in known:
            return name
    return None


@dataclass
class Layer:
    """What one alert covers, ready to draw."""

    css: str
    title: str
    paths: list[str] = field(default_factory=list)
    circles: list[tuple[float, float, float]] = field(default_factory=list)
    approximate: list[str] = field(default_factory=list)
    undrawn: list[str] = field(default_factory=list)
    href: str | None = None

    @property
    def drawn(self) -> bool:
        return bool(self.paths or self.circles)


def alert_layer(body: dict[str, Any], outlines: dict[str, Any], *, css: str, title: str,
                value_names: tuple[str, ...], href: str | None = None) -> Layer:
    """The shapes of a stored alert body (``Alert.to_json``-shaped dict), zone outlines from ``outlines``
    (code -> shapely geometry), provinces for land zones without one."""
    from subscribers import zones

    layer = Layer(css=css, title=title, href=href)
    shaded: set[str] = set()
    for info in body.get("infos") or []:
        for area in info.get("areas") or []:
            for ring in area.get("polygons") or []:
                path = _ring_path([(p[1], p[0]) for p in ring])
                if path:
                    layer.paths.append(path)
            for circle in area.get("circles") or []:
                x, y = xy(circle["lat"], circle["lon"])
                layer.circles.append((x, y, circle["radius_km"] / 111.2 * SCALE))
            for name in value_names:
                for code in (area.get("geocodes") or {}).get(name, []):
                    leaves = zones.expand(code) if zones.is_known(code) else [code]
                    # the zone's own outline, else the outlines of the leaf zones it stands for
                    drawn = [outlines[code]] if code in outlines else [outlines[c] for c in leaves if c in outlines]
                    if drawn:
                        layer.paths.extend(geometry_path(g) for g in drawn)
                        continue
                    province = province_of(code)
                    if province is not None:
                        if province not in shaded:
                            shaded.add(province)
                            layer.paths.append(geometry_path(provinces()[province]))
                        layer.approximate.append(_label(code))
                    else:
                        layer.undrawn.append(_label(code))
    layer.approximate = list(dict.fromkeys(layer.approximate))
    layer.undrawn = list(dict.fromkeys(layer.undrawn))
    return layer


def _label(code: str) -> str:
    from subscribers import zones

    try:
        return f"{zones.name(code)} ({code})"
    except Exception:  # noqa: BLE001 - an unknown code is shown as it came
        return code


def render_map(layers: list[Layer], *, css_class: str = "map", interactive: bool = False, overlay: str = "",
               view: tuple[float, float, float, float] | None = None) -> str:
    """The whole map: base layer, then each alert's shapes (most severe drawn last, on top), then ``overlay``
    (SVG drawn in the map's pixels: boats, say). ``view`` (x, y, width, height) zooms in on part of it."""
    box = " ".join(f"{v:.1f}" for v in view) if view else f"0 0 {WIDTH} {HEIGHT}"
    out = [f'<svg class="{css_class}" viewBox="{box}" xmlns="http://www.w3.org/2000/svg" '
           f'role="img" aria-label="map of live alerts" data-lon-min="{LON_MIN}" data-lat-max="{LAT_MAX}" '
           f'data-kx="{KX:.6f}" data-scale="{SCALE}">', base_layer(), '<g class="alerts">']
    for layer in layers:
        if not layer.drawn:
            continue
        inner = [f"<title>{escape(layer.title)}</title>"]
        if layer.paths:
            inner.append(f'<path fill-rule="evenodd" d="{"".join(layer.paths)}"/>')
        inner.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{max(r, 2):.1f}"/>' for x, y, r in layer.circles)
        group = f'<g class="shape {escape(layer.css)}">{"".join(inner)}</g>'
        if layer.href:
            group = f'<a href="{escape(layer.href)}">{group}</a>'
        out.append(group)
    out.append("</g>")
    out.append(overlay)
    undrawn = sorted({z for layer in layers for z in layer.undrawn})
    if undrawn:
        # say why a warning is missing from the map rather than showing an empty sea
        out.append(f'<g class="map-note"><rect x="8" y="8" width="{WIDTH - 16}" height="40" rx="4"/>'
                   f'<text x="16" y="24">{len(undrawn)} zone(s) not drawn: no outline imported '
                   f'({escape(", ".join(undrawn[:2]))}{", …" if len(undrawn) > 2 else ""}).</text>'
                   f'<text x="16" y="40">Import outlines with: alimcast zones import FILE.geojson</text></g>')
    if interactive:
        out.append('<g class="drawing"></g>')
    out.append(f'<text class="attribution" x="{WIDTH - 6}" y="{HEIGHT - 6}" text-anchor="end">'
               f"{escape(ATTRIBUTION)}</text></svg>")
    return "".join(out)
