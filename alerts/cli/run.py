"""``alimcast run [--once]``: the main job."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import col, select

from alerts.cli.common import EXIT_BAD_CONFIG, ConfigOption, fail, load, setup_logging
from alerts.db import session_scope
from alerts.delivery.loop import DispatchLoop
from alerts.demo import demo_refusal
from alerts.metrics import InstrumentedProvider, metrics_port
from alerts.metrics import serve as serve_metrics
from alerts.models import CostEntry, Delivery
from alerts.new_alert_watch import WATCH_SECONDS, NewAlertWatcher
from alerts.pipeline import Pipeline, RunSummary, feed_spec
from alerts.public.reminders import reminder_interval, reminder_job
from alerts.run_verdict import exit_if_failed, run_verdict
from alerts.runtime_gc import GcSettings, HeapKeeper
from alerts.runtime_switch import SwitchInterval
from alerts.urlmask import mask_secrets
from alerts.weather_polling import WeatherPolling
from alerts.websub import WebSubSettings, WebSubSubscriber
from alerts.workers import Heartbeat
from feeds.scheduler import FeedScheduler
from subscribers.sqltypes import utcnow

log = logging.getLogger("alimcast.run")

#: ``alimcast run`` exits within this many seconds of SIGTERM/Ctrl-C, whatever is running: a poll or a match
#: still running then is abandoned (its transaction was not committed: the database rolls it back, exactly as
#: after a crash), and a request in flight stays safe under its idempotency key.
STOP_WITHIN_SECONDS = 8.0


def run(
    once: Annotated[bool, typer.Option("--once", help="poll every feed once, match, dispatch, collect, exit")] = False,
    results_wait: Annotated[float, typer.Option(
        "--results-wait", min=0, help="with --once: wait up to this many seconds for delivery results; "
        "what has no result by then is reported as pending")] = 30.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    config: ConfigOption = None,
) -> None:
    """Poll the feeds, match alerts to subscribers and send them (foreground; Ctrl-C or SIGTERM stops)."""
    setup_logging(verbose)
    cfg = load(config)
    if refusal := demo_refusal(cfg):
        fail(refusal, EXIT_BAD_CONFIG)
    try:
        heap = HeapKeeper(GcSettings.from_config(cfg.raw))
        switch = SwitchInterval.from_config(cfg.raw)
    except ValueError as exc:
        fail(f"config: {exc}", EXIT_BAD_CONFIG)
    try:
        pipeline = Pipeline(cfg)
    except Exception as exc:  # noqa: BLE001 - one line for the operator
        log.debug("start-up failed", exc_info=True)
        fail(f"cannot start: {exc}")
    try:
        switch.apply()  # threads back from SQLite or a socket wait less for the lock: alerts/runtime_switch.py
        if once:
            heap.settle()  # the start-up heap (config, engine, metadata) frozen: alerts/runtime_gc.py
            started = utcnow()
            summary = pipeline.run_once()
            collect_until_done(pipeline, summary, results_wait)
            summary_pending(pipeline, summary, started)
            print_run_summary(pipeline, summary, started, cfg.path)
            exit_if_failed(run_verdict(summary, pipeline.engine, [f.name for f in cfg.feeds if f.enabled]))
            return
        _run_forever(pipeline, heap)
    finally:
        try:
            pipeline.close()
        finally:  # the process is left as it was found even when closing fails (the database gone)
            heap.restore()
            switch.restore()


def _run_forever(pipeline: Pipeline, heap: HeapKeeper) -> None:
    cfg = pipeline.config
    specs = [feed_spec(f) for f in cfg.feeds if f.enabled and f.polled]
    pipeline.seed_demo_subscribers()
    pipeline.warm_up()
    heap.settle()  # config loaded, indexes built: that heap is frozen (alerts/runtime_gc.py)
    polling = WeatherPolling(pipeline.engine, pipeline.poll_and_process)
    # one thread per feed (and the housekeeping jobs): a slow feed never delays a fast one
    scheduler = FeedScheduler(specs, polling.poll, max_workers=len(specs) + 4)
    polling.scheduler = scheduler
    # the feed jobs poll and match; this loop sends, apart from them (alerts/delivery/loop.py)
    loop = DispatchLoop(pipeline.dispatcher, pipeline.dispatch, pipeline.wake,
                        idle_seconds=min(1.0, cfg.dispatch_interval_seconds))
    pipeline.dispatch_loop_running = True
    scheduler.add_periodic("dispatch", cfg.dispatch_interval_seconds, pipeline.tick)  # match held, results
    scheduler.add_periodic("reminders", reminder_interval(cfg), reminder_job(pipeline))
    if heap.settings.freeze and heap.settings.refreeze_minutes:
        # a frozen cycle that died since is reclaimed at the next settle: memory bounded by one period
        scheduler.add_periodic("gc-refreeze", min(60.0, heap.settings.refreeze_minutes * 60), heap.refreeze_if_due)
    # alerts stored by another process (a push to `alimcast serve`, a console notice) are matched at once;
    # what the match queues wakes the dispatch loop
    watcher = NewAlertWatcher(pipeline.engine, pipeline.match)
    scheduler.add_periodic("new-alerts", WATCH_SECONDS, watcher.check)
    websub = WebSubSettings.from_config(cfg)
    if websub is not None:
        pipeline.after_poll.append(WebSubSubscriber(websub).after_poll)
    streams = pipeline.ais_streams()
    log.info("alimcast running: %d feeds, %d AIS sources, provider %s, database %s; Ctrl-C to stop", len(specs),
             len(streams), cfg.provider.kind, pipeline.engine.url.render_as_string(hide_password=True))
    start_metrics(pipeline)
    previous = _stop_on_signals(scheduler, loop)
    loop.start()
    heartbeat = start_heartbeat(pipeline, loop)
    for stream in streams:
        stream.start()
    try:
        scheduler.run_forever(handle_signals=False)
    finally:
        loop.stop(timeout=2.0)
        heartbeat.stop()
        for stream in streams:
            stream.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
    log.info("stopped cleanly")


def start_metrics(pipeline: Pipeline) -> None:
    """Count and time the provider's requests (alerts/metrics.py) and, with ``[metrics] port``, serve them."""
    pipeline.dispatcher.provider = InstrumentedProvider(pipeline.dispatcher.provider)
    try:
        port, host = metrics_port(pipeline.config.raw)
    except ValueError as exc:
        fail(f"config: {exc}", EXIT_BAD_CONFIG)
    if port is not None:
        try:
            bound = serve_metrics(pipeline.engine, port, host)
        except OSError as exc:
            fail(f"[metrics] port {port}: cannot listen on {host}: {exc}")
        log.info("metrics on http://%s:%d/metrics", host, bound)


def start_heartbeat(pipeline: Pipeline, loop: DispatchLoop) -> Heartbeat:
    """This process's row in the worker registry (``alimcast workers status``), refreshed every 2 s."""
    window = pipeline.dispatcher.window
    heartbeat = Heartbeat(pipeline.engine, polls=pipeline.lease.holding, in_flight=window.in_flight,
                          sent=lambda: loop.sent.accepted)
    heartbeat.start()
    return heartbeat


def _stop_on_signals(scheduler: FeedScheduler, loop: DispatchLoop) -> dict[int, object]:
    """SIGINT/SIGTERM: stop claiming and polling at once, and exit within ``STOP_WITHIN_SECONDS`` even if a
    poll, a match or a request is still running (each is safe to abandon; see ``STOP_WITHIN_SECONDS``)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def deadline() -> None:
        log.warning("still busy %.0f s after the stop signal: exiting now; work in flight is safe under its "
                    "idempotency key and is resumed by the next start", STOP_WITHIN_SECONDS)
        logging.shutdown()
        os._exit(0)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        timer = threading.Timer(STOP_WITHIN_SECONDS, deadline)
        timer.daemon = True
        timer.start()
        loop.dispatcher.stop.set()
        loop.dispatcher.window.wake()
        scheduler.request_stop()

    previous: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    return previous


def collect_until_done(pipeline: Pipeline, summary: RunSummary, wait_seconds: float) -> None:
    """``run --once``: collect delivery results until every accepted message has one, or ``wait_seconds``
    pass with some still unanswered (those are reported as pending, not guessed)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        step = pipeline.collect(summary)
        if not _awaiting_results(pipeline):
            return
        if step.updated:
            continue  # more pages of results may be ready now
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(1.0, left))


def _awaiting_results(pipeline: Pipeline) -> bool:
    with session_scope(pipeline.engine) as session:
        return session.exec(select(Delivery.id).where(Delivery.status == "accepted",
                                                      col(Delivery.request_id).is_not(None)).limit(1)).first() \
            is not None


def summary_pending(pipeline: Pipeline, summary: RunSummary, started: datetime) -> None:
    """What this run queued that has no final outcome yet, by state (queued for a retry, in flight, sent and
    awaiting its result), so the summary never presents a partial count as the whole."""
    with session_scope(pipeline.engine) as session:
        rows = session.exec(select(Delivery.status).where(
            col(Delivery.created_at) >= started, col(Delivery.status).in_(("queued", "held", "sending", "accepted"))))
        summary.pending = Counter(rows)


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
    names = {"accepted": "sent, awaiting result", "sending": "in flight", "queued": "queued for retry",
             "held": "held (quiet hours)"}
    pending = ", ".join(f"{names.get(k, k)}: {v}" for k, v in sorted(summary.pending.items()) if v) or "none"
    table.add_row("still pending", pending)
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
        console.print(f"[red]feed error:[/] {mask_secrets(line)}")
