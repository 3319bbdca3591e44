"""``alimcast run [--once]``: the main job."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import col, select

from alerts.cli.common import ConfigOption, fail, load, setup_logging
from alerts.db import session_scope
from alerts.models import CostEntry, Delivery
from alerts.new_alert_watch import WATCH_SECONDS, NewAlertWatcher
from alerts.pipeline import Pipeline, RunSummary, feed_spec
from alerts.weather_polling import WeatherPolling
from alerts.websub import WebSubSettings, WebSubSubscriber
from feeds.scheduler import FeedScheduler
from subscribers.sqltypes import utcnow

log = logging.getLogger("alimcast.run")


def run(
    once: Annotated[bool, typer.Option("--once", help="poll every feed once, match, dispatch, collect, exit")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    config: ConfigOption = None,
) -> None:
    """Poll the feeds, match alerts to subscribers and send them (foreground; Ctrl-C or SIGTERM stops)."""
    setup_logging(verbose)
    cfg = load(config)
    try:
        pipeline = Pipeline(cfg)
    except Exception as exc:  # noqa: BLE001 - one line for the operator
        log.debug("start-up failed", exc_info=True)
        fail(f"cannot start: {exc}")
    try:
        if once:
            started = utcnow()
            summary = pipeline.run_once()
            print_run_summary(pipeline, summary, started, cfg.path)
            return
        _run_forever(pipeline)
    finally:
        pipeline.close()


def _run_forever(pipeline: Pipeline) -> None:
    cfg = pipeline.config
    specs = [feed_spec(f) for f in cfg.feeds if f.enabled and f.polled]
    pipeline.seed_demo_subscribers()
    pipeline.warm_up()
    polling = WeatherPolling(pipeline.engine, pipeline.poll_and_process)
    # one thread per feed (and the housekeeping jobs): a slow feed never delays a fast one
    scheduler = FeedScheduler(specs, polling.poll, max_workers=len(specs) + 2)
    polling.scheduler = scheduler
    scheduler.add_periodic("dispatch", cfg.dispatch_interval_seconds, pipeline.tick)
    # alerts stored by another process (a push to `alimcast serve`, a console notice) are matched at once
    watcher = NewAlertWatcher(pipeline.engine, lambda: (pipeline.match(), pipeline.dispatch()))
    scheduler.add_periodic("new-alerts", WATCH_SECONDS, watcher.check)
    websub = WebSubSettings.from_config(cfg)
    if websub is not None:
        pipeline.after_poll.append(WebSubSubscriber(websub).after_poll)
    streams = pipeline.ais_streams()
    log.info("alimcast running: %d feeds, %d AIS sources, provider %s, database %s; Ctrl-C to stop", len(specs),
             len(streams), cfg.provider.kind, pipeline.engine.url.render_as_string(hide_password=True))
    for stream in streams:
        stream.start()
    try:
        scheduler.run_forever(handle_signals=True)
    finally:
        for stream in streams:
            stream.stop()
    log.info("stopped cleanly")


def print_run_summary(pipeline: Pipeline, summary: RunSummary, started: datetime, path: Path | None) -> None:
    console = Console()
    dry = pipeline.provider.kind == "dryrun"
    with session_scope(pipeline.engine) as session:
        entries = list(session.exec(select(CostEntry).where(col(CostEntry.created_at) >= started)))
        first = session.exec(select(Delivery).where(col(Delivery.created_at) >= started)
                             .order_by(col(Delivery.id)).limit(1)).first()
        first_text = first.text if first is not None else ""
    cost = sum(e.price_krw for e in entries)
    baseline = sum(e.baseline_krw for e in entries)
    table = Table(title="alimcast run --once" + (" (dry run: nothing was sent)" if dry else ""))
    table.add_column("stage")
    table.add_column("result")
    table.add_row("feeds polled", f"{summary.feeds_polled} ({len(summary.feed_errors)} errors)")
    table.add_row("alerts ingested", f"{summary.alerts_new} new, {summary.duplicates} already known "
                  f"(of {summary.alerts_parsed} parsed)")
    table.add_row("threads closed", f"{summary.threads_expired} expired, {summary.threads_ended} ended")
    skipped = ", ".join(f"{k}: {v}" for k, v in summary.fanout.skipped.items()) or "none"
    table.add_row("recipients matched", f"{summary.fanout.queued} messages queued for {summary.fanout.alerts} "
                  f"alerts; skipped: {skipped}")
    d = summary.dispatch
    table.add_row("dispatch", f"{d.requests} requests, {d.accepted} accepted, {d.rejected} rejected, "
                  f"{d.requeued} requeued, {d.suppressed} suppressed")
    channels = ", ".join(f"{k}: {v}" for k, v in sorted(summary.results.by_channel.items())) or "none yet"
    verb = "would have gone" if dry else "delivered"
    table.add_row(f"messages by channel ({verb})", channels)
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(summary.results.by_status.items())) or "none yet"
    table.add_row("delivery results" + (" (simulated)" if dry else ""), statuses)
    if first_text:
        table.add_row("first message", first_text)
    if baseline:
        saving = 1 - cost / baseline
        table.add_row("cost" + (" (would be)" if dry else ""),
                      f"{cost:,.1f} KRW vs {baseline:,.1f} KRW over SMS/LMS: {saving:.1%} saved")
    else:
        table.add_row("cost", "no billed messages in this run")
    console.print(table)
    for line in summary.feed_errors:
        console.print(f"[red]feed error:[/] {line}")
