"""``alimcast zones import|list``: warning-zone outlines and the KMA code catalogue."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session

from alerts.cli.common import AppContext, ConfigOption, fail, open_context
from subscribers import zones as zone_catalogue
from subscribers.geometry import ZoneImportError, import_zone_geojson, load_zone_polygons
from subscribers.refix import recheck_stored_fixes
from subscribers.sqltypes import utcnow

app = typer.Typer(no_args_is_help=True)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="GeoJSON FeatureCollection of Polygon/MultiPolygon zones")],
    code_property: Annotated[str, typer.Option("--code-property", help="feature property holding the zone code")]
    = "WarnCode",
    name_property: Annotated[str | None, typer.Option("--name-property", help="feature property with the name")]
    = None,
    source: Annotated[str | None, typer.Option("--source", help="attribution stored with the outlines")] = None,
    allow_unknown_codes: Annotated[bool, typer.Option(
        "--allow-unknown-codes", help="keep outlines whose code is not a KMA warning zone (e.g. 시도 areas)")] = False,
    config: ConfigOption = None,
) -> None:
    """Load zone outlines; bad features are reported by index and skipped, the rest is imported.

    The file is a GeoJSON FeatureCollection of Polygon or MultiPolygon features in WGS84 longitude/latitude,
    each with its KMA 특보구역 code in a property (--code-property, default WarnCode), as the KMA
    weather-data portal's warning-zone layer exports it. Codes the zone catalogue does not know are
    refused (a typo would be an outline no warning names) unless --allow-unknown-codes.

    Without outlines, zone-coded warnings still reach people subscribed to zones, but vessels and fixed
    points are in no zone: only warnings with their own polygon or circle reach them. After an import,
    every vessel's stored fix is checked against the new outlines at once, and boats now inside a live
    warning are sent it.
    """
    ctx = open_context(config)
    try:
        with ctx.session() as session:
            report = import_zone_geojson(session, file, code_property, name_property=name_property,
                                         source=source, known=None if allow_unknown_codes else zone_catalogue.is_known)
            placed = recheck_stored_fixes(session, buffer_nm=ctx.config.vessel_buffer_nm,
                                          stale_after=timedelta(hours=ctx.config.vessel_stale_after_hours))
            followed = _follow(session, ctx, placed.moved)
    except ZoneImportError as exc:
        fail(str(exc))
    if placed.vessels:
        typer.echo(f"{placed.vessels} vessels re-checked on their stored fix: {placed.entered} zone entries, "
                   f"{placed.left} exits; {followed} message(s) queued for live warnings")
    for line in report.repaired:
        typer.echo(f"warning: {file}: {line}", err=True)
    for line in report.skipped:
        typer.echo(f"skipped: {file}: {line}", err=True)
    typer.echo(f"{len(report.imported)} zones imported, {len(report.skipped)} skipped, "
               f"{len(report.repaired)} repaired")
    if not report.imported:
        fail(f"{file}: no zone imported (is --code-property {code_property!r} right?)")


@app.command("list")
def list_(
    marine: Annotated[bool, typer.Option("--marine", help="sea zones only")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """KMA warning zones (code, name, parent) and whether an outline has been imported for each."""
    ctx = open_context(config)
    with ctx.session() as session:
        shapes = {z.code: z for z in load_zone_polygons(session)}
    rows: list[dict[str, Any]] = []
    try:
        from subscribers import zones as catalogue  # the code catalogue lives with the subscriber side
        listed = catalogue.list_zones(True if marine else None)
    except ImportError:
        listed = []
    for z in listed:
        shape = shapes.get(z.code)
        rows.append({"code": z.code, "name": z.name, "kind": z.kind, "parent": z.parent,
                     "polygon": shape is not None, "source": shape.source if shape else None})
    known = {r["code"] for r in rows}
    for code, shape in sorted(shapes.items()):
        if code not in known and not marine:  # outlines with codes outside the catalogue (e.g. 시도)
            rows.append({"code": code, "name": shape.name, "kind": "polygon only", "parent": None,
                         "polygon": True, "source": shape.source})
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(rows)} zones, {sum(r['polygon'] for r in rows)} with outlines")
    for column in ("code", "name", "kind", "parent", "outline"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["code"], r["name"], r["kind"], r["parent"] or "", r["source"] or "")
    Console().print(table)


def _follow(session: Session, ctx: AppContext, mmsis: set[int]) -> int:
    """Boats the new outlines place in a live warning get it now (the same step as a new AIS fix)."""
    if not mmsis:
        return 0
    from alerts.audience import Audience
    from alerts.fanout import follow_vessels
    from alerts.pipeline import zone_name

    audience = Audience(ctx.engine, buffer_nm=ctx.config.vessel_buffer_nm,
                        stale_after=timedelta(hours=ctx.config.vessel_stale_after_hours))
    return follow_vessels(session, ctx.config, audience, mmsis, now=utcnow(), zone_name=zone_name).queued
