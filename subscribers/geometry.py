"""Zone outlines: import from GeoJSON into ``zone_polygon`` and load them back as shapely geometries.

KMA's warning-zone polygons cannot be bundled (no licensed copy): the operator exports the marine
portal's WFS layer as GeoJSON (feature property ``WarnCode``) and imports it. Real exports contain
self-intersecting rings and stray features, so one bad feature is reported by its index and skipped,
an invalid outline is repaired with ``shapely.make_valid`` (with a warning, because the repair can
change the area), and the rest of the file is still imported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry
from sqlmodel import Session, select

from subscribers.geo_models import ZonePolygon
from subscribers.sqltypes import utcnow

log = logging.getLogger(__name__)

#: Properties tried for the zone name, in order.
NAME_PROPERTIES = ("name", "NAME", "WarnName", "REG_KO", "reg_ko", "CTP_KOR_NM")


class ZoneImportError(Exception):
    """The file as a whole cannot be used (unreadable, not GeoJSON): nothing is imported."""


@dataclass
class ZoneImportReport:
    path: str
    imported: list[str] = field(default_factory=list)
    #: "feature 3: why" for every skipped feature.
    skipped: list[str] = field(default_factory=list)
    #: "feature 5 (S1251100): repaired: Self-intersection[...]" for every outline make_valid changed.
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.imported) and not self.skipped


def read_geojson_features(path: Path) -> list[Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ZoneImportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ZoneImportError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ZoneImportError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ZoneImportError(f"{path}: not a GeoJSON FeatureCollection")
    if data.get("type") == "FeatureCollection" and isinstance(data.get("features"), list):
        return data["features"]
    if data.get("type") == "Feature":
        return [data]
    raise ZoneImportError(f"{path}: not a GeoJSON FeatureCollection")


def polygonal(geom: BaseGeometry) -> BaseGeometry | None:
    """Only the areal part of a geometry (make_valid can add lines or points at pinches), or None."""
    if isinstance(geom, Polygon | MultiPolygon):
        return geom if not geom.is_empty else None
    parts = [g for g in getattr(geom, "geoms", [])
             if isinstance(g, Polygon | MultiPolygon) and not g.is_empty]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if isinstance(merged, Polygon | MultiPolygon) else None


def feature_geometry(feature: Any, index: int, code: str) -> tuple[BaseGeometry, str | None]:
    """A checked, valid (Multi)Polygon for one feature and an optional repair note; ValueError if not."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ValueError("not a GeoJSON Feature")
    gj = feature.get("geometry")
    if not isinstance(gj, dict):
        raise ValueError("no geometry")
    if gj.get("type") not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"geometry type {gj.get('type')!r} is not Polygon or MultiPolygon")
    notes = []
    gj, dropped = _drop_degenerate_rings(gj)
    if dropped:
        notes.append(f"dropped {dropped} ring(s) with fewer than 4 positions")
    try:
        geom = shape(gj)
    except Exception as exc:  # noqa: BLE001 - shapely raises several types for malformed coordinates
        raise ValueError(f"bad coordinates: {exc}") from None
    if geom.is_empty:
        raise ValueError("empty geometry" + (f" ({notes[0]})" if notes else ""))
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180.0 or maxx > 180.0 or miny < -90.0 or maxy > 90.0:
        raise ValueError(f"coordinates outside lon/lat range (bounds {geom.bounds}); "
                         "GeoJSON order is [lon, lat]")
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        fixed = polygonal(shapely.make_valid(geom))
        if fixed is None:
            raise ValueError(f"invalid outline ({reason}) and make_valid left no area")
        notes.append(f"repaired with make_valid: {reason}")
        geom = fixed
    return geom, (f"feature {index} ({code}): " + "; ".join(notes)) if notes else None


def _drop_degenerate_rings(gj: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Remove rings of fewer than 4 positions (simplified-away islands); a polygon without its shell goes.

    Simplified national outlines (like KOSTAT's 시도 file) contain such slivers, and shapely refuses the
    whole feature because of one of them.
    """
    coords = gj.get("coordinates")
    if not isinstance(coords, list):
        return gj, 0
    polygons = [coords] if gj.get("type") == "Polygon" else coords
    dropped = 0
    kept_polygons = []
    for poly in polygons:
        if not isinstance(poly, list):
            return gj, 0
        rings = [r for r in poly if isinstance(r, list) and len(r) >= 4]
        dropped += len(poly) - len(rings)
        if poly and rings and rings[0] is poly[0]:
            kept_polygons.append(rings)
        elif poly:
            dropped += len(rings)  # the holes of a dropped shell go with it
    if not dropped:
        return gj, 0
    if gj.get("type") == "Polygon":
        return {"type": "Polygon", "coordinates": kept_polygons[0] if kept_polygons else []}, dropped
    return {"type": "MultiPolygon", "coordinates": kept_polygons}, dropped


def import_zone_geojson(session: Session, path: Path | str, code_property: str = "WarnCode", *,
                        name_property: str | None = None, source: str | None = None,
                        known: Callable[[str], bool] | None = None) -> ZoneImportReport:
    """Load every Polygon/MultiPolygon feature as the outline of zone ``properties[code_property]``.

    Existing outlines with the same code are replaced (re-importing a newer export is the update path).
    Raises ZoneImportError only when the file itself is unusable. With ``known``, a feature whose code it
    refuses is skipped (a typo'd code would be an outline no warning ever names).
    """
    path = Path(path)
    features = read_geojson_features(path)
    report = ZoneImportReport(path=str(path))
    source = source if source is not None else path.name
    existing = {z.code: z for z in session.exec(select(ZonePolygon)).all()}
    seen: set[str] = set()
    for index, feature in enumerate(features):
        props = feature.get("properties") if isinstance(feature, dict) else None
        props = props if isinstance(props, dict) else {}
        raw_code = props.get(code_property)
        if raw_code is None or str(raw_code).strip() == "":
            present = ", ".join(sorted(props)) or "none"
            report.skipped.append(f"feature {index}: no {code_property!r} property (properties: {present})")
            continue
        code = str(raw_code).strip()
        if code in seen:
            report.skipped.append(f"feature {index}: duplicate code {code}")
            continue
        if known is not None and not known(code):
            report.skipped.append(f"feature {index}: unknown zone code {code} (not in the KMA zone catalogue)")
            continue
        try:
            geom, note = feature_geometry(feature, index, code)
        except ValueError as exc:
            report.skipped.append(f"feature {index} ({code}): {exc}")
            continue
        if note:
            log.warning("%s: %s", path.name, note)
            report.repaired.append(note)
        name = _name(props, name_property)
        seen.add(code)
        row = existing.get(code) or ZonePolygon(code=code, geometry=b"", min_lon=0, min_lat=0,
                                                max_lon=0, max_lat=0)
        row.name = name
        row.geometry = shapely.to_wkb(geom)
        row.source = source[:200]
        row.min_lon, row.min_lat, row.max_lon, row.max_lat = geom.bounds
        row.imported_at = utcnow()
        session.add(row)
        report.imported.append(code)
    session.flush()
    return report


def _name(props: dict[str, Any], name_property: str | None) -> str:
    keys = (name_property,) if name_property else NAME_PROPERTIES
    for key in keys:
        value = props.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    return ""


@dataclass(frozen=True)
class ZoneShape:
    code: str
    name: str
    geometry: BaseGeometry
    source: str


def load_zone_polygons(session: Session, codes: Iterable[str] | None = None) -> list[ZoneShape]:
    stmt = select(ZonePolygon).order_by(ZonePolygon.code)
    if codes is not None:
        stmt = stmt.where(ZonePolygon.code.in_(list(codes)))  # type: ignore[union-attr]
    rows = session.exec(stmt).all()
    return [ZoneShape(z.code, z.name, shapely.from_wkb(z.geometry), z.source) for z in rows]
