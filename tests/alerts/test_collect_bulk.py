"""Collecting results in bulk (alerts/delivery/result_rows.py, alerts/cost_write.py, the pipelined poll in
``Dispatcher.collect_results``) leaves the outbox, the ledger and its rollups exactly as the row-by-row logic it
replaced did, on SQLite and on a real PostgreSQL server.

The reference is the previous implementation (one ``Session.get`` per row, each row priced by
``costs.ledger_row`` and written by ``record_costs``), run side by side on a second database built the same way,
with the same clock and the same answers. The life is mixed on purpose: every kind of result in one page
(delivered, fallback by SMS, by LMS, by a channel the provider did not name, failed, uncertain, still pending, a
repeated result, a result for a row already final, one for no row at all), two texts (one SMS-length, one that
needs an LMS), two requests sent under two price entries, and results finishing in two months; the pages are
made small so one collect fetches several chunks while it stores the previous one.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from alimcast_testkit import cap_xml, config_text
from sqlalchemy import text
from sqlmodel import col, select

import alerts.delivery.dispatch as dispatch
import alerts.delivery.result_rows as result_rows
from alerts.config import Prices, load_config
from alerts.costs import ledger_row, record_costs
from alerts.db import session_scope, sqlite_datetime
from alerts.delivery.dispatch import FINAL, Dispatcher, ResultsReport, poll_chunks
from alerts.delivery.providers.base import (
    DeliveryResult,
    OutgoingMessage,
    PendingDelivery,
    Provider,
    ProviderError,
    SendOutcome,
)
from alerts.models import CostEntry, Delivery
from alerts.pipeline import Pipeline, feed_spec
from alerts.pricing import PriceBook, PriceEntry
from alerts.render import KST
from subscribers.store import add_subscriber

PEOPLE = 24
#: The last evening of a month and the first night of the next, in KST: a new price entry starts at midnight.
_TODAY = datetime.now(KST)
_NEXT_MONTH = (_TODAY.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0,
                                                                     microsecond=0)
M1 = (_NEXT_MONTH - timedelta(hours=1)).astimezone(UTC)
M2 = (_NEXT_MONTH + timedelta(hours=1)).astimezone(UTC)
PRICES = Prices(8, 12, 39, book=PriceBook(entries=[
    PriceEntry(date(2020, 1, 1), Decimal("8"), Decimal("12"), Decimal("39"), Decimal("39")),
    PriceEntry(_NEXT_MONTH.date(), Decimal("7.5"), Decimal("11.123"), Decimal("30.5"), Decimal("30.5"))]))
LONG_TEXT = "[풍랑경보] 제주도 앞바다, 남해서부 먼바다에 풍랑경보가 발표되었습니다. " * 3


class RowByRow(Dispatcher):
    """Results as they were written before the bulk statements: one ``Session.get`` (and autoflush) per row, every
    row priced on its own and the ledger written by ``record_costs`` (the count summed over pages)."""

    def collect_results(self, *, limit: int | None = None) -> ResultsReport:
        report = ResultsReport()
        with session_scope(self.engine) as session:
            rows = session.exec(select(Delivery).where(Delivery.status == "accepted",
                                                       Delivery.request_id.is_not(None))  # type: ignore[union-attr]
                                .order_by(Delivery.id).limit(limit or self.results_limit)).all()
            pending = [PendingDelivery(r.id or 0, r.request_id or "", r.recipient_seq) for r in rows]
        if not pending:
            return report
        try:
            results = self.provider.poll_results(pending)
        except ProviderError:
            return report
        for start in range(0, len(results), dispatch.RESULTS_PAGE):
            self._apply_results(results[start:start + dispatch.RESULTS_PAGE], report)
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
            session.flush()
            report.costed += record_costs(session, finished, self.config.prices, dry_run=self.dry_run, now=now)


#: By the delivery id's remainder: what the provider reports (status, channel, code).
KINDS: list[tuple[Any, str | None, str | None]] = [
    ("delivered", "alimtalk", "1000"), ("fallback_sent", "sms", "3015"), ("fallback_sent", "lms", "3015"),
    ("fallback_sent", None, "3016"), ("failed", None, "3019"), ("uncertain", None, "3005"), ("pending", None, None)]


@dataclass
class Script:
    """The provider's answers, the same for both sides; ``settle``: pending rows are reported delivered."""

    settle: bool = False
    #: A poll that carries this request id fails (a provider down in the middle of a collect).
    failing_request: str | None = None
    polls: list[list[str]] = field(default_factory=list)
    batches: int = 0


class ScriptedProvider(Provider):
    kind: ClassVar[str] = "scripted"

    def __init__(self, script: Script) -> None:
        super().__init__({})
        self.script = script
        self.lock = threading.Lock()

    def send(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str) -> list[SendOutcome]:
        self.check_batch(batch)
        with self.lock:
            self.script.batches += 1
            request = f"R-{self.script.batches}"
        return [SendOutcome(m.delivery_id, True, request, seq, "0") for seq, m in enumerate(batch, start=1)]

    def poll_results(self, pending: Sequence[PendingDelivery]) -> list[DeliveryResult]:
        requests = sorted({p.request_id for p in pending})
        with self.lock:
            self.script.polls.append(requests)
        if self.script.failing_request in requests:
            raise ProviderError("HTTP 503", retryable=True)
        out = []
        for p in pending:
            status, channel, code = KINDS[p.delivery_id % len(KINDS)]
            if status == "pending" and self.script.settle:
                status, channel, code = "delivered", "alimtalk", "1000"
            out.append(DeliveryResult(p.delivery_id, status, channel, code, f"m{p.delivery_id % 5}"))
        if pending:  # a repeated result (the first one wins), one for a row already final, one for no row
            first = pending[0].delivery_id
            out += [DeliveryResult(first, "failed", None, "9999", "late copy"),
                    DeliveryResult(5, "delivered", "alimtalk", "1000", "for a row that is final"),
                    DeliveryResult(10**6, "delivered", "alimtalk", "1000", "no such row")]
        return out


@dataclass
class Side:
    pipeline: Pipeline
    dispatcher: Dispatcher

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with session_scope(self.pipeline.engine) as s:
            return [tuple(r) for r in s.connection().execute(text(sql)).all()]

    def deliveries(self) -> list[tuple[Any, ...]]:
        with session_scope(self.pipeline.engine) as s:
            return [(d.id, d.status, d.channel, d.result_code, d.result_message, d.sent_at, d.finished_at)
                    for d in s.exec(select(Delivery).order_by(Delivery.id))]

    def ledger(self) -> list[tuple[Any, ...]]:
        """Every ledger column but the row's own id, as stored (on SQLite: the very text and types)."""
        columns = [c.name for c in CostEntry.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]
        picked = ", ".join(columns)
        if self.pipeline.engine.dialect.name == "sqlite":
            picked += ", " + ", ".join(f"typeof({c})" for c in columns)
        return self.query(f"SELECT {picked} FROM cost_entry ORDER BY delivery_id")

    def rollup(self) -> list[tuple[Any, ...]]:
        """The month rollups (summed: PostgreSQL's statement triggers append one delta row per statement)."""
        return self.query("SELECT month, dry_run, channel, status, sum(messages), sum(price_e4), sum(baseline_e4), "
                          "sum(short_messages), sum(short_e4) FROM cost_rollup GROUP BY month, dry_run, channel, "
                          "status HAVING sum(messages) <> 0 ORDER BY 1, 2, 3, 4")

    def recipients(self) -> list[tuple[Any, ...]]:
        return self.query("SELECT month, dry_run, subscriber_id FROM cost_recipient ORDER BY 1, 2, 3")


@pytest.fixture(params=["sqlite", "postgres"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bulk.db'}", f"sqlite:///{tmp_path / 'rows.db'}"
        return
    server = request.getfixturevalue("pg_server")
    tag = next(_pg_names)
    yield server.create_database(f"collectbulk{tag}"), server.create_database(f"collectrows{tag}")


_pg_names = itertools.count()


def build(url: str, folder: Path, script: Script, clock: Callable[[], datetime], kind: type[Dispatcher]) -> Side:
    """PEOPLE subscribers and one warning's outbox (every even-numbered message with a text that needs an LMS)."""
    folder.mkdir()
    feed = folder / "feed.xml"
    (folder / "config.toml").write_text(config_text(url, [("kma", "cap", str(feed))]), encoding="utf-8")
    config = load_config(folder / "config.toml")
    config.prices = PRICES
    pipeline = Pipeline(config)
    with session_scope(pipeline.engine) as s:
        for i in range(PEOPLE):
            add_subscriber(s, f"0103{i:07d}", ["S1251100"])
    now = datetime.now(UTC).replace(microsecond=0)
    feed.write_bytes(cap_xml("W1", sent=now - timedelta(minutes=2), zones=["S1251100"],
                             expires=now + timedelta(days=70)))
    pipeline.poll(feed_spec(config.feeds[0]), force=True)
    assert pipeline.match().queued == PEOPLE
    with session_scope(pipeline.engine) as s:
        for row in s.exec(select(Delivery).where(col(Delivery.id) % 2 == 0)).all():
            row.text = LONG_TEXT  # the row gets a body of its own (alerts/message_bodies.py)
    dispatcher = kind(pipeline.engine, config, ScriptedProvider(script), clock=clock)
    dispatcher.batch_size = PEOPLE // 2
    return Side(pipeline, dispatcher)


@pytest.mark.parametrize("same_outcome_statements", [0, 1000], ids=["row-values", "per-outcome"])
def test_bulk_results_match_the_row_by_row_logic(two_urls: tuple[str, str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, same_outcome_statements: int) -> None:
    """Both ways SQLite marks a page (each row carrying its values, or a statement per kind of outcome) give the
    row-by-row result; PostgreSQL has one way."""
    monkeypatch.setattr(dispatch, "RESULTS_PAGE", 5)  # several chunks and pages per collect
    monkeypatch.setattr(result_rows, "SAME_OUTCOME_STATEMENTS", same_outcome_statements)
    script = Script()
    now = [M1]
    bulk = build(two_urls[0], tmp_path / "bulk", script, lambda: now[0], Dispatcher)
    rows = build(two_urls[1], tmp_path / "rows", script, lambda: now[0], RowByRow)

    def both(step: Callable[[Dispatcher], Any]) -> Any:
        first, second = step(bulk.dispatcher), step(rows.dispatcher)
        assert first == second
        assert bulk.deliveries() == rows.deliveries()
        assert bulk.ledger() == rows.ledger()
        assert bulk.rollup() == rows.rollup()
        assert bulk.recipients() == rows.recipients()
        return first

    # 1. the first request goes out before midnight (the old prices), its results come in before midnight
    assert both(lambda d: d.dispatch_due(max_batches=1)).accepted == PEOPLE // 2
    now[0] = M1 + timedelta(minutes=10)
    first = both(lambda d: d.collect_results())
    # rows 1-12 by KINDS: one still pending (6), two failed (4, 11), nine billed
    assert first.updated == 11 and first.costed == 9
    assert first.by_status == {"delivered": 1, "fallback_sent": 6, "failed": 2, "uncertain": 2}
    assert first.by_channel == {"alimtalk": 1, "sms": 2, "lms": 2}
    # 2. the second request goes out after midnight (the new prices); every result comes in, in the new month
    now[0] = M2
    assert both(lambda d: d.dispatch_due()).accepted == PEOPLE // 2
    now[0] = M2 + timedelta(minutes=10)
    script.settle = True
    second = both(lambda d: d.collect_results())
    assert second.updated == 13 and second.costed == 12  # row 6 and rows 13-24, one of which failed (18)
    assert len(script.polls) == 2 + 3  # the second time the bulk side asked a chunk per request

    ledger = bulk.ledger()
    assert len(ledger) == 21 and {r[1] for r in ledger} == {M1.astimezone(KST).strftime("%Y-%m"),
                                                           M2.astimezone(KST).strftime("%Y-%m")}
    assert len({r[3] for r in ledger}) >= 4  # prices from both entries
    assert any(r[10] is not None for r in ledger)  # a short SMS carried an LMS-length text
    # each ledger row is what ledger_row prices for its delivery, read back whole
    with session_scope(bulk.pipeline.engine) as s:
        stored = {c.delivery_id: c for c in s.exec(select(CostEntry))}
        for d in s.exec(select(Delivery)):
            expected = ledger_row(d, PRICES, dry_run=False, now=d.finished_at or M2)
            if expected is None:
                assert d.id not in stored
                continue
            got = stored[d.id or 0]
            assert {k: getattr(got, k) for k in expected if k != "created_at"} == \
                {k: v for k, v in expected.items() if k != "created_at"}
            assert got.created_at == d.finished_at
    if two_urls[0].startswith("sqlite"):
        assert bulk.query("SELECT DISTINCT created_at FROM cost_entry ORDER BY 1") == [
            (sqlite_datetime(M1 + timedelta(minutes=10)),), (sqlite_datetime(M2 + timedelta(minutes=10)),)]
    bulk.pipeline.close()
    rows.pipeline.close()


def test_a_failed_chunk_keeps_what_was_stored_and_the_rest_waits(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider fails on the second request's results: the first request's results are stored, the second's
    rows stay accepted, no ledger row is written for them, and the next collect finishes them."""
    monkeypatch.setattr(dispatch, "RESULTS_PAGE", 5)
    script = Script(settle=True)
    now = [M1]
    side = build(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "a", script, lambda: now[0], Dispatcher)
    assert side.dispatcher.dispatch_due().accepted == PEOPLE
    script.failing_request = "R-2"
    now[0] += timedelta(minutes=1)
    report = side.dispatcher.collect_results()
    assert report.updated == PEOPLE // 2
    assert [d[1] for d in side.deliveries()].count("accepted") == PEOPLE // 2
    assert len(side.ledger()) == report.costed
    script.failing_request = None
    later = side.dispatcher.collect_results()
    assert later.updated == PEOPLE // 2
    assert all(d[1] in FINAL for d in side.deliveries())
    side.pipeline.close()


def test_poll_chunks_keep_requests_whole_in_order() -> None:
    pending = [PendingDelivery(i, f"R{r}", i) for i, r in enumerate([1, 1, 2, 3, 3, 3, 4, 2, 5])]
    chunks = poll_chunks(pending, 4)
    assert [[p.delivery_id for p in c] for c in chunks] == [[0, 1, 2, 7], [3, 4, 5, 6], [8]]
    assert [[p.delivery_id for p in c] for c in poll_chunks(pending, 2)] == [[0, 1], [2, 7], [3, 4, 5], [6, 8]]
    assert poll_chunks([], 4) == []
