"""``alimcast workers status [--json]``: every ``alimcast run`` on this database, its heartbeat, what it holds,
and which one polls the feeds."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alerts.cli.common import ConfigOption, open_context
from alerts.workers import fleet_status

app = typer.Typer(no_args_is_help=True)


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    all_workers: Annotated[bool, typer.Option("--all", help="also workers that stopped cleanly")] = False,
    config: ConfigOption = None,
) -> None:
    """Each worker: host and pid, heartbeat age, alive/dead/stopped, recipients in flight, sent, who polls."""
    ctx = open_context(config)
    fleet = fleet_status(ctx.engine, include_stopped=all_workers)
    if as_json:
        typer.echo(json.dumps(fleet.as_json(), ensure_ascii=False, indent=2))
        return
    table = Table(title="alimcast workers")
    for name in ("worker", "state", "heartbeat", "polls", "in flight", "sent", "started"):
        table.add_column(name)
    for w in fleet.workers:
        state = {"alive": "[green]alive[/]", "dead": "[red]dead[/]"}.get(w.state, w.state)
        table.add_row(w.id, state, f"{w.heartbeat_age_seconds:.0f} s ago", "yes" if w.polls else "",
                      str(w.in_flight), str(w.sent), w.started_at[:19])
    console = Console()
    console.print(table)
    console.print(f"polling: {fleet.poller or 'nobody (no live worker holds the lease)'}; "
                  f"outbox: {fleet.queued} queued, {fleet.sending} in flight")
