"""Pricing one finished message: the channel that carried it, against the old SMS/LMS route."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alimcast_testkit import cap_xml, config_text
from sqlmodel import select

from alerts.config import Prices, load_config
from alerts.costs import ledger_row, month_of, monthly_summary
from alerts.db import session_scope
from alerts.models import CostEntry, Delivery
from alerts.pipeline import Pipeline, feed_spec
from subscribers.store import add_subscriber

PRICES = Prices(alimtalk=8.0, sms=12.0, lms=39.0)
NOW = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 2026-12-01 01:00 KST


@pytest.mark.parametrize(("status", "channel", "fallback", "expected"), [
    ("delivered", "alimtalk", "SMS", ("alimtalk", 8.0, "sms", 12.0)),
    ("delivered", "alimtalk", "LMS", ("alimtalk", 8.0, "lms", 39.0)),
    ("fallback_sent", "sms", "SMS", ("sms", 12.0, "sms", 12.0)),
    ("fallback_sent", "lms", "LMS", ("lms", 39.0, "lms", 39.0)),
    ("fallback_sent", None, "LMS", ("lms", 39.0, "lms", 39.0)),  # provider forgot the resend type
    ("uncertain", None, "SMS", ("alimtalk", 8.0, "sms", 12.0)),  # sent, no receipt: billed as sent
    ("failed", None, "SMS", None),
    ("suppressed", None, "SMS", None),
])
def test_ledger_row(status: str, channel: str | None, fallback: str,
                    expected: tuple[str, float, str, float] | None) -> None:
    d = Delivery(id=1, alert_id=1, thread_id=1, subscriber_id=1, status=status, channel=channel,
                 fallback_kind=fallback, finished_at=NOW)
    row = ledger_row(d, PRICES, dry_run=False, now=NOW)
    if expected is None:
        assert row is None
        return
    assert row is not None
    assert (row["channel"], row["price_krw"], row["baseline_channel"], row["baseline_krw"]) == expected
    assert row["month"] == "2026-12"  # invoices are grouped by the Korean month


def test_month_is_kst() -> None:
    assert month_of(datetime(2026, 11, 30, 14, 59, tzinfo=UTC)) == "2026-11"
    assert month_of(datetime(2026, 11, 30, 15, 0, tzinfo=UTC)) == "2026-12"


def test_monthly_summary_keeps_dry_runs_out_of_the_real_figures(tmp_path: Path) -> None:
    """A manager's month is what was really sent; a rehearsal with the dryrun provider is shown apart."""
    feed = tmp_path / "kma.xml"
    (tmp_path / "config.toml").write_text(config_text(f"sqlite:///{tmp_path / 'c.db'}", [("kma", "cap", str(feed))]),
                                          encoding="utf-8")
    pipeline = Pipeline(load_config(tmp_path / "config.toml"))
    with session_scope(pipeline.engine) as s:
        for i in range(10):
            add_subscriber(s, f"0104{i:07d}", ["S1251100"])
    sent = datetime.now(UTC).replace(microsecond=0)
    feed.write_bytes(cap_xml("W1", sent=sent, zones=["S1251100"]))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    pipeline.tick()
    with session_scope(pipeline.engine) as s:  # three of them went through a real provider
        for entry in s.exec(select(CostEntry).order_by(CostEntry.id).limit(3)):
            entry.dry_run = False
            s.add(entry)
    with session_scope(pipeline.engine) as s:
        month = monthly_summary(s, month_of(sent))
    each, baseline = month.cost_krw / 3, month.baseline_krw / 3
    assert month.messages == 3 and each == 8.0 and baseline in (12.0, 39.0)
    assert month.simulated is not None and month.simulated.messages == 7 and month.simulated.cost_krw == 56.0
    report = month.report_json()
    assert (report["messages"], report["simulated"]["messages"]) == (3, 7)
    assert report["saving_ratio"] == round(1 - 8.0 / float(baseline), 4)  # money is Decimal now
    pipeline.close()
