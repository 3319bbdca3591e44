"""``alimcast costs monthly``: what the month cost, against the old SMS/LMS route."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alerts.cli.common import ConfigOption, fail, open_context
from alerts.costs import MonthlySummary, month_of, monthly_summary
from subscribers.sqltypes import utcnow

app = typer.Typer(no_args_is_help=True)


@app.command("monthly")
def monthly(
    month: Annotated[str | None, typer.Option("--month", help="YYYY-MM in KST (default: this month)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    config: ConfigOption = None,
) -> None:
    """Messages and cost by channel for one month, and the saving against SMS/LMS."""
    if fmt not in ("table", "json"):
        fail(f"--format {fmt!r}: use table or json")
    month = month or month_of(utcnow())
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        fail(f"--month {month!r}: use YYYY-MM")
    ctx = open_context(config)
    with ctx.session() as session:
        summary = monthly_summary(session, month)
    if fmt == "json":
        typer.echo(json.dumps(summary.report_json(), ensure_ascii=False, indent=2))
        return
    print_summary(summary)


def print_summary(summary: MonthlySummary, console: Console | None = None) -> None:
    console = console or Console()
    _table(console, summary, f"alimcast cost, {summary.month} (KRW, VAT excluded)")
    if summary.simulated is not None:
        _table(console, summary.simulated, f"dry run, {summary.month}: what it would have cost (nothing was sent)")


def _table(console: Console, summary: MonthlySummary, title: str) -> None:
    table = Table(title=title)
    table.add_column("channel")
    table.add_column("messages", justify="right")
    table.add_column("cost", justify="right")
    for channel, row in summary.by_channel.items():
        table.add_row(channel, f"{int(row['messages']):,}", f"{row['cost_krw']:,.1f}")
    table.add_row("total", f"{summary.messages:,}", f"{summary.cost_krw:,.1f}", style="bold")
    table.add_row("SMS/LMS baseline", f"{summary.messages:,}", f"{summary.baseline_krw:,.1f}")
    console.print(table)
    if summary.saving_ratio is not None:
        console.print(f"saving: {summary.saving_krw:,.1f} KRW ({summary.saving_ratio:.1%}) against SMS/LMS")
