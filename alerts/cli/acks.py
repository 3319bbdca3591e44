"""``alimcast acks show ALERT_ID [--json]``: who confirmed a warning, per zone and vessel, and the boats in the
warned zone whose crews have not (to call by radio). ``alimcast acks remind [--json]``: queue the reminders
due now (the running job does this by itself every ``[reminders] check_seconds``)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alerts.cli.common import ConfigOption, fail, open_context
from alerts.public.ack_stats import Rate, ack_rates, thread_of, unconfirmed_vessels
from alerts.public.reminders import send_due_reminders
from alerts.render import format_kst
from subscribers import zones
from subscribers.sqltypes import utcnow

app = typer.Typer(no_args_is_help=True)


def _pct(rate: Rate) -> str:
    return "—" if rate.ratio is None else f"{rate.ratio:.0%}"


def _zone(code: str) -> str:
    try:
        return f"{zones.name(code)} ({code})"
    except ValueError:
        return code


@app.command("show")
def show(alert_id: Annotated[int, typer.Argument(help="an alert id (any version of the warning)")],
         as_json: Annotated[bool, typer.Option("--json")] = False, config: ConfigOption = None) -> None:
    """Acknowledgement rates of a warning and the vessels inside its zones whose crews have not confirmed."""
    ctx = open_context(config)
    with ctx.session() as session:
        thread = thread_of(session, alert_id)
        if thread is None:
            fail(f"alert {alert_id}: not found")
        names = ctx.config.zone_value_names
        rates = ack_rates(session, thread, names)
        calls = unconfirmed_vessels(session, thread, now=utcnow(), value_names=names,
                                    stale_after=timedelta(hours=ctx.config.vessel_stale_after_hours))
    if as_json:
        out = rates.to_json()
        out["vessels_to_call"] = [{"mmsi": v.mmsi, "name": v.name, "lat": v.last_lat, "lon": v.last_lon,
                                   "last_fix_at": v.last_fix_at.isoformat() if v.last_fix_at else None,
                                   "zones": list(v.zones), "followers": v.followers, "told": v.told} for v in calls]
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    console = Console()
    console.print(f"warning thread {thread.id} ({thread.state}): {rates.total.acked} of {rates.total.told} "
                  f"confirmed ({_pct(rates.total)}); reminders sent: "
                  f"{', '.join(f'#{k}: {v}' for k, v in sorted(rates.reminders.items())) or 'none'}")
    table = Table(title="by zone and vessel")
    for column in ("", "told", "confirmed", "rate"):
        table.add_column(column)
    for code, rate in sorted(rates.by_zone.items()):
        table.add_row(_zone(code), str(rate.told), str(rate.acked), _pct(rate))
    for mmsi, rate in sorted(rates.by_vessel.items()):
        table.add_row(f"vessel {mmsi}", str(rate.told), str(rate.acked), _pct(rate))
    console.print(table)
    calls_table = Table(title="vessels in the warned zones, not confirmed (call by radio)")
    for column in ("MMSI", "name", "last fix (KST)", "position", "zones", "followers told"):
        calls_table.add_column(column)
    for v in calls:
        where = f"{v.last_lat:.4f}, {v.last_lon:.4f}" if v.last_lat is not None and v.last_lon is not None else "—"
        calls_table.add_row(str(v.mmsi), v.name or "—", format_kst(v.last_fix_at) if v.last_fix_at else "—", where,
                            " ".join(v.zones), f"{v.told}/{v.followers}" if v.followers else "nobody follows it")
    console.print(calls_table)


@app.command("remind")
def remind(as_json: Annotated[bool, typer.Option("--json")] = False, config: ConfigOption = None) -> None:
    """Queue the reminders due now (sent by the next dispatch of `alimcast run`)."""
    ctx = open_context(config)
    with ctx.session() as session:
        report = send_due_reminders(session, ctx.config, utcnow())
    if as_json:
        typer.echo(json.dumps({"queued": report.queued, "held": report.held, "warnings": report.warnings,
                               "disabled": report.disabled}))
        return
    if report.disabled:
        typer.echo(f"reminders off: {report.disabled}")
        return
    typer.echo(f"{report.queued} reminders queued for {report.warnings} live Severe/Extreme warnings "
               f"({report.held} held for quiet hours)")
