"""The dispatcher's bulk bookkeeping (one UPDATE per kind of outcome, executemany by id) leaves every row exactly
as the row-by-row logic it replaced did: the same statuses, attempts, keys, leases, backoffs, errors, results
and ledger rows, step by step through a mixed life (accepted, retryable refusal, permanent refusal, missing
from the answer, a whole-request failure with and without a known outcome, a recovered batch re-keyed after
the provider forgot its key, results of every kind), on SQLite and on a real PostgreSQL server.

The reference is the previous implementation, kept here verbatim as :class:`RowByRow` (one ``Session.get`` per
row): both run side by side on two databases built the same way, with the same clock and the same answers.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from alimcast_testkit import cap_xml, config_text
from sqlalchemy.dialects import sqlite
from sqlmodel import select

from alerts.config import load_config
from alerts.costs import record_costs
from alerts.db import session_scope
from alerts.delivery.dispatch import (
    CONFIG_ERROR_BACKOFF,
    FINAL,
    KEY_MEMORY,
    LEASE,
    Dispatcher,
    DispatchReport,
    ResultsReport,
    backoff,
)
from alerts.delivery.providers.base import (
    DeliveryResult,
    OutgoingMessage,
    PendingDelivery,
    Provider,
    ProviderError,
    SendOutcome,
)
from alerts.message_bodies import attach_bodies
from alerts.models import CostEntry, Delivery
from alerts.pipeline import Pipeline, feed_spec
from alerts.sqlutil import insert_ignore
from subscribers.store import add_subscriber

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
PEOPLE = 16


class RowByRow(Dispatcher):
    """The bookkeeping as it was before the bulk statements: one ``Session.get`` (and autoflush) per row."""

    def _lease(self, session: Any, rows: list[Any], key: str, now: datetime,
               suppressed: int) -> Dispatcher._Claim:
        # a fresh claim hands plain rows (the ORM rows only for a batch taken over): each is loaded, one by one
        for claimed in rows:
            row = claimed if isinstance(claimed, Delivery) else session.get(Delivery, claimed.id)
            if row.status != "sending":
                row.attempts += 1
                row.key_used_at = now
            row.status = "sending"
            row.idempotency_key = key
            row.provider = self.provider.kind
            row.lease_until = now + LEASE
            session.add(row)
        return Dispatcher._Claim(rows, key, suppressed)

    def _rekey(self, rows: list[Delivery], key: str) -> None:
        now = self.clock()
        with session_scope(self.engine) as session:
            for row in rows:
                fresh = session.get(Delivery, row.id)
                if fresh is not None:
                    fresh.idempotency_key = key
                    fresh.key_used_at = now
                    session.add(fresh)

    def _requeue(self, rows: list[Delivery], exc: ProviderError, report: DispatchReport, *,
                 resending: bool = False) -> None:
        now = self.clock()
        report.errors.append(str(exc))
        with session_scope(self.engine) as session:
            for row in rows:
                fresh = session.get(Delivery, row.id)
                if fresh is None:
                    continue
                fresh.last_error = str(exc)[:500]
                fresh.lease_until = None
                wait = backoff(fresh.attempts, exc.retry_after) if exc.retryable else CONFIG_ERROR_BACKOFF
                if exc.unknown_outcome:
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
                session.add(fresh)

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
            session.flush()
            report.costed = record_costs(session, finished, self.config.prices, dry_run=self.dry_run, now=now)


@dataclass
class Script:
    """What the provider answers next: the same for both dispatchers."""

    #: delivery id -> outcome (None: left out of the answer)
    answer: Callable[[OutgoingMessage], SendOutcome | None] = lambda m: SendOutcome(m.delivery_id, True)
    failure: ProviderError | None = None
    lookup: list[SendOutcome] | None = None
    results: Callable[[Sequence[PendingDelivery]], list[DeliveryResult]] = lambda pending: []
    sends: list[str] = field(default_factory=list)


class ScriptedProvider(Provider):
    """The provider's side only (its answers scripted, including one the loopback server cannot give: a
    recipient left out of the answer); everything on our side is the real dispatcher."""

    kind: ClassVar[str] = "scripted"

    def __init__(self, script: Script) -> None:
        super().__init__({})
        self.script = script

    def send(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str) -> list[SendOutcome]:
        self.check_batch(batch)
        self.script.sends.append(idempotency_key)
        if self.script.failure is not None:
            raise self.script.failure
        return [o for m in batch if (o := self.script.answer(m)) is not None]

    def lookup(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str,
               sent_after: datetime) -> list[SendOutcome] | None:
        return self.script.lookup

    def poll_results(self, pending: Sequence[PendingDelivery]) -> list[DeliveryResult]:
        return self.script.results(pending)


def mixed(m: OutgoingMessage) -> SendOutcome | None:
    """Accepted, refused for now (retryable), refused for good, or not mentioned: by the id's remainder."""
    kind = m.delivery_id % 4
    if kind == 0:
        return SendOutcome(m.delivery_id, True, request_id="R-1", recipient_seq=m.delivery_id * 7, result_code="0")
    if kind == 1:
        return SendOutcome(m.delivery_id, False, result_code="-9999", result_message="system error", retryable=True)
    if kind == 2:
        return SendOutcome(m.delivery_id, False, result_code="-5000", result_message="Invalid recipient number.")
    return None


def every_kind_of_result(pending: Sequence[PendingDelivery]) -> list[DeliveryResult]:
    kinds: list[tuple[Any, str | None, str | None]] = [
        ("delivered", "alimtalk", "1000"), ("fallback_sent", "sms", "3015"), ("fallback_sent", None, "3016"),
        ("failed", None, "3019"), ("uncertain", None, "3005"), ("pending", None, None)]
    out = [DeliveryResult(p.delivery_id, *kinds[i % len(kinds)], result_message=f"m{i}")
           for i, p in enumerate(pending)]
    if pending:  # a repeated result for one delivery, and one for a delivery that is already final
        out.append(DeliveryResult(pending[0].delivery_id, "failed", None, "9999", "late copy"))
        out.append(DeliveryResult(2, "delivered", "alimtalk", "1000", "for a row that had failed"))
    return out


@dataclass
class Side:
    pipeline: Pipeline
    dispatcher: Dispatcher

    def rows(self) -> list[tuple[Any, ...]]:
        """Every delivery's state (its keys numbered by first appearance: each run draws its own uuids)."""
        numbers: dict[str, int] = {}
        out = []
        with session_scope(self.pipeline.engine) as s:
            for d in s.exec(select(Delivery).order_by(Delivery.id)):
                key = None if d.idempotency_key is None else numbers.setdefault(d.idempotency_key, len(numbers))
                out.append((d.id, d.subscriber_id, d.status, d.attempts, key, d.provider, d.lease_until, d.key_used_at,
                            d.next_attempt_at, d.request_id, d.recipient_seq, d.channel, d.result_code,
                            d.result_message, d.last_error, d.sent_at, d.finished_at))
        return out

    def costs(self) -> list[tuple[Any, ...]]:
        with session_scope(self.pipeline.engine) as s:
            return [(c.delivery_id, c.month, c.channel, c.price_krw, c.baseline_channel, c.baseline_krw, c.dry_run,
                     c.created_at) for c in s.exec(select(CostEntry).order_by(CostEntry.delivery_id))]


@pytest.fixture(params=["sqlite", "postgres"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bulk.db'}", f"sqlite:///{tmp_path / 'rows.db'}"
        return
    server = request.getfixturevalue("pg_server")
    tag = next(_pg_names)
    yield server.create_database(f"bulk{tag}"), server.create_database(f"rows{tag}")


_pg_names = itertools.count()


def build(url: str, tmp_path: Path, name: str, script: Script, clock: Callable[[], datetime],
          kind: type[Dispatcher]) -> Side:
    """A database with PEOPLE subscribers and one warning's outbox, the same ids on every build."""
    folder = tmp_path / name
    folder.mkdir()
    feed = folder / "feed.xml"
    (folder / "config.toml").write_text(config_text(url, [("kma", "cap", str(feed))]), encoding="utf-8")
    config = load_config(folder / "config.toml")
    pipeline = Pipeline(config)
    with session_scope(pipeline.engine) as s:
        for i in range(PEOPLE):
            add_subscriber(s, f"0103{i:07d}", ["S1251100"])
    feed.write_bytes(cap_xml("W1", sent=T0 - timedelta(minutes=2), zones=["S1251100"],
                             expires=T0 + timedelta(days=1)))
    pipeline.poll(feed_spec(config.feeds[0]), force=True)
    assert pipeline.match().queued == PEOPLE
    return Side(pipeline, kind(pipeline.engine, config, ScriptedProvider(script), clock=clock))


def raw_rows(url: str) -> list[tuple[Any, ...]]:
    """Every stored delivery as SQLite holds it, but for what differs between two builds (creation time, uuids)."""
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        columns = [c[1] for c in connection.execute("PRAGMA table_info(delivery)")
                   if c[1] not in ("created_at", "idempotency_key")]
        return connection.execute(f"SELECT {', '.join(columns)} FROM delivery ORDER BY id").fetchall()
    finally:
        connection.close()


def test_bulk_bookkeeping_matches_the_row_by_row_logic(two_urls: tuple[str, str], tmp_path: Path) -> None:
    script = Script(answer=mixed)
    now = [T0]
    bulk = build(two_urls[0], tmp_path, "bulk", script, lambda: now[0], Dispatcher)
    rows = build(two_urls[1], tmp_path, "rows", script, lambda: now[0], RowByRow)
    assert bulk.rows() == rows.rows()

    def both(step: Callable[[Dispatcher], Any]) -> Any:
        first, second = step(bulk.dispatcher), step(rows.dispatcher)
        assert first == second
        assert bulk.rows() == rows.rows()
        assert bulk.costs() == rows.costs()
        return first

    # 1. a mixed answer: a quarter each accepted, refused for now, refused for good, not mentioned
    report = both(lambda d: d.dispatch_due(max_batches=1))
    assert (report.accepted, report.requeued, report.rejected, len(report.errors)) == (4, 4, 4, 4)
    by_status: dict[str, int] = {}
    for row in bulk.rows():
        by_status[row[2]] = by_status.get(row[2], 0) + 1
    assert by_status == {"accepted": 4, "queued": 4, "failed": 4, "sending": 4}

    # 2. the unmentioned rows' lease runs out: re-sent under their key, and the outcome is unknown again
    now[0] = T0 + LEASE + timedelta(seconds=1)
    script.failure = ProviderError("read timeout", retryable=True, unknown_outcome=True)
    report = both(lambda d: d.dispatch_due(max_batches=1))
    assert report.requeued == 4 and report.claimed == 4
    sending = [r for r in bulk.rows() if r[2] == "sending"]
    assert len(sending) == 4 and {r[3] for r in sending} == {2} and len({r[4] for r in sending}) == 1

    # 3. the refused-for-now rows are due: the whole request fails (known outcome), they wait Retry-After
    script.failure = ProviderError("HTTP 503", retryable=True, retry_after=30.0)
    report = both(lambda d: d.dispatch_due(max_batches=1))
    assert report.requeued == 4
    assert {r[8] for r in bulk.rows() if r[0] % 4 == 1} == {now[0] + timedelta(seconds=30)}

    # 4. past the provider's key memory: the orphaned batch is looked up (nothing arrived), re-keyed and sent;
    #    then everything due goes out
    now[0] = T0 + KEY_MEMORY + timedelta(minutes=5)
    script.failure, script.lookup = None, []
    script.answer = lambda m: SendOutcome(m.delivery_id, True, request_id="R-2", recipient_seq=m.delivery_id,
                                          result_code="0")
    report = both(lambda d: d.dispatch_due())
    assert report.accepted == 8
    # sends so far, each on the bulk side then the reference side: 1, 2 (same key: re-sent), 3, then 4 re-keyed
    assert script.sends[2] == script.sends[0] and script.sends[6] != script.sends[0]

    # 5. results of every kind (a repeated one, one for a row already final), and their ledger rows
    now[0] += timedelta(minutes=1)
    script.results = every_kind_of_result
    results = both(lambda d: d.collect_results())
    assert results.updated == 10 and results.costed == 8
    statuses = {r[2] for r in bulk.rows()}
    assert statuses == {"accepted", "delivered", "fallback_sent", "failed", "uncertain"}
    if two_urls[0].startswith("sqlite"):  # the driver-direct updates wrote the very text SQLAlchemy writes
        assert raw_rows(two_urls[0]) == raw_rows(two_urls[1])
    bulk.pipeline.close()
    rows.pipeline.close()


#: The outbox's identity: one row per (alert, person, reminder number).
OUTBOX_KEY = ("alert_id", "subscriber_id", "reminder_seq")


def test_sqlite_insert_ignore_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    """The SQLite fast path of insert_ignore (driver executemany) writes the very values SQLAlchemy's own
    INSERT ... ON CONFLICT DO NOTHING writes (times, JSON, booleans, defaults) and counts conflicts the same."""
    when = datetime(2026, 12, 4, 12, 0, 1, 2345, tzinfo=UTC)
    params = {"hazard": "풍랑", "zones": "제주도 앞바다", "quote": 'a "b"'}

    def outbox(start: int) -> list[dict[str, Any]]:
        return [{"alert_id": 1, "thread_id": 1, "subscriber_id": start + i % 5, "kind": "alert",
                 "template_code": "T", "params": params, "text": "본문", "fallback_kind": "SMS",
                 "created_at": when, "next_attempt_at": None if i % 2 else when + timedelta(hours=i)}
                for i in range(5)]

    def stored(name: str, use_fast_path: bool) -> tuple[list[int], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        folder = tmp_path / name
        folder.mkdir()
        feed = folder / "feed.xml"
        (folder / "config.toml").write_text(config_text(f"sqlite:///{folder / 'a.db'}", [("kma", "cap", str(feed))]),
                                            encoding="utf-8")
        pipeline = Pipeline(load_config(folder / "config.toml"))
        feed.write_bytes(cap_xml("W1", sent=T0, zones=["S1251100"]))
        pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)  # alert 1, thread 1
        counts = []
        with session_scope(pipeline.engine) as s:
            for i in range(7):
                add_subscriber(s, f"0103{i:07d}", ["S1251100"])
            for start in (1, 3):  # the second overlaps the first: three conflicts
                rows = outbox(start)
                attach_bodies(s.connection(), rows)  # the body stored once, the rows name it (migration 0017)
                if use_fast_path:
                    counts.append(insert_ignore(s, Delivery, rows, conflict=OUTBOX_KEY))
                else:
                    table = Delivery.__table__  # type: ignore[attr-defined]
                    stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(OUTBOX_KEY))
                    counts.append(len(s.execute(stmt.returning(table.c.id), rows).all()))
            costs = [{"delivery_id": 1, "month": "2026-12", "channel": "sms", "price_krw": 12.0,
                      "baseline_channel": "sms", "baseline_krw": 12.0, "dry_run": True, "created_at": when}]
            if use_fast_path:
                counts.append(insert_ignore(s, CostEntry, costs + costs, conflict=("delivery_id",)))
            else:
                table = CostEntry.__table__  # type: ignore[attr-defined]
                stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["delivery_id"])
                counts.append(len(s.execute(stmt.returning(table.c.id), costs + costs).all()))
        pipeline.close()
        raw = sqlite3.connect(folder / "a.db")
        try:
            return (counts, raw.execute("SELECT * FROM delivery ORDER BY id").fetchall()
                    + raw.execute("SELECT * FROM delivery_message ORDER BY id").fetchall(),
                    raw.execute("SELECT * FROM cost_entry ORDER BY id").fetchall())
        finally:
            raw.close()

    fast = stored("fast", True)
    reference = stored("reference", False)
    assert fast == reference
    assert fast[0] == [5, 2, 1]
