"""The dispatcher: outbox rows -> provider requests -> recorded outcomes, throttled and retried.

Never lost, never sent twice:

* A batch is claimed and given an idempotency key in a committed transaction *before* it is sent
  (status ``sending``, lease). If the process dies mid-request, the rows come back after the lease
  with the same key, and the provider refuses a repeated key (NHN: -1005) instead of sending again.
* A whole-request failure puts the rows back in the queue with a backoff (at least the provider's
  Retry-After); a configuration error (bad key, template not approved) does the same with a long
  backoff and a loud log line, so nothing is dropped while an operator fixes it. A failure whose
  outcome is unknown (a timeout after the request went out) is treated like a crash mid-request: the
  batch keeps its key and comes back as one group after the backoff.
* Just before a row is sent, its warning is checked again: expired, cancelled or superseded rows are
  suppressed, also when they come from the retry queue.
* Highest priority first: severe and immediate warnings jump the queue.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alerts.config import Config
from alerts.costs import record_costs
from alerts.db import session_scope
from alerts.delivery.providers.base import (
    DeliveryResult,
    Fallback,
    OutgoingMessage,
    PendingDelivery,
    Provider,
    ProviderError,
    SendOutcome,
)
from alerts.delivery.rate import TokenBucket
from alerts.models import AlertRecord, AlertThread, Delivery
from alerts.short_sms import fallback_for
from subscribers.models import Subscriber
from subscribers.sqltypes import utcnow

log = logging.getLogger("alimcast.dispatch")

LEASE = timedelta(seconds=120)
#: How long the provider refuses a repeated idempotency key (NHN: 10 minutes), with a margin.
KEY_MEMORY = timedelta(minutes=9)
CONFIG_ERROR_BACKOFF = timedelta(minutes=5)
FINAL = ("delivered", "fallback_sent", "failed", "uncertain")


@dataclass(slots=True)
class DispatchReport:
    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    requeued: int = 0
    suppressed: int = 0
    errors: list[str] = field(default_factory=list)
    #: Rows taken from the outbox (sent, recorded as already sent, or put back).
    claimed: int = 0
    #: The round ended early: the provider refused the configuration.
    stopped: bool = False

    def add(self, other: DispatchReport) -> None:
        for name in ("requests", "accepted", "rejected", "requeued", "suppressed", "claimed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)
        self.stopped = self.stopped or other.stopped


@dataclass(slots=True)
class ResultsReport:
    updated: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    costed: int = 0


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential (5 s, 10 s, … capped at 10 min), never shorter than the provider's Retry-After."""
    seconds = min(600.0, 5.0 * (2 ** max(0, attempts - 1)))
    if retry_after is not None:
        seconds = max(seconds, retry_after)
    return timedelta(seconds=seconds)


class Dispatcher:
    def __init__(self, engine: Engine, config: Config, provider: Provider, *,
                 clock: Callable[[], datetime] = utcnow, bucket: TokenBucket | None = None) -> None:
        self.engine = engine
        self.config = config
        self.provider = provider
        self.clock = clock
        self.batch_size = min(config.provider.batch_size, provider.max_batch)
        self.bucket = bucket or TokenBucket(config.provider.rate_per_second,
                                            capacity=max(float(self.batch_size), config.provider.rate_per_second))
        self.dry_run = provider.kind == "dryrun"
        self.postgres = engine.dialect.name == "postgresql"

    # -- sending -------------------------------------------------------------------------------
    def dispatch_due(self, *, max_batches: int | None = None) -> DispatchReport:
        report = DispatchReport()
        batches = 0
        while max_batches is None or batches < max_batches:
            claimed = self._claim()
            report.suppressed += claimed.suppressed
            if not claimed.rows:
                if claimed.suppressed:
                    continue  # a page of dead rows (each now suppressed) must not end the round
                break
            batches += 1
            report.claimed += len(claimed.rows)
            if claimed.stale_since is not None and self._already_sent(claimed, report):
                continue
            stop = self._send(claimed.rows, claimed.key, report)
            if stop:
                report.stopped = True
                break
        return report

    @dataclass(slots=True)
    class _Claim:
        rows: list[Delivery]
        key: str
        suppressed: int
        #: For a batch whose sender died mid-request: when it was first claimed.
        stale_since: datetime | None = None

    def _claim(self) -> Dispatcher._Claim:
        now = self.clock()
        with session_scope(self.engine) as session:
            stale = self._stale_sending(session, now)
            if stale:
                since = min(r.key_used_at or (r.lease_until or now) - LEASE for r in stale)
                # a 해제 may have come meanwhile: not sent again, but it may have gone out already
                live, suppressed = self._still_live(session, stale, now, may_have_gone=True)
                if not live:
                    return Dispatcher._Claim([], "", suppressed)
                claim = self._lease(session, live, stale[0].idempotency_key or uuid.uuid4().hex, now, suppressed)
                claim.stale_since = since
                return claim
            stmt = (select(Delivery).where(Delivery.status == "queued",
                                           or_(col(Delivery.next_attempt_at).is_(None),
                                               col(Delivery.next_attempt_at) <= now))
                    .order_by(col(Delivery.priority).desc(), col(Delivery.id)).limit(self.batch_size * 2))
            if self.postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            candidates = list(session.exec(stmt))
            live, suppressed = self._still_live(session, candidates, now)
            if not live:
                return Dispatcher._Claim([], "", suppressed)
            template = live[0].template_code
            rows = [d for d in live if d.template_code == template][: self.batch_size]
            return self._lease(session, rows, uuid.uuid4().hex, now, suppressed)

    def _stale_sending(self, session: Session, now: datetime) -> list[Delivery]:
        """Rows whose sender died mid-request (or whose outcome was unknown): re-send them with their own
        key, as one group. Locked on PostgreSQL, so two workers never recover the same batch."""
        first_stmt = select(Delivery).where(Delivery.status == "sending", col(Delivery.lease_until) < now).limit(1)
        if self.postgres:
            first_stmt = first_stmt.with_for_update(skip_locked=True)
        first = session.exec(first_stmt).first()
        if first is None:
            return []
        group = select(Delivery).where(Delivery.status == "sending", Delivery.idempotency_key == first.idempotency_key,
                                       col(Delivery.lease_until) < now)
        if self.postgres:
            group = group.with_for_update(skip_locked=True)
        return list(session.exec(group))

    def _lease(self, session: Session, rows: list[Delivery], key: str, now: datetime,
               suppressed: int) -> Dispatcher._Claim:
        for row in rows:
            if row.status != "sending":
                row.attempts += 1
                row.key_used_at = now  # a new key: the request follows this commit at once
            row.status = "sending"
            row.idempotency_key = key
            row.provider = self.provider.kind
            row.lease_until = now + LEASE
            session.add(row)
        return Dispatcher._Claim(rows, key, suppressed)

    def _still_live(self, session: Session, rows: list[Delivery], now: datetime, *,
                    may_have_gone: bool = False) -> tuple[list[Delivery], int]:
        """Suppress what must no longer go out: expired, cancelled, superseded, or from a closed thread.

        ``may_have_gone``: rows of a batch whose send's outcome is unknown. They are not sent again either,
        but they are recorded as ``uncertain`` (and costed as sent), not as never sent."""
        if not rows:
            return [], 0
        alert_ids = {r.alert_id for r in rows}
        thread_ids = {r.thread_id for r in rows}
        alerts = {a.id: a for a in session.exec(select(AlertRecord).where(col(AlertRecord.id).in_(alert_ids)))}
        threads = {t.id: t for t in session.exec(select(AlertThread).where(col(AlertThread.id).in_(thread_ids)))}
        live: list[Delivery] = []
        dead: list[Delivery] = []
        for row in rows:
            why = _suppression(row, alerts.get(row.alert_id), threads.get(row.thread_id), now)
            if why is None:
                live.append(row)
                continue
            if may_have_gone:
                row.status = "uncertain"
                row.last_error = f"{why}; it may have gone out before (its send's outcome was unknown)"
            else:
                row.status, row.last_error = "suppressed", why
            row.finished_at = now
            session.add(row)
            dead.append(row)
        if may_have_gone and dead:
            session.flush()
            record_costs(session, dead, self.config.prices, dry_run=self.dry_run, now=now)
        return live, len(dead)

    def _already_sent(self, claim: Dispatcher._Claim, report: DispatchReport) -> bool:
        """A batch orphaned longer than the provider remembers idempotency keys: ask what arrived
        before sending again, so a restart after a long outage cannot send twice."""
        assert claim.stale_since is not None
        if self.clock() - claim.stale_since < KEY_MEMORY:
            return False  # the provider still refuses a repeated key: a plain re-send is safe
        phones = self._phones([r.subscriber_id for r in claim.rows])
        messages = [self._message(r, phones.get(r.subscriber_id, "")) for r in claim.rows]
        try:
            outcomes = self.provider.lookup(messages, idempotency_key=claim.key, sent_after=claim.stale_since)
        except ProviderError as exc:
            # still unknown whether it arrived: the batch keeps its key and asks again later
            log.warning("cannot look up orphaned batch %s yet: %s", claim.key, exc)
            self._requeue(claim.rows, ProviderError(str(exc), retryable=True, unknown_outcome=True), report)
            return True
        if outcomes is None:
            log.warning("provider %s cannot tell whether orphaned batch %s arrived; re-sending with its key",
                        self.provider.kind, claim.key)
            return False
        if not outcomes:
            claim.key = uuid.uuid4().hex  # nothing arrived: a fresh send under a fresh key
            self._rekey(claim.rows, claim.key)
            return False
        log.info("orphaned batch %s had reached the provider: recorded, not sent again", claim.key)
        self._record(claim.rows, outcomes, report)
        return True

    def _rekey(self, rows: list[Delivery], key: str) -> None:
        now = self.clock()
        with session_scope(self.engine) as session:
            for row in rows:
                fresh = session.get(Delivery, row.id)
                if fresh is not None:
                    fresh.idempotency_key = key
                    fresh.key_used_at = now
                    session.add(fresh)

    def _send(self, rows: list[Delivery], key: str, report: DispatchReport) -> bool:
        """Send one claimed batch; returns True when the round should stop (provider refused config)."""
        phones = self._phones([r.subscriber_id for r in rows])
        messages = [self._message(r, phones.get(r.subscriber_id, "")) for r in rows]
        self.bucket.acquire(len(messages))
        report.requests += 1
        try:
            outcomes = self.provider.send(messages, idempotency_key=key)
        except ProviderError as exc:
            self._requeue(rows, exc, report)
            return not exc.retryable
        except Exception as exc:  # noqa: BLE001 - unknown outcome: the lease brings the rows back, same key
            log.exception("send of %d messages ended with an unknown outcome; will retry with the same key",
                          len(rows))
            report.errors.append(f"send failed with unknown outcome: {exc}")
            return True
        self._record(rows, outcomes, report)
        return False

    def _message(self, row: Delivery, phone: str) -> OutgoingMessage:
        fallback: Fallback | None = None
        if self.config.provider.settings.get("fallback", True):
            fallback, _ = fallback_for(row, self.config)  # the template's short SMS form when it fits
        return OutgoingMessage(delivery_id=row.id or 0, recipient_no=phone, template_code=row.template_code,
                               parameters=dict(row.params), text=row.text, fallback=fallback)

    def _phones(self, ids: Sequence[int]) -> dict[int, str]:
        with session_scope(self.engine) as session:
            rows = session.exec(select(Subscriber.id, Subscriber.phone).where(col(Subscriber.id).in_(list(ids))))
            return {sid: phone for sid, phone in rows if sid is not None}

    def _requeue(self, rows: list[Delivery], exc: ProviderError, report: DispatchReport) -> None:
        now = self.clock()
        level = logging.WARNING if exc.retryable else logging.ERROR
        log.log(level, "provider refused a batch of %d: %s%s", len(rows), exc,
                "" if exc.retryable else " — configuration error: fix it; messages stay queued")
        report.errors.append(str(exc))
        # A provider outage is never a reason to drop a warning: the rows are retried until their
        # warning ends (expired or cancelled rows are suppressed at the next claim), and the operator is
        # told loudly once they have failed max_attempts times.
        with session_scope(self.engine) as session:
            for row in rows:
                fresh = session.get(Delivery, row.id)
                if fresh is None:
                    continue
                fresh.last_error = str(exc)[:500]
                fresh.lease_until = None
                if fresh.attempts == self.config.max_attempts:
                    log.error("delivery %s still not accepted after %d attempts (last: %s); retrying until its "
                              "warning ends", fresh.id, fresh.attempts, exc)
                wait = backoff(fresh.attempts, exc.retry_after) if exc.retryable else CONFIG_ERROR_BACKOFF
                if exc.unknown_outcome:
                    # it may have arrived: the batch stays together under its key and comes back through
                    # the lease path after the wait (which asks the provider first once the key is forgotten)
                    fresh.attempts += 1
                    fresh.lease_until = now + wait
                else:
                    fresh.status = "queued"
                    fresh.idempotency_key = None
                    fresh.next_attempt_at = now + wait
                session.add(fresh)
                report.requeued += 1

    def _record(self, rows: list[Delivery], outcomes: list[SendOutcome], report: DispatchReport) -> None:
        now = self.clock()
        by_id = {o.delivery_id: o for o in outcomes}
        with session_scope(self.engine) as session:
            for row in rows:
                fresh = session.get(Delivery, row.id)
                if fresh is None:
                    continue
                outcome = by_id.get(fresh.id or -1)
                fresh.lease_until = None
                if outcome is None:
                    # The provider did not mention it: unknown, keep the key and let the lease retry it.
                    fresh.lease_until = now + LEASE
                    report.errors.append(f"delivery {fresh.id}: not in the provider's answer")
                elif outcome.accepted:
                    fresh.status = "accepted"
                    fresh.request_id = outcome.request_id
                    fresh.recipient_seq = outcome.recipient_seq
                    fresh.result_code = outcome.result_code
                    fresh.sent_at = now
                    report.accepted += 1
                elif outcome.retryable:
                    # like a whole-request failure: retried until the warning ends (then suppressed at claim)
                    if fresh.attempts == self.config.max_attempts:
                        log.error("delivery %s still refused after %d attempts (%s %s); retrying until its "
                                  "warning ends", fresh.id, fresh.attempts, outcome.result_code,
                                  outcome.result_message)
                    fresh.status = "queued"
                    fresh.idempotency_key = None
                    fresh.next_attempt_at = now + backoff(fresh.attempts)
                    fresh.last_error = f"{outcome.result_code}: {outcome.result_message}"
                    report.requeued += 1
                else:
                    fresh.status = "failed"
                    fresh.result_code = outcome.result_code
                    fresh.result_message = outcome.result_message
                    fresh.finished_at = now
                    report.rejected += 1
                    log.warning("delivery %s rejected by the provider: %s %s", fresh.id, outcome.result_code,
                                outcome.result_message)
                session.add(fresh)

    # -- results -------------------------------------------------------------------------------
    def collect_results(self, *, limit: int = 10000) -> ResultsReport:
        report = ResultsReport()
        with session_scope(self.engine) as session:
            pending = list(session.exec(select(Delivery).where(Delivery.status == "accepted",
                                                               col(Delivery.request_id).is_not(None))
                                        .order_by(col(Delivery.id)).limit(limit)))
        if not pending:
            return report
        try:
            results = self.provider.poll_results(
                [PendingDelivery(d.id or 0, d.request_id or "", d.recipient_seq) for d in pending])
        except ProviderError as exc:
            log.warning("result poll failed: %s", exc)
            return report
        self._apply_results(results, report)
        return report

    def _apply_results(self, results: list[DeliveryResult], report: ResultsReport) -> None:
        now = self.clock()
        finished: list[Delivery] = []
        with session_scope(self.engine) as session:
            for result in results:
                row = session.get(Delivery, result.delivery_id)
                if row is None or row.status in FINAL or result.status == "pending":
                    continue
                row.status = result.status
                row.channel = result.channel
                row.result_code = result.result_code
                row.result_message = result.result_message
                row.finished_at = now
                session.add(row)
                finished.append(row)
                report.updated += 1
                report.by_status[result.status] += 1
                if result.channel:
                    report.by_channel[result.channel] += 1
                if result.status == "failed":
                    log.warning("delivery %s failed: %s %s", row.id, result.result_code, result.result_message)
            session.flush()
            report.costed = record_costs(session, finished, self.config.prices, dry_run=self.dry_run, now=now)


def _suppression(row: Delivery, alert: AlertRecord | None, thread: AlertThread | None, now: datetime) -> str | None:
    if alert is None or thread is None:
        return "alert no longer stored"
    if row.kind == "cancel":
        return None
    if thread.state != "active":
        return f"warning {thread.state} before it was sent"
    if thread.current_alert_id != alert.id:
        return "superseded by a newer version before it was sent"
    if alert.end_time is not None and alert.end_time <= now:
        return "expired before it was sent"
    return None

