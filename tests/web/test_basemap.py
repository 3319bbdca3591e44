"""The SVG map: imported zone outlines are drawn for the zones an alert names (a group code by its leaves),
land zones without one shade their province, sea zones without one are listed as not drawn."""

from __future__ import annotations

import json

import shapely
from shapely.geometry import shape

from alerts.db import session_scope
from alerts.web.basemap import alert_layer, province_of, render_map, xy
from alerts.web.live import zone_outlines
from subscribers.geometry import import_zone_geojson


def body(*codes: str) -> dict:
    return {"infos": [{"areas": [{"desc": "x", "polygons": [], "circles": [], "geocodes": {"KMA_ZONE": list(codes)}}]}]}


def test_zone_outlines_provinces_and_undrawn(web_env):
    square = {"type": "Polygon", "coordinates": [[[125.0, 37.0], [126.0, 37.0], [126.0, 37.6], [125.0, 37.6],
                                                  [125.0, 37.0]]]}
    path = web_env.tmp / "zones.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"WarnCode": "S1251100"}, "geometry": square}]}), encoding="utf-8")
    with session_scope(web_env.engine) as session:
        import_zone_geojson(session, path, "WarnCode")
        outlines = zone_outlines(session)
    assert shapely.equals(outlines["S1251100"], shape(square))

    layer = alert_layer(body("S1251100"), outlines, css="sev-Severe", title="t", value_names=("KMA_ZONE",))
    x0, y0 = xy(37.0, 125.0)
    assert len(layer.paths) == 1 and layer.paths[0].startswith(f"M{x0:.1f},{y0:.1f}")
    # the group 서해중부앞바다 (S1251000) has no outline of its own: drawn by its imported leaf
    group = alert_layer(body("S1251000"), outlines, css="sev-Severe", title="t", value_names=("KMA_ZONE",))
    assert group.paths == layer.paths and not group.undrawn
    # a land zone without an outline: its province, marked approximate; a sea zone without one: listed
    other = alert_layer(body("L1010200", "S1311100"), outlines, css="sev-Minor", title="t", value_names=("KMA_ZONE",))
    assert province_of("L1010200") == "경기도" and len(other.paths) == 1
    assert other.approximate == ["광명시 (L1010200)"] and other.undrawn == ["부산앞바다 (S1311100)"]
    svg = render_map([layer, other])
    assert svg.count('class="shape ') == 2 and "공공누리" in svg
