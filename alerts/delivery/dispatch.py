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
* Highest priority first: severe and immediate warnings jump the queue. Priorities are read again at every
  claim, and a claim happens only once the rate allows the batch to start, so a warning queued while the
  dispatcher waited for the rate goes in the very next request. A claimed batch whose request is ready but not
  made yet gives way to one of higher priority queued since its claim (alerts/delivery/outranked.py), and the
  batches are spread over the second (alerts/delivery/pacing.py), so room for an urgent batch comes within about
  an eighth of a second, not after a second-long burst.
* The provider's limit is kept exactly (:mod:`alerts.delivery.rate`): a batch is at most an eighth of a
  second of the rate (``BATCH_SECONDS``), so an urgent batch never waits more than about an eighth of a second
  for room, and the small latency of small requests keeps the achieved rate close to the configured one.
* Short leases, renewed while a request is in flight: a batch held by a process that died is taken over by
  a live worker within ``LEASE`` (a few seconds), under the same key.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, func, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from alerts import coalesce
from alerts.config import Config
from alerts.cost_write import insert_ledger
from alerts.costs import record_costs
from alerts.db import session_scope, sqlite_datetime
from alerts.delivery.inflight import LeaseRenewals, SendThreads
from alerts.delivery.outbox_rows import (
    OutboxRow,
    States,
    due_rows,
    due_rows_and_states,
    rows_by_id,
    warning_states,
)
from alerts.delivery.outranked import outranked, put_back
from alerts.delivery.pacing import Pacer
from alerts.delivery.providers.base import (
    DeliveryResult,
    Fallback,
    OutgoingMessage,
    PendingDelivery,
    Provider,
    ProviderError,
    SendOutcome,
)
from alerts.delivery.rate import SendWindow
from alerts.delivery.result_rows import FINAL as FINAL  # where results are written; kept importable here
from alerts.delivery.result_rows import mark_finished, unfinished
from alerts.delivery.shared_rate import SharedSendWindow, provider_timeout, window_for
from alerts.metrics import LEASES_RECOVERED
from alerts.models import Delivery, DeliveryMessage
from alerts.short_sms import short_fallback
from alerts.sqlutil import fetch_all, id_in, id_list
from subscribers.models import Subscriber
from subscribers.sqltypes import UTCDateTime, utcnow

log = logging.getLogger("alimcast.dispatch")

#: A claimed batch's lease, renewed every ``RENEW_EVERY`` while its request is in flight: when its holder
#: dies, a live worker takes the batch over (same key) within this time.
LEASE = timedelta(seconds=6)
RENEW_EVERY = 1.5
#: A batch carries at most this much of a second of the rate: an urgent batch waits at most about this long
#: for room behind a bulk send, and small requests answer fast (see alerts/delivery/rate.py on latency).
#: An eighth, not a quarter (benchmarks/bench_send_rate.py, 2,000/s, provider in its own process): a request's
#: time in flight, which the rate rule charges on every place, fell from 8.7-9.5 to 4.5-5.4 ms (the rule's
#: ceiling from 0.991x to 0.995x of the configured rate), for twice the requests.
BATCH_SECONDS = 0.125
#: What whole requests may leave unsent of a second of the rate (see batch_size_for).
FILL_SLACK = 0.001
#: A batch is claimed once the rate would let it start within about the time its preparation takes (claim,
#: messages, the request's body encoded: measured, the longest of the last ``LEAD_SAMPLES`` times 1.5, kept
#: within these bounds), so the room it waits for is not left empty while it is prepared; priorities are still
#: read at most that long before the request starts. The longest, not an average: on a loaded machine one
#: slow preparation in a few left its room empty for tens of milliseconds, a percent of the rate each time.
CLAIM_LEAD = (0.05, 0.5)
LEAD_SAMPLES = 8
#: How long, at most, the dispatcher waits for a request's answer, doing nothing, when the rate holds its next
#: batch back at least that long plus the claim's lead (see Dispatcher._quiet_until_answered); within that,
#: twice the longest of the last ``LEAD_SAMPLES`` times in flight (Dispatcher._answer_wait).
ANSWER_WAIT = 0.1
#: Delivery results are written this many at a time, releasing the writer lock in between (a page holds it
#: for tens of milliseconds; a smaller page paid a commit per 250 results); the provider is asked for them in
#: chunks of about as many (whole requests), the next chunk fetched while one is written.
RESULTS_PAGE = 1000
#: How long the provider refuses a repeated idempotency key (NHN: 10 minutes), with a margin.
KEY_MEMORY = timedelta(minutes=9)
CONFIG_ERROR_BACKOFF = timedelta(minutes=5)
#: SQLite (one dispatching process): when nothing was stale, how long (on the dispatcher's clock) the claims of
#: one round skip looking for rows whose lease ran out (the first claim of every round looks): a batch whose
#: sender died is still taken over within ``LEASE`` plus this, and a busy round does not pay that query (and its
#: wait for the GIL) per batch. PostgreSQL looks at every claim: several workers take over each other's batches
#: (a probe that skips locked rows, and a group another worker is taking over is looked at again at once).
STALE_CHECK_EVERY = timedelta(seconds=1)
#: Namespace of the transaction-scoped advisory locks (with the key's hash) of a batch being taken over: "alrc".
RECOVER_LOCK_NS = 0x616C7263


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
                 clock: Callable[[], datetime] = utcnow,
                 window: SendWindow | SharedSendWindow | None = None) -> None:
        self.engine = engine
        self.config = config
        self.provider = provider
        self.clock = clock
        # shared by every worker on PostgreSQL (one provider account, one rate): alerts/delivery/shared_rate.py
        self.window = window or window_for(engine, config.provider.rate_per_second,
                                           attempt_seconds=provider_timeout(config))
        self.batch_size = batch_size_for(config.provider.batch_size, provider.max_batch, self.window.capacity)
        #: Set to stop: a wait for the rate ends at once and no new batch is claimed.
        self.stop = threading.Event()
        #: Held around the outbox's writes (the pipeline passes its own lock: SQLite has one writer).
        self.db_lock: threading.RLock = threading.RLock()
        self._seeded = False
        #: How long the last preparations took, claim to request ready (for the claim's lead, CLAIM_LEAD).
        self._preparations: deque[float] = deque(maxlen=LEAD_SAMPLES)
        #: How long the last requests held their place in flight, taken to answered (for _answer_wait).
        self._flights: deque[float] = deque(maxlen=LEAD_SAMPLES)
        #: Accepted messages asked about per results call (``run --once`` calls again until all are in).
        self.results_limit = 10000
        self.dry_run = provider.kind == "dryrun"
        self.postgres = engine.dialect.name == "postgresql"
        #: Claims made so far (a fan-out that committed a warning's first batch early waits for the next one).
        self.claims = 0
        self._claimed = threading.Condition()
        #: When the next claim looks for stale ``sending`` rows (None: at once; see STALE_CHECK_EVERY).
        self._stale_check_at: datetime | None = None
        #: Threads kept between batches (alerts/delivery/inflight.py): requests, and their leases' renewal.
        self._senders = SendThreads("dispatch-send")
        self._renewals = LeaseRenewals(self.renew_lease, lambda: RENEW_EVERY)
        #: Spreads this dispatcher's requests over the second (alerts/delivery/pacing.py): the window never stays
        #: full for most of a second, so an urgent warning finds room soon.
        self.pacer = Pacer(self.window.rate)
        #: The last batch gave way (:meth:`_give_way`): the next one does not, so giving way can never go round
        #: in circles (a row that outranks every claim but is never claimed itself would otherwise stop sending).
        self._gave_way = False

    # -- sending -------------------------------------------------------------------------------
    def dispatch_due(self, *, max_batches: int | None = None) -> DispatchReport:
        """Send what is due, highest priority first, each batch claimed only once the rate lets it start.

        One request is in flight while the next batch is claimed and the previous one's answer is recorded
        (:class:`_InFlight`): the database work of one batch overlaps the wire time of another, and everything
        sent is recorded before this returns."""
        report = DispatchReport()
        batches = 0
        self._seed_window()
        self._stale_check_at = None  # every round's first claim looks for batches whose sender died
        self.pacer.afresh()  # the last round ended with nothing to send: a new spread over the second
        flight: _InFlight | None = None
        try:
            while max_batches is None or batches < max_batches:
                # claim only once a whole batch could start: priorities are read at the last moment
                lead = self._claim_lead()
                if not (self.pacer.wait(self.stop, lead=lead)
                        and self.window.wait_for_room(self.batch_size, self.stop, lead=lead)):
                    break  # stopping: nothing claimed
                began = time.monotonic()
                with self.db_lock:
                    claimed = self._claim()
                with self._claimed:
                    self.claims += 1
                    self._claimed.notify_all()
                report.suppressed += claimed.suppressed
                if not claimed.rows:
                    if claimed.suppressed:
                        continue  # a page of dead rows (each now suppressed) must not end the round
                    break
                batches += 1
                report.claimed += len(claimed.rows)
                # a batch taken over from a sender that died or lost its answer may have arrived before: a
                # refusal of this attempt says nothing about the first, so it must keep its key (see _requeue)
                resending = claimed.stale_since is not None
                if resending:
                    LEASES_RECOVERED.inc()
                if claimed.stale_since is not None and self._already_sent(claimed, report):
                    continue
                if len(claimed.rows) > self.window.capacity:
                    # a batch taken over from an older, larger claim keeps its key, so it goes as one request
                    log.warning("batch %s of %d recipients exceeds one second of the rate (%d); it keeps its key "
                                "and goes as one request", claimed.key, len(claimed.rows), self.window.capacity)
                started = self._start(claimed.rows, claimed.key, resending, report, began=began,
                                      leased_until=claimed.lease_until)
                previous, flight = flight, started
                quiet = self._quiet_until_answered(started)
                if previous is not None and self._finish(previous, report):
                    report.stopped = True
                    break
                if quiet:
                    flight = None
                    if self._finish(started, report):
                        report.stopped = True
                        break
        finally:
            if flight is not None and self._finish(flight, report):
                report.stopped = True
        return report

    def _quiet_until_answered(self, flight: _InFlight) -> bool:
        """While the rate holds the next batch back anyway, wait (:meth:`_answer_wait`) for this request's
        answer before doing any database work: the claim, the records and the encoding then do not take the CPU
        (in one process, the GIL) from the request in flight, whose time in flight the rate rule charges.
        When the next batch may start sooner (no limit in sight), the work overlaps the wire as before. True
        when the answer came (the caller records it now)."""
        wait = self._answer_wait()
        lead = self._claim_lead()
        if self.pacer.delay(lead + wait) <= 0 and self.window.room_within(self.batch_size, lead + wait):
            return False
        wait_futures([flight.answer], timeout=wait)
        return flight.answer.done()

    def _answer_wait(self) -> float:
        """Twice the longest recent time in flight, at most ``ANSWER_WAIT`` (that, before any was measured).

        Why not ``ANSWER_WAIT`` always: batches an eighth of a second apart are never held back a tenth of a
        second plus the lead, so a fixed wait that long was never taken, and the claim ran beside every request.
        Twice the longest recent answer still catches nearly every answer, and bounds the time left idle when
        one is slow (the work then overlaps it)."""
        if not self._flights:
            return ANSWER_WAIT
        return min(ANSWER_WAIT, 2 * max(self._flights))

    def _claim_lead(self) -> float:
        longest = max(self._preparations, default=0.0)
        return min(CLAIM_LEAD[1], max(CLAIM_LEAD[0], 1.5 * longest))

    def wait_for_claim(self, after: int, timeout: float) -> bool:
        """Wait until a claim later than the ``after``-th was made (or ``timeout`` passes)."""
        with self._claimed:
            return self._claimed.wait_for(lambda: self.claims > after, timeout)

    def _seed_window(self) -> None:
        """Once per dispatcher: count what anyone sent in the last second (read from the outbox), so a process
        that starts never assumes the one before it was idle. Rows still ``sending`` under a live lease may be
        arriving at the provider now: they count as in flight for one more second."""
        if self._seeded:
            return
        self._seeded = True
        now = self.clock()
        mono = self.window.now()
        with session_scope(self.engine) as session:
            recent = session.exec(select(func.count()).select_from(Delivery).where(
                col(Delivery.sent_at).is_not(None), col(Delivery.sent_at) > now - timedelta(seconds=1))).one()
            flying = session.exec(select(func.count()).select_from(Delivery).where(
                Delivery.status == "sending", col(Delivery.lease_until) > now - timedelta(seconds=1))).one()
        self.window.seed(int(recent), mono)
        self.window.seed(int(flying), mono + 1.0)

    @dataclass(slots=True)
    class _Claim:
        #: Plain rows (:class:`OutboxRow`) for a fresh claim; ORM rows for a batch taken over from a dead sender.
        rows: list[Any]
        key: str
        suppressed: int
        #: For a batch whose sender died mid-request: when it was first claimed.
        stale_since: datetime | None = None
        #: The lease this claim wrote (a batch gives way only while its rows still hold it: _give_way).
        lease_until: datetime | None = None

    def _claim(self) -> Dispatcher._Claim:
        now = self.clock()
        with session_scope(self.engine) as session:
            stale: list[Delivery] = []
            if self.postgres or self._stale_check_at is None or now >= self._stale_check_at:
                stale = self._stale_sending(session, now)
                # found some: the next claim looks again (there may be more groups); else not for a while
                self._stale_check_at = None if stale else now + STALE_CHECK_EVERY
            if stale:
                since = min(r.key_used_at or (r.lease_until or now) - LEASE for r in stale)
                # a 해제 may have come meanwhile: not sent again, but it may have gone out already
                live, suppressed = self._still_live(session, stale, now, may_have_gone=True)
                if not live:
                    return Dispatcher._Claim([], "", suppressed)
                claim = self._lease(session, live, stale[0].idempotency_key or uuid.uuid4().hex, now, suppressed)
                claim.stale_since = since
                return claim
            # one batch, not more: the claim reads only what it sends (suppressed rows just make it smaller)
            states: States | None = None
            if self.engine.dialect.name == "sqlite":
                candidates, states = due_rows_and_states(session.connection(), now, self.batch_size)
            else:
                candidates = due_rows(session.connection(), now, self.batch_size, lock=self.postgres)
            live, suppressed = self._still_live(session, candidates, now, states=states)
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
            # The group whole or not at all. Found by bench_workers_rate with 8 workers: two workers recovering
            # the same group each locked part of it (SKIP LOCKED) and re-sent it under its key; the first
            # request was accepted, the other refused as a repeated key (-1005, nothing sent), and its rows
            # waited under that burned key for good. One recovering worker per key; it waits for the rows.
            if not session.connection().execute(text("SELECT pg_try_advisory_xact_lock(:ns, hashtext(:key))"),
                                                {"ns": RECOVER_LOCK_NS, "key": first.idempotency_key or ""}
                                                ).scalar():
                return []  # another worker is taking this batch over
            group = group.with_for_update()
        return list(session.exec(group))

    def _lease(self, session: Session, rows: Sequence[Any], key: str, now: datetime,
               suppressed: int) -> Dispatcher._Claim:
        """Give the batch its key and lease in two UPDATE ... WHERE id IN statements (not one per row); the
        rows in hand are brought up to date (ORM rows without becoming dirty, so the commit does not write them
        again)."""
        lease_until = now + LEASE
        first_send = [r.id for r in rows if r.status != "sending"]
        again = [r.id for r in rows if r.status == "sending"]
        common = {"status": "sending", "idempotency_key": key, "provider": self.provider.kind,
                  "lease_until": lease_until}
        connection = session.connection()
        if connection.dialect.name == "sqlite" and not again:
            # a fresh claim: one statement the driver already holds prepared, the ids packed once
            connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                _LEASE_SQLITE, (key, self.provider.kind, sqlite_datetime(lease_until), sqlite_datetime(now),
                                id_list(first_send, "sqlite")))
        else:
            _update_ids(connection, first_send, {**common, "attempts": _DELIVERY.c.attempts + 1,
                                                 "key_used_at": now})
            _update_ids(connection, again, common)
        for row in rows:
            if isinstance(row, OutboxRow):  # a fresh claim: the key is the claim's, the times are not read again
                row.attempts += 1
                row.status = "sending"
                continue
            if row.status != "sending":
                set_committed_value(row, "attempts", row.attempts + 1)
                set_committed_value(row, "key_used_at", now)  # a new key: the request follows this commit at once
            for name, value in common.items():
                set_committed_value(row, name, value)
        return Dispatcher._Claim(list(rows), key, suppressed, lease_until=lease_until)

    def _still_live(self, session: Session, rows: Sequence[Any], now: datetime, *,
                    may_have_gone: bool = False, states: States | None = None) -> tuple[list[Any], int]:
        """Suppress what must no longer go out: expired, cancelled, superseded, or from a closed thread.

        ``rows``: plain :class:`OutboxRow` of a fresh claim (suppressed with one executemany), or, with
        ``may_have_gone``, the ORM rows of a batch whose send's outcome is unknown. They are not sent again
        either, but they are recorded as ``uncertain`` (and costed as sent), not as never sent. ``states``: their
        warnings' states when already read with the rows (:func:`due_rows_and_states`)."""
        if not rows:
            return [], 0
        connection = session.connection()
        alerts, threads = states if states is not None else warning_states(
            connection, {r.alert_id for r in rows}, {r.thread_id for r in rows})
        live: list[Any] = []
        dead: list[Any] = []
        suppressed: list[dict[str, Any]] = []
        #: decided once per warning (a batch is usually one warning's): the verdict depends only on these
        verdicts: dict[tuple[int, int, bool], str | None] = {}
        for row in rows:
            shared = (row.alert_id, row.thread_id, row.kind == "cancel")
            if shared in verdicts:
                why = verdicts[shared]
            else:
                why = verdicts[shared] = _suppression(row, alerts.get(row.alert_id), threads.get(row.thread_id), now)
            if why is None:
                live.append(row)
                continue
            dead.append(row)
            if not may_have_gone:
                suppressed.append({"b_id": row.id, "status": "suppressed", "last_error": why, "finished_at": now})
                continue
            row.status = "uncertain"
            row.last_error = f"{why}; it may have gone out before (its send's outcome was unknown)"
            row.finished_at = now
            session.add(row)
        _update_each(connection, suppressed)
        if not may_have_gone:
            # a grouped message whose list holds a warning that ended since it was formed: rendered again first
            stale_groups = coalesce.heads_with_ended_members(session, live, now)
            if stale_groups:
                coalesce.regroup(session, self.config, now, heads=stale_groups)
                session.flush()
                live = [r for r in rows_by_id(connection, [r.id for r in live])
                        if r.status == "queued" and r.carried_by is None]
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
            _update_ids(session.connection(), [r.id for r in rows], {"idempotency_key": key, "key_used_at": now})

    def _start(self, rows: list[Any], key: str, resending: bool, report: DispatchReport, *,
               began: float | None = None, leased_until: datetime | None = None) -> _InFlight:
        """Start the request of one claimed batch on a thread of its own; :meth:`_finish` records its answer.

        The request is built whole (its body encoded) before its place in the window is taken, and its place
        stops counting as in flight when its answer begins to arrive
        (:class:`~alerts.delivery.providers.base.PreparedSend`): the span the rate
        rule charges holds only the wire and the provider. ``began``: when this batch's claim began (the
        preparation's length sets the next claim's lead). ``leased_until``: the lease the claim wrote; without it
        the batch never gives way."""
        # a fresh claim read the numbers with its rows; a batch taken over from a dead sender looks them up
        unknown = [r.subscriber_id for r in rows if getattr(r, "phone", None) is None]
        phones = self._phones(unknown) if unknown else {}
        messages = self._messages(rows, [getattr(r, "phone", None) or phones.get(r.subscriber_id, "") for r in rows])
        report.requests += 1
        answer: Future[list[SendOutcome]] = Future()
        try:
            prepared = self.provider.prepare(messages, idempotency_key=key)
        except Exception as exc:  # noqa: BLE001 - as a send that failed before it went: _finish decides
            answer.set_exception(exc)
            return _InFlight(rows, key, resending, answer)
        if not resending and rows and leased_until is not None and self._give_way(rows, key, leased_until):
            report.requests -= 1  # none was made
            report.claimed -= len(rows)  # claimed again later: counted then
            answer.set_exception(_GaveWay(key))
            return _InFlight(rows, key, resending, answer)
        if began is not None:  # the look above is part of the preparation the claim's lead must cover
            self._preparations.append(time.monotonic() - began)
        # The place in the window is taken just before the request starts (at once after wait_for_room, unless
        # another worker or request took the room first: with several workers that wait can be long, so the
        # lease is renewed meanwhile): preparing the request holds no place. It is taken by the thread that
        # sends, which sends at once: no thread to start or join between the place and the request (measured:
        # each such hand-over cost milliseconds of counted time on a loaded machine).
        taken = threading.Event()
        refused: list[BaseException] = []
        n = min(len(rows), self.window.capacity)

        def request() -> None:
            try:
                with self._renewing(key):
                    try:
                        self.pacer.wait()  # at most a fraction of this batch's share of a second
                        ticket = self.window.acquire(n)
                        assert ticket is not None
                        self.pacer.started(n)
                        taken_at = time.monotonic()
                    except BaseException as exc:  # noqa: BLE001 - no request made: raised by _start
                        refused.append(exc)
                        return
                    finally:
                        taken.set()
                    try:
                        outcomes = prepared.send()
                    finally:
                        answered = prepared.answered_at
                        ended = time.monotonic()
                        self.window.finish(ticket, ago=0.0 if answered is None else ended - answered)
                        self._flights.append((ended if answered is None else answered) - taken_at)
            except BaseException as exc:  # noqa: BLE001 - handed to _finish, which decides
                answer.set_exception(exc)
            else:
                answer.set_result(outcomes)
            finally:
                taken.set()  # whatever failed before the place was taken, _start must not wait for good

        # a daemon thread: a process that stops is never held up by a request in flight (its key keeps it safe)
        self._senders.run(request)
        taken.wait()
        if refused:
            raise refused[0]
        return _InFlight(rows, key, resending, answer)

    def _finish(self, flight: _InFlight, report: DispatchReport) -> bool:
        """Record the answer of a request started by :meth:`_start` (waiting for it); True when the round should
        stop (the provider refused our configuration, or the outcome is unknown)."""
        try:
            outcomes = flight.answer.result()
        except _GaveWay:
            return False  # queued again as it was, never sent: the next claim takes the higher priority first
        except ProviderError as exc:
            with self.db_lock:
                self._requeue(flight.rows, exc, report, resending=flight.resending)
            return not exc.retryable
        except Exception as exc:  # noqa: BLE001 - unknown outcome: the lease brings the rows back, same key
            if self.stop.is_set():  # the process is stopping under a request in flight: expected, no trace
                log.warning("stopping during the send of batch %s: it stays under its key", flight.key)
            else:
                log.error("send of %d messages ended with an unknown outcome; will retry with the same key",
                          len(flight.rows), exc_info=exc)
            report.errors.append(f"send failed with unknown outcome: {exc}")
            return True
        with self.db_lock:
            self._record(flight.rows, outcomes, report)
        return False

    def _give_way(self, rows: list[Any], key: str, leased_until: datetime) -> bool:
        """Once a claimed batch's request is ready, before it waits for its place: when a row of higher priority
        became due since the claim (a tsunami warning matched during the claim's lead), the batch goes back to the
        queue as it was, never sent (alerts/delivery/outranked.py), and True is returned. The look takes no lock
        (a read); only putting back writes. The batch after one that gave way never does. Rows whose lease is no
        longer the claim's (another worker took the batch over after it lapsed: it sends them under the same key)
        are not put back, and not sent here either."""
        if self._gave_way:
            self._gave_way = False
            return False
        now = self.clock()
        # One read, no transaction of its own: measured on PostgreSQL (benchmarks/bench_outbox_pg.py, one worker),
        # the look in a transaction (opened by the read, ended by the pool's rollback) made every next claim
        # 2.7x slower, 67 ms instead of 25, and a single worker's dispatch 40% slower; in autocommit it costs
        # nothing measurable.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if not outranked(connection, rows[0].id, now):
                return False
        self._gave_way = True
        with self.db_lock, self.engine.begin() as connection:
            back = put_back(connection, [r.id for r in rows], key, leased_until)
        log.info("batch %s of %d gave way to a warning of higher priority queued since its claim (%d queued again)",
                 key, len(rows), back)
        return True

    def _renewing(self, key: str) -> AbstractContextManager[None]:
        return self._renewals.holding(key)

    def renew_lease(self, key: str) -> int:
        """Extend the lease of a batch in flight (one statement; no Python lock: SQLite's busy timeout
        orders it, and a renewal that fails only lets another worker re-send under the same key)."""
        now = self.clock()
        with self.engine.begin() as conn:
            result = conn.execute(update(Delivery).where(col(Delivery.idempotency_key) == key,
                                                         col(Delivery.status) == "sending")
                                  .values(lease_until=now + LEASE))
        return int(result.rowcount or 0)

    def _message(self, row: Any, phone: str) -> OutgoingMessage:
        return OutgoingMessage(delivery_id=row.id or 0, recipient_no=phone, template_code=row.template_code,
                               parameters=dict(row.params), text=row.text, fallback=self._fallback(row))

    def _fallback(self, row: Any) -> Fallback | None:
        if not self.config.provider.settings.get("fallback", True):
            return None
        # the template's short SMS form when it fits, for a row rendered with that template (a translation
        # or a grouped message has its own code: its full text is the fallback)
        template = self.config.templates.get(row.kind)
        sms = template.sms if template is not None and template.code == row.template_code else None
        return _fallback_for(sms, tuple(sorted(row.params.items())) if sms else (), row.text)

    def _messages(self, rows: Sequence[Any], phones: Sequence[str]) -> list[OutgoingMessage]:
        """:meth:`_message` of each row, the fallback decided once per distinct body: the rows of a batch
        usually share one (the same parameters object and text; see outbox_rows._parameters)."""
        fallbacks: dict[tuple[str, str, int, str], Fallback | None] = {}
        messages: list[OutgoingMessage] = []
        for row, phone in zip(rows, phones, strict=True):
            # the rows are all alive for this loop, so the id of their parameters names one object
            body = (row.kind, row.template_code, id(row.params), row.text)
            if body in fallbacks:
                fallback = fallbacks[body]
            else:
                fallback = fallbacks[body] = self._fallback(row)
            # the parameters object is shared, not copied: no provider changes a message's parameters, and a
            # thousand copies per batch, alive until its answer, set off the garbage collector's full pass
            # (measured: ~4 ms of the batch's 18 ms of dispatcher CPU, gone without them)
            messages.append(OutgoingMessage(delivery_id=row.id or 0, recipient_no=phone,
                                            template_code=row.template_code, parameters=row.params,
                                            text=row.text, fallback=fallback))
        return messages

    def _phones(self, ids: Sequence[int]) -> dict[int, str]:
        with session_scope(self.engine) as session:
            connection = session.connection()
            stmt = select(_SUBSCRIBER.c.id, _SUBSCRIBER.c.phone).where(id_in(_SUBSCRIBER.c.id, connection.dialect.name))
            return {sid: phone for sid, phone in connection.execute(stmt, _ids_param(connection, ids))}

    def _requeue(self, rows: list[Delivery], exc: ProviderError, report: DispatchReport, *,
                 resending: bool = False) -> None:
        now = self.clock()
        if resending and not exc.unknown_outcome:
            # found by the chaos test: a recovered batch whose first attempt had arrived, refused now with a 429,
            # was queued again under a fresh key and went out twice. It keeps its key instead.
            exc = ProviderError(str(exc), retryable=exc.retryable, retry_after=exc.retry_after, unknown_outcome=True)
        level = logging.WARNING if exc.retryable else logging.ERROR
        log.log(level, "provider refused a batch of %d: %s%s", len(rows), exc,
                "" if exc.retryable else " — configuration error: fix it; messages stay queued")
        report.errors.append(str(exc))
        # A provider outage is never a reason to drop a warning: the rows are retried until their
        # warning ends (expired or cancelled rows are suppressed at the next claim), and the operator is
        # told loudly once they have failed max_attempts times.
        last_error = str(exc)[:500]
        changes: list[dict[str, Any]] = []
        with session_scope(self.engine) as session:
            connection = session.connection()
            for row_id, attempts in _attempts_of(connection, [r.id for r in rows]):
                if attempts == self.config.max_attempts:
                    log.error("delivery %s still not accepted after %d attempts (last: %s); retrying until its "
                              "warning ends", row_id, attempts, exc)
                wait = backoff(attempts, exc.retry_after) if exc.retryable else CONFIG_ERROR_BACKOFF
                if exc.unknown_outcome:
                    # it may have arrived: the batch stays together under its key and comes back through
                    # the lease path after the wait (which asks the provider first once the key is forgotten)
                    changes.append({"b_id": row_id, "last_error": last_error, "attempts": attempts + 1,
                                    "lease_until": now + wait})
                else:
                    changes.append({"b_id": row_id, "last_error": last_error, "lease_until": None,
                                    "status": "queued", "idempotency_key": None, "next_attempt_at": now + wait})
            _update_each(connection, changes)
        report.requeued += len(changes)

    def _record(self, rows: list[Delivery], outcomes: list[SendOutcome], report: DispatchReport) -> None:
        """The provider's answer, one executemany per kind of outcome (not one round trip per row)."""
        now = self.clock()
        by_id = {o.delivery_id: o for o in outcomes}
        missing: list[int] = []
        changes: list[dict[str, Any]] = []
        # the attempts are read only when an outcome needs them (a retry's backoff); an accepted batch
        # is written without reading its rows first, in a plain transaction (no ORM session: nothing to track)
        if all((o := by_id.get(r.id)) is not None and o.accepted for r in rows):
            with self.engine.begin() as connection:
                _mark_accepted(connection, [by_id[r.id] for r in rows], now)
            report.accepted += len(rows)
            return
        with session_scope(self.engine) as session:
            connection = session.connection()
            for row_id, attempts in _attempts_of(connection, [r.id for r in rows]):
                outcome = by_id.get(row_id)
                if outcome is None:
                    # The provider did not mention it: unknown, keep the key and let the lease retry it.
                    missing.append(row_id)
                    report.errors.append(f"delivery {row_id}: not in the provider's answer")
                elif outcome.accepted:
                    changes.append({"b_id": row_id, "lease_until": None, "status": "accepted",
                                    "request_id": outcome.request_id, "recipient_seq": outcome.recipient_seq,
                                    "result_code": outcome.result_code, "sent_at": now})
                    report.accepted += 1
                elif outcome.retryable:
                    # like a whole-request failure: retried until the warning ends (then suppressed at claim)
                    if attempts == self.config.max_attempts:
                        log.error("delivery %s still refused after %d attempts (%s %s); retrying until its "
                                  "warning ends", row_id, attempts, outcome.result_code, outcome.result_message)
                    changes.append({"b_id": row_id, "lease_until": None, "status": "queued",
                                    "idempotency_key": None, "next_attempt_at": now + backoff(attempts),
                                    "last_error": f"{outcome.result_code}: {outcome.result_message}"})
                    report.requeued += 1
                else:
                    changes.append({"b_id": row_id, "lease_until": None, "status": "failed",
                                    "result_code": outcome.result_code, "result_message": outcome.result_message,
                                    "finished_at": now})
                    report.rejected += 1
                    log.warning("delivery %s rejected by the provider: %s %s", row_id, outcome.result_code,
                                outcome.result_message)
            _update_ids(connection, missing, {"lease_until": now + LEASE})
            _update_each(connection, changes)

    # -- results -------------------------------------------------------------------------------
    def collect_results(self, *, limit: int | None = None) -> ResultsReport:
        """One page (``limit``, else ``results_limit``) of accepted messages asks the provider for results.

        The provider is asked a chunk at a time (whole requests, about ``RESULTS_PAGE`` messages): while one
        chunk's results are written, the next chunk is being fetched on a thread of its own, so the database
        work overlaps the wire (as dispatch's ``_start``/``_finish`` do for sends)."""
        report = ResultsReport()
        with session_scope(self.engine) as session:
            stmt = (select(_DELIVERY.c.id, _DELIVERY.c.request_id, _DELIVERY.c.recipient_seq)
                    .where(_DELIVERY.c.status == "accepted", _DELIVERY.c.request_id.is_not(None))
                    .order_by(_DELIVERY.c.id).limit(limit or self.results_limit))
            rows = sorted(fetch_all(session.connection(), stmt), key=lambda row: row[0])
            pending = [PendingDelivery(row_id, request_id, seq) for row_id, request_id, seq in rows]
        if not pending:
            return report
        chunks = poll_chunks(pending, RESULTS_PAGE)
        if len(chunks) == 1:
            try:
                results = self.provider.poll_results(chunks[0])
            except ProviderError as exc:
                log.warning("result poll failed: %s", exc)
                return report
            self._store_results(results, report)
            return report
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="results-poll") as pool:
            ahead = pool.submit(self.provider.poll_results, chunks[0])
            for following in [*chunks[1:], None]:
                try:
                    results = ahead.result()
                except ProviderError as exc:
                    # what was fetched so far is kept; the rest stays accepted and is asked for next time
                    log.warning("result poll failed: %s", exc)
                    break
                if following is not None:
                    ahead = pool.submit(self.provider.poll_results, following)
                self._store_results(results, report)
        return report

    def _store_results(self, results: list[DeliveryResult], report: ResultsReport) -> None:
        # only the writes hold the lock, a page at a time: a poll or a match is never held up for long
        for start in range(0, len(results), RESULTS_PAGE):
            with self.db_lock:
                self._apply_results(results[start:start + RESULTS_PAGE], report)

    def _apply_results(self, results: list[DeliveryResult], report: ResultsReport) -> None:
        """Final results in one grouped read of the rows and one UPDATE, then their ledger rows in one INSERT
        (alerts/delivery/result_rows.py, alerts/cost_write.py). The first final result for a row wins; a
        pending one changes nothing, and a row already final keeps its result."""
        now = self.clock()
        firsts: dict[int, DeliveryResult] = {}
        for result in results:
            if result.status != "pending":
                firsts.setdefault(result.delivery_id, result)
        if not firsts:
            return
        with session_scope(self.engine) as session:
            connection = session.connection()
            groups = unfinished(connection, list(firsts))
            changes: list[tuple[int, str, str | None, str | None, str | None]] = []
            rows: list[tuple[int, int]] = []
            #: rows priced alike (the same result, the same group of the outbox) share one record, priced once
            priced: list[_Finished] = []
            alike: dict[tuple[str, str | None, int], int] = {}
            for result in firsts.values():
                row_id = result.delivery_id
                group = groups.get(row_id)
                if group is None:
                    continue  # gone, or final already
                status, channel = result.status, result.channel
                changes.append((row_id, status, channel, result.result_code, result.result_message))
                key = (status, channel, id(group))
                number = alike.get(key)
                if number is None:
                    number = alike[key] = len(priced)
                    priced.append(_Finished(row_id, status, channel, result.result_code, result.result_message,
                                            group.fallback_kind, now, group.sent_at, group.provider, group.text))
                rows.append((row_id, number))
                if status == "failed":
                    log.warning("delivery %s failed: %s %s", row_id, result.result_code, result.result_message)
            report.updated += len(changes)
            for number, count in Counter(map(itemgetter(1), rows)).items():
                record = priced[number]
                report.by_status[record.status] += count
                if record.channel:
                    report.by_channel[record.channel] += count
            mark_finished(connection, changes, now)
            report.costed += insert_ledger(connection, priced, rows, self.config.prices, dry_run=self.dry_run,
                                           now=now)


def poll_chunks(pending: Sequence[PendingDelivery], size: int) -> list[list[PendingDelivery]]:
    """``pending`` in chunks of about ``size``, each request whole (a provider lists a request's results in one
    call), in the order the requests first appear; a request larger than ``size`` is a chunk of its own."""
    requests: dict[str, list[PendingDelivery]] = {}
    for p in pending:
        requests.setdefault(p.request_id, []).append(p)
    chunks: list[list[PendingDelivery]] = []
    current: list[PendingDelivery] = []
    for group in requests.values():
        if current and len(current) + len(group) > size:
            chunks.append(current)
            current = []
        current.extend(group)
    if current:
        chunks.append(current)
    return chunks


def batch_size_for(configured: int, provider_max: int, capacity: int) -> int:
    """Recipients per request: never more than the configured size, what the provider takes, or
    ``BATCH_SECONDS`` of the rate (so never more than one second of it: such a request could never start); of
    the sizes that allow, down to half the largest, the largest whose whole requests fill a second of the rate
    to within ``FILL_SLACK`` (else the one that leaves the least over).

    Why not simply the largest size allowed: a second of the rate holds only whole requests, so what they
    leave over is never sent. At 500/s an eighth of a second is 62 recipients, and eight requests of 62 fill
    496 of the 500 (0.8% of the rate lost for good); ten of 50 fill it. At the shipped 100/s: 96 against 100."""
    largest = max(1, min(configured, provider_max, math.floor(capacity * BATCH_SECONDS) or 1))
    sizes = range(largest, max(1, largest // 2) - 1, -1)
    filling = next((n for n in sizes if capacity % n <= capacity * FILL_SLACK), None)
    return filling or min(sizes, key=lambda n: (capacity % n, -n))


class _GaveWay(Exception):  # noqa: N818 - not an error: a batch that made way, never sent
    """A claimed batch put back unsent for a warning of higher priority (:meth:`Dispatcher._give_way`)."""


@dataclass(slots=True)
class _InFlight:
    """A claimed batch whose request runs on its own thread; ``resending``: under a key used before."""

    rows: list[Any]
    key: str
    resending: bool
    answer: Future[list[SendOutcome]]


@dataclass(slots=True)
class _Finished:
    """What the ledger needs of a delivery that just got its final result (a Delivery without the ORM's cost)."""

    id: int
    status: str
    channel: str | None
    result_code: str | None
    result_message: str | None
    fallback_kind: str | None
    finished_at: datetime
    #: What the ledger prices by: the prices in force when it went out, the old route's price for its text.
    sent_at: datetime | None = None
    provider: str | None = None
    text: str = ""
    alert_id: int | None = None
    subscriber_id: int | None = None


_DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]
_MESSAGE: Table = DeliveryMessage.__table__  # type: ignore[attr-defined]
_SUBSCRIBER: Table = Subscriber.__table__  # type: ignore[attr-defined]
#: One UPDATE ... WHERE id = ? run for many rows of the same shape (executemany), per shape.
_UPDATE_BY_ID = update(_DELIVERY).where(_DELIVERY.c.id == bindparam("b_id"))


#: :meth:`Dispatcher._lease` of a fresh claim on SQLite (the ids as one JSON array).
_LEASE_SQLITE = ("UPDATE delivery SET status = 'sending', idempotency_key = ?, provider = ?, lease_until = ?, "
                 "attempts = attempts + 1, key_used_at = ? WHERE id IN (SELECT value FROM json_each(?))")


_MARK_ACCEPTED_PG = text(
    "UPDATE delivery SET lease_until = NULL, status = 'accepted', request_id = :request_id, "
    "result_code = :result_code, sent_at = :sent_at, recipient_seq = j.seq "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:seqs AS integer[])) AS j(id, seq) WHERE delivery.id = j.id"
).bindparams(bindparam("sent_at", type_=UTCDateTime()))


def _ids_param(connection: Connection, ids: Iterable[int | None]) -> dict[str, Any]:
    return {"ids": id_list([i for i in ids if i is not None], connection.dialect.name)}


def _update_ids(connection: Connection, ids: Sequence[int | None], values: dict[str, Any]) -> None:
    """The same values for every row in ``ids``: one UPDATE ... WHERE id IN, the ids bound as one parameter."""
    if ids:
        stmt = update(_DELIVERY).where(id_in(_DELIVERY.c.id, connection.dialect.name)).values(values)
        connection.execute(stmt, _ids_param(connection, ids))


def _attempts_of(connection: Connection, ids: Sequence[int | None]) -> list[tuple[int, int]]:
    """(id, attempts) of the rows that still exist, in the order of ``ids`` (a deleted row is left alone)."""
    if not ids:
        return []
    stmt = select(_DELIVERY.c.id, _DELIVERY.c.attempts).where(id_in(_DELIVERY.c.id, connection.dialect.name))
    attempts = {row_id: tries for row_id, tries in connection.execute(stmt, _ids_param(connection, ids))}
    return [(i, attempts[i]) for i in ids if i is not None and i in attempts]


def _mark_accepted(connection: Connection, outcomes: list[SendOutcome], now: datetime) -> None:
    """A batch the provider accepted whole: what every row shares is bound once, and each row brings only its
    id and its place in the request (its ``recipient_seq``)."""
    shared: dict[tuple[str | None, str | None], list[SendOutcome]] = {}
    for outcome in outcomes:
        shared.setdefault((outcome.request_id, outcome.result_code), []).append(outcome)
    for (request_id, result_code), group in shared.items():
        if connection.dialect.name == "postgresql":
            # one statement, the ids and places as two arrays (an executemany ran an UPDATE per row)
            connection.execute(_MARK_ACCEPTED_PG, {
                "request_id": request_id, "result_code": result_code, "sent_at": now,
                "ids": [o.delivery_id for o in group], "seqs": [o.recipient_seq for o in group]})
            continue
        if connection.dialect.name != "sqlite":
            _update_each(connection, [{"b_id": o.delivery_id, "lease_until": None, "status": "accepted",
                                       "request_id": request_id, "recipient_seq": o.recipient_seq,
                                       "result_code": result_code, "sent_at": now} for o in group])
            continue
        pairs = orjson.dumps([[o.delivery_id, o.recipient_seq] for o in group]).decode()
        connection.connection.driver_connection.execute(  # type: ignore[union-attr]
            "UPDATE delivery SET lease_until = NULL, status = 'accepted', request_id = ?, result_code = ?, "
            "sent_at = ?, recipient_seq = j.value ->> 1 FROM json_each(?) AS j WHERE delivery.id = j.value ->> 0",
            (request_id, result_code, sqlite_datetime(now), pairs))


def _update_each(connection: Connection, changes: list[dict[str, Any]]) -> None:
    """Per-row values by primary key (``b_id`` names the row): one statement for each set of columns.

    On SQLite that statement is ``UPDATE ... FROM json_each(?)``, every row's values in one JSON array, in the
    driver's own form (times as :func:`~alerts.db.sqlite_datetime` text): SQLAlchemy's per-value processing was
    most of the cost of an executemany, and the driver released and took back the GIL at every row of one,
    which beside a busy thread (a request in flight) cost more than the writes."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        shapes.setdefault(tuple(change), []).append(change)
    for columns, group in shapes.items():
        if connection.dialect.name != "sqlite":
            connection.execute(_UPDATE_BY_ID, group)
            continue
        names = [c for c in columns if c != "b_id"]
        sets = ", ".join(f"{c} = j.value ->> {i + 1}" for i, c in enumerate(names))
        sql = f"UPDATE delivery SET {sets} FROM json_each(?) AS j WHERE delivery.id = j.value ->> 0"
        times: dict[datetime, str | None] = {}  # a batch's rows share their times: each is formatted once
        rows = [[change["b_id"], *(_sqlite_value(change[c], times) for c in names)] for change in group]
        connection.connection.driver_connection.execute(sql, (orjson.dumps(rows).decode(),))  # type: ignore[union-attr]


def _sqlite_value(value: Any, times: dict[datetime, str | None]) -> Any:
    if not isinstance(value, datetime):
        return value
    text = times.get(value)
    if text is None:
        text = times[value] = sqlite_datetime(value)
    return text


@lru_cache(maxsize=256)
def _fallback_for(sms: str | None, parameters: tuple[tuple[str, str], ...], text: str) -> Fallback:
    """One outbox text is shared by every recipient of an alert version: its SMS/LMS fallback is built once."""
    return short_fallback(sms, dict(parameters), text)[0]


def _suppression(row: Any, alert: Any, thread: Any, now: datetime) -> str | None:
    """``alert``: a row with ``id, end_time``; ``thread``: one with ``state, current_alert_id``."""
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

