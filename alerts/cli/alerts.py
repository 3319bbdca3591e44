"""``alimcast alerts list`` and ``alimcast alerts show ID [--json] [--watch]``: one alert's delivery.

The figures come from :mod:`alerts.delivery_stats` (shared with the web console); this module only
prints them. ``--watch`` follows a long fan-out with a progress bar until nothing is left in the outbox.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from alerts.cli.common import AppContext, ConfigOption, fail, open_context
from alerts.delivery_stats import AlertDelivery, Counts, alert_delivery, recent_alerts, status_counts

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_alerts(
    limit: Annotated[int, typer.Option("--limit", min=1, help="how many alerts, newest first")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Recent alerts with their status and delivery counts."""
    ctx = open_context(config)
    with ctx.session() as session:
        rows = recent_alerts(session, limit)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in rows], ensure_ascii=False, indent=2))
        return
    console = Console()
    if not rows:
        console.print("no alerts stored yet")
        return
    table = Table(title="recent alerts (newest first)", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False,
                  collapse_padding=True)
    for name in ("id", "received UTC", "type", "event", "matched", "queued", "sent", "delivered", "fell back",
                 "failed", "acked"):
        table.add_column(name, justify="left" if name in ("received UTC", "type", "event") else "right",
                         no_wrap=True)
    for r in rows:
        c = r.counts
        table.add_row(str(r.alert_id), f"{r.received_at:%m-%d %H:%M}", r.msg_type, r.event, f"{c.matched:,}",
                      f"{c.queued + c.sending:,}", f"{c.sent:,}", f"{c.delivered:,}", f"{c.fell_back:,}",
                      f"{c.failed:,}", "n/a" if c.acknowledged is None else f"{c.acknowledged:,}")
    console.print(table)


@app.command("show")
def show(
    alert_id: Annotated[int, typer.Argument(help="the alert's id (see `alerts list`)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="follow the fan-out with a progress bar until the "
                                                       "outbox is empty for this alert")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="seconds between --watch updates")] = 1.0,
    config: ConfigOption = None,
) -> None:
    """One alert's delivery: matched, sent, delivered, fell back, failed by reason, timing, versions."""
    ctx = open_context(config)
    report = _load(ctx, alert_id)
    if watch:
        report = _watch(ctx, report, interval)
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        return
    print_report(report, Console())


def _load(ctx: AppContext, alert_id: int) -> AlertDelivery:
    with ctx.session() as session:
        report = alert_delivery(session, alert_id)
    if report is None:
        fail(f"alert {alert_id}: no such alert (see `alimcast alerts list`)")
    return report


def _watch(ctx: AppContext, report: AlertDelivery, interval: float) -> AlertDelivery:
    """A progress bar of rows past the outbox until none is queued or sending; Ctrl-C stops watching."""
    console = Console(stderr=True)
    with Progress(TextColumn("alert {task.fields[alert]}: {task.description}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn("sent {task.fields[sent]:,} · failed {task.fields[failed]:,}"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("handed to the provider", total=max(report.counts.matched, 1),
                                 alert=report.alert_id, sent=0, failed=0)
        counts = report.counts
        try:
            while True:
                progress.update(task, total=max(counts.matched, 1), completed=counts.handled, sent=counts.sent,
                                failed=counts.failed)
                if counts.finished:
                    break
                time.sleep(interval)
                counts = _counts(ctx, report.alert_id)
        except KeyboardInterrupt:
            console.print("stopped watching (the fan-out goes on)")
    return _load(ctx, report.alert_id)


def _counts(ctx: AppContext, alert_id: int) -> Counts:
    with ctx.session() as session:
        return status_counts(session, [alert_id])[alert_id]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def print_report(report: AlertDelivery, console: Console) -> None:
    c = report.counts
    console.print(f"[bold]alert {report.alert_id}[/bold] · {report.msg_type} · {report.event} · {report.severity}/"
                  f"{report.urgency} · thread {report.thread_id} ({report.thread_state or '-'})")
    if report.headline:
        console.print(report.headline)
    console.print(f"received {report.received_at:%Y-%m-%d %H:%M:%S} UTC · identifier {report.identifier}")
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(justify="left")
    table.add_column(justify="right")
    fallback = ", ".join(f"{k.upper() if k != 'unknown' else 'type unknown'} {v:,}" for k, v in
                         sorted(c.fallback.items()))
    for label, value in (
        ("matched", f"{c.matched:,}"),
        ("queued", f"{c.queued:,}"),
        ("sending (or held under its key)", f"{c.sending:,}"),
        ("sent (taken by the provider)", f"{c.sent:,}"),
        ("  awaiting result", f"{c.awaiting_result:,}"),
        ("  delivered (AlimTalk)", f"{c.delivered:,}"),
        ("  fell back (SMS/LMS)", f"{c.fell_back:,}" + (f" ({fallback})" if fallback else "")),
        ("  uncertain (sent, no receipt)", f"{c.uncertain:,}"),
        ("failed", f"{c.failed:,}"),
        ("suppressed (not sent)", f"{c.suppressed:,}"),
        ("acknowledged (the whole warning)", "n/a" if c.acknowledged is None else f"{c.acknowledged:,}"),
        ("first send after arrival", _seconds(report.first_send_seconds)),
        ("last send after arrival", _seconds(report.last_send_seconds)),
    ):
        table.add_row(label, value)
    console.print(table)
    for title, reasons in (("failed by reason", report.failed_by_reason),
                           ("suppressed by reason", report.suppressed_by_reason)):
        if reasons:
            t = Table(title=title, title_justify="left")
            t.add_column("code")
            t.add_column("reason")
            t.add_column("count", justify="right")
            for r in reasons:
                t.add_row(r.code or "-", r.reason, f"{r.count:,}")
            console.print(t)
    if report.versions:
        t = Table(title="versions in this thread", title_justify="left")
        for name in ("id", "type", "event", "severity", "received (UTC)", "matched", ""):
            t.add_column(name)
        for v in report.versions:
            t.add_row(str(v.alert_id), v.msg_type, v.event, v.severity, f"{v.received_at:%Y-%m-%d %H:%M:%S}",
                      f"{v.matched:,}", ("current" if v.current else "") + (" ◀ this" if v.alert_id ==
                                                                           report.alert_id else ""))
        console.print(t)
