"""The whole job wired together: poll -> ingest -> thread -> match -> outbox -> dispatch -> results -> cost.

``run --once`` calls each stage once; ``run`` hands the same methods to the scheduler. On SQLite one
lock serialises the writing stages (SQLite has one writer, and a dispatcher must not race itself);
on PostgreSQL the outbox is claimed with SKIP LOCKED and the lock only guards this process. Several
``alimcast run`` on one PostgreSQL database: only the holder of the polling lease (``alerts.leader``)
polls; every worker matches (one at a time, under a transaction lock) and dispatches.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from alerts.audience import Audience
from alerts.catchup import catch_up_new
from alerts.config import Config, FeedConfig
from alerts.db import make_engine, session_scope, upgrade
from alerts.delivery.dispatch import Dispatcher, DispatchReport, ResultsReport
from alerts.delivery.providers.base import Provider
from alerts.delivery.providers.registry import create_provider
from alerts.fanout import FanoutReport, FirstBatch, fan_out_pending
from alerts.feedstate import DbFeedStateStore
from alerts.ingest import end_vanished, ingest, relist_reappeared
from alerts.leader import PollingLease
from alerts.lifecycle import expire_threads
from alerts.vessel_fixes import store_fixes
from feeds.fetch import Fetcher
from feeds.poller import FeedSpec, PollOutcome, poll_feed
from subscribers import zones
from subscribers.ais import ReadResult
from subscribers.ais_stream import AisSource, AisStream
from subscribers.sqltypes import utcnow
from subscribers.store import add_subscriber

if TYPE_CHECKING:
    from sqlmodel import Session

log = logging.getLogger("alimcast.run")
#: How long a match that committed a warning's first batch early waits for the dispatch loop to claim it.
HANDOFF_SECONDS = 0.5


@dataclass(slots=True)
class RunSummary:
    feeds_polled: int = 0
    feed_errors: list[str] = field(default_factory=list)
    alerts_parsed: int = 0
    alerts_new: int = 0
    duplicates: int = 0
    threads_ended: int = 0
    threads_expired: int = 0
    fanout: FanoutReport = field(default_factory=FanoutReport)
    dispatch: DispatchReport = field(default_factory=DispatchReport)
    results: ResultsReport = field(default_factory=ResultsReport)
    #: ``run --once``: messages of this run with no final outcome when it ended, by status.
    pending: Counter[str] = field(default_factory=Counter)


def feed_spec(feed: FeedConfig) -> FeedSpec:
    return FeedSpec(name=feed.name, kind=feed.kind, url=feed.url, interval_seconds=feed.interval_seconds,
                    options=feed.options, max_links=feed.max_links,
                    active_interval_seconds=feed.active_interval_seconds)


def zone_name(code: str) -> str | None:
    try:
        return zones.name(code)
    except Exception:  # noqa: BLE001 - unknown code: the area description is used instead
        return None


class Pipeline:
    def __init__(self, config: Config, *, provider: Provider | None = None, migrate: bool = True) -> None:
        self.config = config
        self.engine = make_engine(config.database_url)
        if migrate:
            upgrade(self.engine)
        self.provider = provider or create_provider(config.provider.kind, config.provider.settings)
        self.fetcher = Fetcher(deadline_seconds=config.fetch_timeout_seconds, max_bytes=config.fetch_max_bytes,
                               user_agent=config.user_agent)
        self.states = DbFeedStateStore(self.engine)
        self.dispatcher = Dispatcher(self.engine, config, self.provider)
        self.audience = Audience(self.engine, buffer_nm=config.vessel_buffer_nm,
                                 stale_after=timedelta(hours=config.vessel_stale_after_hours))
        self.lock = threading.RLock()
        self.lease = PollingLease(self.engine)
        if self.engine.dialect.name != "postgresql":
            # SQLite has one writer: the outbox's writes take turns with the match and the results
            self.dispatcher.db_lock = self.lock
        else:
            # PostgreSQL orders its writers itself (row locks, SKIP LOCKED, the matching turn), as it must across
            # workers anyway. Profiled (bench_workers_rate): a worker's sends waited on this lock while its match
            # waited for another worker's matching turn, and while its results were written
            self.dispatcher.db_lock = nullcontext()  # type: ignore[assignment]
        self.states.lock = self.lock
        #: Set when a match queued messages: wakes the dispatch loop (alerts.delivery.loop) at once.
        self.wake = threading.Event()
        #: True while a dispatch loop sends for this pipeline: the other stages then only wake it.
        self.dispatch_loop_running = False
        #: Called with every feed poll's outcome (WebSub subscribes from what a feed advertises).
        self.after_poll: list[Callable[[FeedSpec, PollOutcome], None]] = []

    def close(self) -> None:
        self.lease.release()
        self.fetcher.close()
        self.provider.close()
        self.engine.dispose()

    # -- stages --------------------------------------------------------------------------------
    def seed_demo_subscribers(self) -> int:
        """The shipped config names demo subscribers so a fresh install has someone to match."""
        if not self.config.demo_subscribers:
            return 0
        with self.lock, session_scope(self.engine) as session:
            for demo in self.config.demo_subscribers:
                add_subscriber(session, phone=demo.phone, zones=demo.zones, name=demo.name,
                               min_severity=demo.min_severity, consent_source="demo",
                               consent_text="demo subscriber from config.toml [[demo.subscribers]]")
        return len(self.config.demo_subscribers)

    def warm_up(self) -> None:
        """Build the zone and geometry indexes before the first warning needs them (about two seconds for a
        million subscribers), so the first alert after a restart is not the one that waits."""
        with self.lock, session_scope(self.engine) as session:
            self.audience.zones.ensure_built(session)
            self.audience.geo_index(session)

    def poll(self, spec: FeedSpec, summary: RunSummary | None = None, *, force: bool = False) -> PollOutcome:
        summary = summary or RunSummary()
        outcome = poll_feed(spec, self.fetcher, self.states, force=force)
        summary.feeds_polled += 1
        for hook in self.after_poll:
            try:
                hook(spec, outcome)
            except Exception:  # noqa: BLE001 - an extra (WebSub) never costs the poll its alerts
                log.exception("feed %s: after-poll hook failed", spec.name)
        for line in outcome.errors:
            log.error("%s", line)
        summary.feed_errors.extend(outcome.errors)
        if outcome.skipped or outcome.not_modified:
            log.info("feed %s: %s", spec.name, "not modified" if outcome.not_modified else outcome.skip_reason)
            return outcome
        summary.alerts_parsed += len(outcome.alerts)
        now = utcnow()
        with self.lock, session_scope(self.engine) as session:
            report = ingest(session, outcome.alerts, feed=spec.name, now=now)
            if outcome.snapshot:
                relisted = relist_reappeared(session, spec.name, outcome.alerts, now=now)
                if relisted.relisted_threads:
                    log.warning("feed %s: %d warnings lifted earlier are listed again: reopened, sent again",
                                spec.name, relisted.relisted_threads)
            if outcome.snapshot and outcome.complete:
                ended = end_vanished(session, spec.name, outcome.alerts, now=now)
                summary.threads_ended += ended.ended_threads
        summary.alerts_new += len(report.new_ids)
        summary.duplicates += report.duplicates
        log.info("feed %s: %d alerts parsed, %d new, %d already known", spec.name, len(outcome.alerts),
                 len(report.new_ids), report.duplicates)
        return outcome

    def match(self, summary: RunSummary | None = None) -> FanoutReport:
        summary = summary or RunSummary()
        now = utcnow()
        # with a dispatch loop beside it, a big warning's first batch goes before its whole outbox is written
        early = FirstBatch(self.dispatcher.batch_size, self._hand_over) if self.dispatch_loop_running else None
        with self.lock, session_scope(self.engine) as session:
            summary.threads_expired += expire_threads(session, now)
            report = fan_out_pending(session, self.config, self.audience, now=now, zone_name=zone_name,
                                     early=early)
        # the new warning's outbox is committed: the dispatcher claims its first batch now, while the people who
        # subscribed meanwhile are caught up in a transaction of their own (after a large import that takes a
        # while, and a warning must not wait for it)
        if report.queued:
            self.wake.set()
        with self.lock, session_scope(self.engine) as session:
            caught_up = catch_up_new(session, self.config, self.audience, now=now, zone_name=zone_name)
        report.add(caught_up)
        summary.fanout.add(report)
        if caught_up.queued:
            self.wake.set()
        if report.alerts:
            log.info("matched %d alerts: %d messages queued (%d held for quiet hours), %d superseded, skipped: %s",
                     report.alerts, report.queued, report.held, report.suppressed,
                     dict(report.skipped) or "none")
        return report

    def _hand_over(self, session: Session) -> None:
        """Commit what the match wrote so far and let the dispatch loop claim it before the match goes on:
        the lock is released until the dispatcher made its next claim, at most ``HANDOFF_SECONDS``."""
        session.commit()
        claims = self.dispatcher.claims
        self.wake.set()
        self.lock.release()
        try:
            self.dispatcher.wait_for_claim(claims, HANDOFF_SECONDS)
        finally:
            self.lock.acquire()

    def dispatch(self, summary: RunSummary | None = None) -> DispatchReport:
        """Send everything due. The lock is held only around the outbox's writes (the dispatcher takes it), not
        while a request is in flight or the rate is awaited: a poll or a match runs meanwhile, and a tsunami
        warning arriving during a 40,000-message send is the highest priority at the very next claim."""
        summary = summary or RunSummary()
        report = DispatchReport()
        report.add(self.dispatcher.dispatch_due())  # one request in flight while the next batch is claimed
        summary.dispatch.add(report)
        if report.requests or report.suppressed:
            log.info("dispatched %d requests: %d accepted, %d rejected, %d requeued, %d suppressed",
                     report.requests, report.accepted, report.rejected, report.requeued, report.suppressed)
        return report

    def collect(self, summary: RunSummary | None = None) -> ResultsReport:
        summary = summary or RunSummary()
        report = self.dispatcher.collect_results()  # takes the lock for its writes only
        summary.results.updated += report.updated
        summary.results.by_status.update(report.by_status)
        summary.results.by_channel.update(report.by_channel)
        summary.results.costed += report.costed
        if report.updated:
            log.info("results: %s; by channel: %s", dict(report.by_status), dict(report.by_channel))
        return report

    def store_positions(self, source: AisSource, result: ReadResult) -> None:
        """The AIS readers' sink: store the batch and move each vessel's zones (the lease holder only)."""
        for line in result.bad[:5]:
            log.warning("AIS %s: bad %s", source.url, line)
        if len(result.bad) > 5:
            log.warning("AIS %s: ... and %d more bad lines", source.url, len(result.bad) - 5)
        if not self.lease.held():
            log.debug("AIS %s: another worker holds the lease and stores positions", source.url)
            return
        with self.lock, session_scope(self.engine) as session:
            report, followed = store_fixes(session, self.config, self.audience, result,
                                           known_only=not self.config.ais_all_vessels, now=utcnow(),
                                           zone_name=zone_name)
        log.info("AIS %s: %d positions, stored %d for %d vessels; zone visits: %d entered, %d left, %d expired",
                 source.url, len(result.positions), report.stored, report.vessels, report.entered, report.left,
                 report.expired)
        if followed.queued:
            log.info("AIS %s: %d messages queued: vessels sailed into %d live warnings", source.url,
                     followed.queued, followed.alerts)
            if not self.dispatch_loop_running:
                self.dispatch()

    def ais_streams(self) -> list[AisStream]:
        """One reader per configured AIS source (started by the caller)."""
        return [AisStream(source, self.store_positions, flush_seconds=self.config.ais_flush_seconds)
                for source in self.config.ais_sources]

    def run_once(self) -> RunSummary:
        summary = RunSummary()
        self.seed_demo_subscribers()
        for stream in self.ais_streams():
            if stream.source.streaming:
                log.info("AIS %s: a live receiver is read by the running job, not by --once", stream.source.url)
            else:
                stream.read_file()
        for feed in self.config.feeds:
            if feed.enabled and feed.polled:
                self.poll(feed_spec(feed), summary, force=True)
        self.match(summary)
        self.dispatch(summary)
        self.collect(summary)
        return summary

    def poll_and_process(self, spec: FeedSpec) -> None:
        """The scheduler's job for one feed: poll, ingest and match, never send. What it queues wakes the
        dispatch loop at once (``self.wake``), so a new warning goes out without waiting for a tick, and a
        long fan-out never holds this job up (it would make the scheduler skip the feed's next polls).
        Without a running dispatch loop (tests, embedding code) it sends here, as before.

        Polled only by the lease holder: another worker on the same PostgreSQL database polls instead
        (and takes over within one interval when that worker dies); this one still matches and sends.
        """
        if self.lease.held():
            self.poll(spec)
        else:
            log.debug("feed %s: another worker holds the polling lease", spec.name)
        self.match()
        if not self.dispatch_loop_running:
            self.dispatch()

    def tick(self) -> None:
        self.match()
        if not self.dispatch_loop_running:
            self.dispatch()
        self.collect()

