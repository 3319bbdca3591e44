"""``alimcast vessels add|ingest-ais|list``: registered vessels and their AIS positions.

Settings come from the optional ``[vessels]`` table of config.toml: ``buffer_nm`` (default 1),
``stale_after_hours`` (default 6), and for live receivers ``ais_flush_seconds`` (default 5).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from alerts.audience import Audience
from alerts.cli.common import ConfigOption, fail, open_context
from alerts.config import Config
from alerts.pipeline import zone_name
from alerts.vessel_fixes import store_fixes
from subscribers.ais import ReadResult, read_positions
from subscribers.ais_stream import AisStream, SourceError, parse_source
from subscribers.phone import mask
from subscribers.sqltypes import utcnow
from subscribers.vessels import VesselError, add_vessel, list_vessels

app = typer.Typer(no_args_is_help=True)
MAX_BAD_SHOWN = 50


def vessel_settings(config: Config) -> tuple[float, timedelta]:
    """(buffer_nm, stale_after) from ``[vessels]`` (validated with the rest of the config)."""
    return config.vessel_buffer_nm, timedelta(hours=config.vessel_stale_after_hours)


@app.command("add")
def add(
    mmsi: Annotated[str, typer.Option("--mmsi", help="the vessel's 9-digit MMSI")],
    name: Annotated[str, typer.Option("--name", help="vessel name")] = "",
    phones: Annotated[list[str] | None, typer.Option("--phone", help="subscriber phone (repeatable)")] = None,
    config: ConfigOption = None,
) -> None:
    """Register a vessel and subscribe existing subscribers (by phone) to it."""
    ctx = open_context(config)
    try:
        with ctx.session() as session:
            vessel = add_vessel(session, mmsi, name, phones or [])
    except VesselError as exc:
        fail(str(exc))
    who = ", ".join(mask(p) for p in phones or []) or "nobody yet"
    typer.echo(f"vessel {vessel.mmsi} {vessel.name!r}: followed by {who}")


@app.command("ingest-ais")
def ingest_ais(
    file: Annotated[str, typer.Argument(help="NMEA !AIVDM lines or JSON lines: a file, - for stdin, or a live "
                                             "receiver tcp://host:port / udp://host:port (read until Ctrl-C)")],
    all_vessels: Annotated[bool, typer.Option("--all-vessels", help="also store unregistered MMSIs")] = False,
    config: ConfigOption = None,
) -> None:
    """Read positions, store them and update every vessel's zones; bad lines are reported, never fatal.

    JSON lines: one object a line, {"mmsi": 440123456, "lat": 35.1, "lon": 129.04, "at":
    "2026-05-01T12:00:00+09:00"}; mmsi 1-9 digits (number or string), lat/lon in WGS84 degrees, at an ISO
    8601 time with its UTC offset (Z or +09:00). NMEA: !AIVDM/!AIVDO sentences (types 1-3, 18, 19, 27),
    multi-part messages joined, time from the tag block or the moment the line was read.

    A vessel is in a zone only when zone outlines have been imported (`alimcast zones import`): without
    them, positions are stored but place vessels in no zone.
    """
    ctx = open_context(config)
    buffer_nm, stale_after = vessel_settings(ctx.config)

    audience = Audience(ctx.engine, buffer_nm=buffer_nm, stale_after=stale_after)

    def store(result: ReadResult) -> None:
        for line in result.bad[:MAX_BAD_SHOWN]:
            typer.echo(f"bad: {file}: {line}", err=True)
        if len(result.bad) > MAX_BAD_SHOWN:
            typer.echo(f"bad: {file}: ... and {len(result.bad) - MAX_BAD_SHOWN} more", err=True)
        with ctx.session() as session:
            report, followed = store_fixes(session, ctx.config, audience, result, known_only=not all_vessels,
                                           now=utcnow(), zone_name=zone_name)
        typer.echo(f"{len(result.positions)} positions from {len(result.mmsis)} vessels, {len(result.bad)} bad "
                   f"lines, {result.unavailable} without position, {result.ignored} other messages; "
                   f"stored {report.stored} for {report.vessels} registered vessels "
                   f"({report.unknown} positions of unregistered vessels skipped); "
                   f"zone visits: {report.entered} entered, {report.left} left, {report.expired} expired"
                   + (f"; {followed.queued} messages queued for {followed.alerts} live warnings the vessels are in"
                      if followed.queued else ""))

    if "://" in file and not file.startswith("file://"):
        try:
            source = parse_source(file)
        except SourceError as exc:
            fail(str(exc))
        stream = AisStream(source, lambda _source, result: store(result), flush_seconds=ctx.config.ais_flush_seconds)
        typer.echo(f"reading {file} (Ctrl-C to stop)", err=True)
        try:
            stream.run()
        except KeyboardInterrupt:
            stream.stop_event.set()
            stream.flush(force=True)
        return
    if file == "-":
        result = read_positions(sys.stdin.buffer)
    else:
        path = Path(file.removeprefix("file://"))
        try:
            with path.open("rb") as fh:
                result = read_positions(fh)
        except OSError as exc:
            fail(f"{file}: cannot read: {exc.strerror or exc}")
    store(result)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Registered vessels, their followers, last fix and current zones."""
    ctx = open_context(config)
    with ctx.session() as session:
        vessels = list_vessels(session)
    if as_json:
        rows: list[dict[str, Any]] = []
        for v in vessels:
            row = asdict(v)
            row["last_fix_at"] = v.last_fix_at.isoformat() if v.last_fix_at else None
            row["zones"] = list(v.zones)
            rows.append(row)
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(vessels)} vessels")
    for column in ("mmsi", "name", "followers", "last fix (UTC)", "lat", "lon", "zones"):
        table.add_column(column)
    for v in vessels:
        table.add_row(str(v.mmsi), v.name, str(v.subscribers),
                      v.last_fix_at.strftime("%Y-%m-%d %H:%M") if v.last_fix_at else "",
                      f"{v.last_lat:.5f}" if v.last_lat is not None else "",
                      f"{v.last_lon:.5f}" if v.last_lon is not None else "", ", ".join(v.zones))
    Console().print(table)
