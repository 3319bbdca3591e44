"""``alimcast costs``: what a month cost against the old SMS/LMS route, where the money went, a chart, an
alert's estimate, and reconciliation against the provider's own counts."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from alerts.cli.common import ConfigOption, fail, open_context
from alerts.config import Config
from alerts.cost_report import BREAKDOWNS, Figures, MonthlySummary, monthly_series, monthly_summary
from alerts.costs import month_of
from alerts.pricing import PriceBook, single_entry
from subscribers.sqltypes import utcnow

app = typer.Typer(no_args_is_help=True)
FORMATS = ("table", "csv", "json")


def _month(month: str | None) -> str:
    month = month or month_of(utcnow())
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        fail(f"--month {month!r}: use YYYY-MM")
    return month


def book_of(config: Config) -> PriceBook:
    prices = config.prices
    return prices.book or PriceBook(entries=[single_entry(prices.alimtalk, prices.sms, prices.lms)])


@app.command("monthly")
def monthly(
    month: Annotated[str | None, typer.Option("--month", help="YYYY-MM in KST (default: this month)")] = None,
    by: Annotated[str | None, typer.Option("--by", help="channel, feed, zone, hazard or provider")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    config: ConfigOption = None,
) -> None:
    """Messages, recipients and cost for one month, the saving against SMS/LMS, and where the money went."""
    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: use table, csv or json")
    if by is not None and by not in BREAKDOWNS:
        fail(f"--by {by!r}: use one of {', '.join(BREAKDOWNS)}")
    month = _month(month)
    ctx = open_context(config)
    with ctx.session() as session:
        summary = monthly_summary(session, month, book_of(ctx.config), by=by)
    if fmt == "json":
        typer.echo(json.dumps(summary.report_json(), ensure_ascii=False, indent=2))
    elif fmt == "csv":
        typer.echo(summary_csv(summary), nl=False)
    else:
        print_summary(summary)


def summary_csv(summary: MonthlySummary) -> str:
    """One line per group (``--by``; per channel otherwise) and a total line, exact decimal KRW."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    key = summary.breakdown or "channel"
    writer.writerow(["month", key, "messages", "cost_krw", "baseline_krw", "saving_krw", "saving_ratio"])
    groups = summary.groups if summary.breakdown else {
        ch: Figures(int(v["messages"]), _dec(v["cost_krw"]), _dec(0)) for ch, v in summary.by_channel.items()}
    for name, fig in groups.items():
        ratio = fig.saving_ratio
        base = "" if not summary.breakdown else fig.baseline_krw
        saving = "" if not summary.breakdown else fig.saving_krw
        writer.writerow([summary.month, name, fig.messages, fig.cost_krw, base, saving,
                         "" if ratio is None or not summary.breakdown else f"{ratio:.4f}"])
    ratio = summary.saving_ratio
    writer.writerow([summary.month, "total", summary.messages, summary.cost_krw, summary.baseline_krw,
                     summary.saving_krw, "" if ratio is None else f"{ratio:.4f}"])
    return buf.getvalue()


def _dec(value: Any) -> Any:
    from decimal import Decimal

    return Decimal(str(value))


def print_summary(summary: MonthlySummary, console: Console | None = None) -> None:
    console = console or Console()
    _table(console, summary, f"alimcast cost, {summary.month} (KRW, VAT excluded)")
    if summary.breakdown:
        _groups(console, summary)
    if summary.simulated is not None:
        _table(console, summary.simulated, f"dry run, {summary.month}: what it would have cost (nothing was sent)")


def _table(console: Console, summary: MonthlySummary, title: str) -> None:
    table = Table(title=title)
    table.add_column("channel")
    table.add_column("messages", justify="right")
    table.add_column("cost", justify="right")
    for channel, row in summary.by_channel.items():
        table.add_row(channel, f"{int(row['messages']):,}", f"{row['cost_krw']:,}")
    table.add_row("total", f"{summary.messages:,}", f"{summary.cost_krw:,}", style="bold")
    table.add_row("SMS/LMS baseline", f"{summary.messages:,}", f"{summary.baseline_krw:,}")
    console.print(table)
    if summary.saving_ratio is not None:
        console.print(f"saving: {summary.saving_krw:,} KRW ({summary.saving_ratio:.1%}) against SMS/LMS")
    if summary.reach is not None:
        console.print(f"recipients: {summary.recipients:,}; AlimTalk reach {summary.reach:.1%}; fallbacks "
                      f"SMS {summary.fallbacks['sms']:,}, LMS {summary.fallbacks['lms']:,}; "
                      f"sent without receipt {summary.uncertain:,}")
    if summary.short_sms_messages:
        console.print(f"short SMS form: {summary.short_sms_messages:,} fallbacks went as SMS instead of LMS, "
                      f"saving {summary.short_sms_saving_krw:,} KRW")
    console.print(f"failed (not billed): {summary.failures:,}")
    if summary.last_year:
        ly = summary.last_year
        console.print(f"same month last year ({ly['month']}, from {ly['source']}): {ly['messages']:,} messages, "
                      f"{ly['cost_krw']:,} KRW")


def _groups(console: Console, summary: MonthlySummary) -> None:
    table = Table(title=f"by {summary.breakdown}, {summary.month} (real sends)")
    for name, justify in ((summary.breakdown or "", "left"), ("messages", "right"), ("cost", "right"),
                          ("baseline", "right"), ("saving", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name, fig in summary.groups.items():
        ratio = fig.saving_ratio
        table.add_row(name, f"{fig.messages:,}", f"{fig.cost_krw:,}", f"{fig.baseline_krw:,}",
                      f"{fig.saving_krw:,}" + ("" if ratio is None else f" ({ratio:.1%})"))
    console.print(table)


def last_months(end: str, count: int) -> list[str]:
    year, mon = (int(p) for p in end.split("-"))
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{mon:02d}")
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
    return out[::-1]


@app.command("chart")
def chart(
    output: Annotated[Path, typer.Option("--output", help="FILE.png or FILE.svg")],
    months: Annotated[int, typer.Option("--months", help="how many months, ending with --month")] = 12,
    month: Annotated[str | None, typer.Option("--month", help="last month shown, YYYY-MM (default: this)")] = None,
    config: ConfigOption = None,
) -> None:
    """A picture of cost against the old SMS/LMS route per month, with the saving."""
    from alerts.cost_chart import CHART_FORMATS, render_chart

    if output.suffix.lower() not in CHART_FORMATS:
        fail(f"--output {output}: use a .png or .svg file name")
    if not 1 <= months <= 60:
        fail(f"--months {months}: use 1 to 60")
    end = _month(month)
    ctx = open_context(config)
    book = book_of(ctx.config)
    with ctx.session() as session:
        series = monthly_series(session, last_months(end, months), book)
    render_chart(series, output)
    typer.echo(f"wrote {output}")


@app.command("estimate")
def estimate(
    alert_id: Annotated[int, typer.Argument(help="the alert's id (alimcast feeds/alerts listings)")],
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    config: ConfigOption = None,
) -> None:
    """What one alert's fan-out will cost (finished messages as billed, the rest estimated) vs the old route."""
    from alerts.cost_estimate import estimate_alert

    if fmt not in ("table", "json"):
        fail(f"--format {fmt!r}: use table or json")
    ctx = open_context(config)
    with ctx.session() as session:
        try:
            est = estimate_alert(session, alert_id, book_of(ctx.config), ctx.config.provider.kind, utcnow())
        except LookupError as exc:
            fail(str(exc))
    data = est.to_json()
    if fmt == "json":
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    console = Console()
    table = Table(title=f"alert {alert_id}: cost estimate (KRW, VAT excluded)")
    table.add_column("")
    table.add_column("value", justify="right")
    for label, key in (("recipients", "recipients"), ("finished (billed)", "finished"), ("still to go", "pending"),
                       ("failed (not billed)", "failed_not_billed"), ("billed so far", "billed_krw"),
                       ("estimate for the rest", "pending_estimate_krw"), ("total estimate", "total_estimate_krw"),
                       ("old SMS/LMS route", "baseline_krw"), ("saving", "saving_krw")):
        value = data[key]
        table.add_row(label, f"{value:,}" if isinstance(value, int | float) else str(value))
    console.print(table)
    console.print(f"AlimTalk reach assumed for the rest: {data['reach_assumed']:.1%} ({data['reach_source']})")


@app.command("reconcile")
def reconcile(
    month: Annotated[str | None, typer.Option("--month", help="YYYY-MM in KST (default: this month)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    config: ConfigOption = None,
) -> None:
    """Our counts and amounts by final status and channel against the provider's own result counts."""
    from alerts.cost_reconcile import nhn_lister, our_side, provider_side
    from alerts.delivery.providers.base import ProviderError
    from alerts.delivery.providers.nhn import NhnProvider

    if fmt not in ("table", "json"):
        fail(f"--format {fmt!r}: use table or json")
    month = _month(month)
    ctx = open_context(config)
    if ctx.config.provider.kind != "nhn":
        fail(f"[provider] kind {ctx.config.provider.kind!r}: only nhn publishes result counts to reconcile with")
    with ctx.session() as session:
        rec = our_side(session, month, "nhn")
    provider = NhnProvider(ctx.config.provider.settings)
    try:
        provider_side(rec, nhn_lister(provider), utcnow())
    except ProviderError as exc:
        fail(f"provider: cannot list {month}'s messages: {exc}")
    finally:
        provider.close()
    data = rec.to_json()
    if fmt == "json":
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    console = Console()
    table = Table(title=f"reconciliation {month}: ours against NHN's own results")
    for name in ("status / channel", "ours", "NHN", "difference"):
        table.add_column(name, justify="left" if name.startswith("status") else "right")
    for line in sorted(set(data["ours_by_line"]) | set(data["provider_by_line"])):
        ours, theirs = data["ours_by_line"].get(line, 0), data["provider_by_line"].get(line, 0)
        table.add_row(line, f"{ours:,}", f"{theirs:,}", "" if ours == theirs else f"{ours - theirs:+,}",
                      style=None if ours == theirs else "bold red")
    console.print(table)
    console.print("no differences" if not data["differences"] else f"{len(data['differences'])} difference(s)")
