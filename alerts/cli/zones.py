"""``alimcast zones import|list``: warning-zone outlines and the KMA code catalogue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from alerts.cli.common import ConfigOption, fail, open_context
from subscribers.geometry import ZoneImportError, import_zone_geojson, load_zone_polygons

app = typer.Typer(no_args_is_help=True)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="GeoJSON FeatureCollection of Polygon/MultiPolygon zones")],
    code_property: Annotated[str, typer.Option("--code-property", help="feature property holding the zone code")]
    = "WarnCode",
    name_property: Annotated[str | None, typer.Option("--name-property", help="feature property with the name")]
    = None,
    source: Annotated[str | None, typer.Option("--source", help="attribution stored with the outlines")] = None,
    config: ConfigOption = None,
) -> None:
    """Load zone outlines; bad features are reported by index and skipped, the rest is imported."""
    ctx = open_context(config)
    try:
        with ctx.session() as session:
            report = import_zone_geojson(session, file, code_property, name_property=name_property,
                                         source=source)
    except ZoneImportError as exc:
        fail(str(exc))
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
