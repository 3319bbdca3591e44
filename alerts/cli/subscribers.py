"""``alimcast subscribers …``: add, import, list, export, pause, resume, remove, prefs.

Phones are masked in every line printed unless ``--show-phone`` is given (screens get photographed and
terminal logs get pasted into tickets). Bad input is one ``error:`` line and exit code 1.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlmodel import Session, col, select

from alerts.catchup import catch_up_people
from alerts.cli.common import AppContext, ConfigOption, fail, open_context
from alerts.demo import DEMO_SOURCE, remove_demo_people
from subscribers import store
from subscribers.csv_import import CsvImportError, import_csv
from subscribers.models import Subscription
from subscribers.phone import PhoneError, mask, mask_distinct
from subscribers.preferences import PreferenceError, format_quiet_hours
from subscribers.roundtrip import apply_extras, export_all
from subscribers.sqltypes import utcnow
from subscribers.zones import ZoneError

app = typer.Typer(help="Manage subscribers (people, their zones and preferences).", no_args_is_help=True)

PhoneOption = Annotated[str, typer.Option("--phone", help="Korean mobile number, e.g. 010-1234-5678")]
_INPUT_ERRORS = (PhoneError, ZoneError, PreferenceError, store.SubscriberNotFound, ValueError)


@app.command()
def add(
    phone: PhoneOption,
    zone: Annotated[list[str] | None, typer.Option("--zone", help="zone code or name; repeat for several")] = None,
    point: Annotated[list[str] | None, typer.Option(
        "--point", help="a fixed place as LAT,LON,RADIUS_KM (a port, a sea farm); repeatable")] = None,
    min_severity: Annotated[str | None, typer.Option("--min-severity", help="Minor, Moderate, Severe, Extreme")] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    language: Annotated[str | None, typer.Option(
        "--language", help="ko, en, vi, id, zh, tl, my, th, si, km, ne, uz or ru (Korean without an approved template)",
    )] = None,
    categories: Annotated[str | None, typer.Option("--categories", help="CAP categories, e.g. 'Met Geo'")] = None,
    hazards: Annotated[str | None, typer.Option("--hazards", help="only these hazards, e.g. '풍랑 태풍'")] = None,
    quiet_hours: Annotated[str | None, typer.Option("--quiet-hours", help="KST, e.g. 22:00-06:00")] = None,
    consent_text: Annotated[str, typer.Option("--consent-text", help="what the person agreed to")] = "",
    config: ConfigOption = None,
) -> None:
    """Add a person (or add zones to them: the same phone is always the same person)."""
    points = [_point(text) for text in point or []]
    ctx = open_context(config)
    try:
        with ctx.session() as session:
            subscriber = store.add_subscriber(
                session, phone, zone or [], name=name, min_severity=min_severity, language=language,
                consent_source="cli", consent_text=consent_text, categories=categories, quiet_hours=quiet_hours,
                points=points, hazards=hazards,
            )
            codes = store.zone_codes_of(session, subscriber.id or 0)
            line = f"{mask(subscriber.phone)} id={subscriber.id} status={subscriber.status} zones={len(codes)}"
            added_id = subscriber.id or 0
    except _INPUT_ERRORS as exc:
        fail(str(exc))
    typer.echo(f"added {line}")
    _catch_up(ctx, [added_id])


def _catch_up(ctx: AppContext, ids: list[int], since: datetime | None = None) -> None:
    """A warning in force in their zones reaches the new people now (alerts/catchup.py)."""
    report = catch_up_people(ctx.engine, ctx.config, ids, since=since)
    if report.queued:
        typer.echo(f"{report.queued} message(s) queued: {report.alerts} warning(s) in force in their zones "
                   "(sent by the running job, or by `alimcast run --once`)")


def _point(text: str) -> tuple[float, float, float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        lat, lon, radius = (float(p) for p in parts)
    except ValueError:
        fail(f"--point {text!r}: write LAT,LON,RADIUS_KM, e.g. 37.45,126.60,3")
    return lat, lon, radius


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV with header phone,name,zones,min_severity (and the optional "
                                         "columns of `subscribers export`)")],
    config: ConfigOption = None,
) -> None:
    """Import a CSV (idempotent: importing the same file twice changes nothing).

    Header: phone,zones required; name, min_severity, language, categories, quiet_hours (22:00-06:00),
    hazards, points, vessels, status optional. zones: codes or names separated by spaces, ',' or ';'
    (quote the cell when it holds commas); points: LAT,LON,RADIUS_KM separated by ';'; vessels: MMSIs.
    A row needs at least one zone, point or vessel. UTF-8 or CP949 (Korean Excel).
    """
    if not file.is_file():
        fail(f"{file}: no such file")
    ctx = open_context(config)
    console = Console(stderr=True)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("import", total=None)

            def update(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            started = utcnow()
            report = import_csv(ctx.engine, file, progress=update, consent_source="csv",
                                consent_text=f"imported from {file.name}")
        with ctx.session() as session:
            report.errors.extend(apply_extras(session, file))
    except CsvImportError as exc:
        fail(str(exc))
    for message in report.errors:
        print(message, file=sys.stderr)
    if report.skipped > len(report.errors):
        print(f"… and {report.skipped - len(report.errors)} more bad lines", file=sys.stderr)
    typer.echo(
        f"rows {report.rows}: inserted {report.inserted}, updated {report.updated}, "
        f"unchanged {report.unchanged}, merged {report.merged}, skipped {report.skipped}"
    )
    _catch_up(ctx, [], since=started)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
    show_phone: Annotated[bool, typer.Option("--show-phone", help="print full numbers (not masked)")] = False,
    status: Annotated[str | None, typer.Option("--status", help="active, paused or unsubscribed")] = None,
    config: ConfigOption = None,
) -> None:
    """List subscribers (phones masked unless --show-phone)."""
    ctx = open_context(config)
    with ctx.session() as session:
        people = store.list_subscribers(session, status=status)
        zones = store.zones_by_subscriber(session)
        places, boats = _points_and_vessels(session)
    records = [
        {
            "id": p.id,
            "phone": p.phone if show_phone else mask_distinct(p.phone),
            "name": p.name,
            "status": p.status,
            "min_severity": p.min_severity,
            "language": p.language,
            "categories": p.categories or [],
            "hazards": p.hazards or [],
            "quiet_hours": format_quiet_hours(p.quiet_start_min, p.quiet_end_min),
            "zones": zones.get(p.id or 0, []),
            "points": places.get(p.id or 0, []),
            "vessels": boats.get(p.id or 0, []),
            "demo": p.consent_source == DEMO_SOURCE,
        }
        for p in people
    ]
    if as_json:
        typer.echo(json.dumps(records, ensure_ascii=False, indent=1))
        return
    typer.echo(_fit(f"{'id':>6} {'phone':<13} {'status':<6} {'severity':<8} {'name':<10} reaches"))
    for r in records:
        state = _STATUS.get(r["status"], r["status"])
        typer.echo(_fit(f"{r['id']:>6} {r['phone']:<13} {state:<6} {r['min_severity'][:8]:<8} "
                        f"{_cells(('(demo) ' if r['demo'] else '') + r['name'], 10)} {_reaches(r)}"))
    typer.echo(f"{len(records)} subscriber(s)")


LIST_WIDTH = 80
_STATUS = {"unsubscribed": "unsub"}


def _cells(text: str, width: int) -> str:
    """Cut or pad to ``width`` terminal cells (Korean characters take two)."""
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    return set_cell_size(text, width)


def _fit(line: str) -> str:
    from rich.cells import cell_len

    return _cells(line, LIST_WIDTH).rstrip() if cell_len(line) > LIST_WIDTH else line


def _reaches(r: dict[str, Any]) -> str:
    parts = []
    if r["zones"]:
        parts.append(r["zones"][0] + (f" +{len(r['zones']) - 1}" if len(r["zones"]) > 1 else ""))
    if r["points"]:
        parts.append(f"{len(r['points'])} point{'s' if len(r['points']) > 1 else ''}")
    if r["vessels"]:
        parts.append(f"MMSI {r['vessels'][0]}" + (f" +{len(r['vessels']) - 1}" if len(r["vessels"]) > 1 else ""))
    if r["quiet_hours"]:
        parts.append(f"quiet {r['quiet_hours']}")
    return "; ".join(parts) or "-"


def _points_and_vessels(session: Session) -> tuple[dict[int, list[str]], dict[int, list[int]]]:
    places: dict[int, list[str]] = {}
    boats: dict[int, list[int]] = {}
    for sub in session.exec(select(Subscription).where(col(Subscription.kind).in_(("point", "vessel")))):
        if sub.kind == "point":
            places.setdefault(sub.subscriber_id, []).append(f"{sub.lat},{sub.lon},{sub.radius_km}")
        elif sub.mmsi is not None:
            boats.setdefault(sub.subscriber_id, []).append(sub.mmsi)
    return places, boats


@app.command("remove-demo")
def remove_demo(config: ConfigOption = None) -> None:
    """Unsubscribe everyone `alimcast run` created from [[demo.subscribers]] (marked "(demo)" in the list).

    Delete the [[demo.subscribers]] section from config.toml too, or the next run creates them again.
    """
    ctx = open_context(config)
    with ctx.session() as session:
        removed = remove_demo_people(session)
    typer.echo(f"removed {removed} demo subscriber(s)")


@app.command()
def export(
    file: Annotated[Path, typer.Argument(help="CSV to write, or - for standard output (full phone numbers: "
                                         "handle with care)")],
    config: ConfigOption = None,
) -> None:
    """Export active and paused subscribers as a CSV that `subscribers import` reads back unchanged.

    Columns: phone,name,zones,min_severity,language,categories,quiet_hours,hazards,points,vessels,status.
    zones: codes separated by spaces; points: LAT,LON,RADIUS_KM places separated by ';'; vessels: MMSIs
    separated by spaces; status: active or paused.
    """
    ctx = open_context(config)
    try:
        with ctx.session() as session:
            if str(file) == "-":
                written = export_all(session, sys.stdout)
                sys.stdout.flush()
                print(f"exported {written} subscriber(s)", file=sys.stderr)
                return
            with file.open("w", encoding="utf-8", newline="") as handle:
                written = export_all(session, handle)
    except OSError as exc:
        fail(f"{file}: cannot write: {exc.strerror or exc}")
    typer.echo(f"exported {written} subscriber(s) to {file}")


@app.command()
def remove(phone: PhoneOption, config: ConfigOption = None) -> None:
    """Unsubscribe a person (the row and its consent record are kept, marked unsubscribed)."""
    _change(config, phone, "unsubscribed")


@app.command()
def pause(phone: PhoneOption, config: ConfigOption = None) -> None:
    """Stop messages to a person until resumed."""
    _change(config, phone, "paused")


@app.command()
def resume(phone: PhoneOption, config: ConfigOption = None) -> None:
    """Resume messages to a paused person."""
    _change(config, phone, "active")


@app.command()
def prefs(
    phone: PhoneOption,
    min_severity: Annotated[str | None, typer.Option("--min-severity")] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    language: Annotated[str | None, typer.Option("--language")] = None,
    categories: Annotated[str | None, typer.Option("--categories", help="'' for all")] = None,
    hazards: Annotated[str | None, typer.Option("--hazards", help="'' for all")] = None,
    quiet_hours: Annotated[str | None, typer.Option("--quiet-hours", help="'' to clear")] = None,
    config: ConfigOption = None,
) -> None:
    """Change a person's preferences (only the options given)."""
    ctx = open_context(config)
    try:
        with ctx.session() as session:
            p = store.set_preferences(session, phone, name=name, min_severity=min_severity, language=language,
                                      categories=categories, quiet_hours=quiet_hours, hazards=hazards)
            line = (f"{mask(p.phone)} min_severity={p.min_severity} language={p.language} "
                    f"categories={' '.join(p.categories or []) or 'all'} "
                    f"hazards={' '.join(p.hazards or []) or 'all'} "
                    f"quiet_hours={format_quiet_hours(p.quiet_start_min, p.quiet_end_min) or 'none'}")
    except _INPUT_ERRORS as exc:
        fail(str(exc))
    typer.echo(f"updated {line}")


def _change(config: Path | None, phone: str, status: str) -> None:
    ctx = open_context(config)
    try:
        with ctx.session() as session:
            if status == "unsubscribed":
                subscriber = store.remove(session, phone)
            else:
                subscriber = store.set_status(session, phone, status)
            line = f"{mask(subscriber.phone)} status={subscriber.status}"
    except _INPUT_ERRORS as exc:
        fail(str(exc))
    typer.echo(line)
