"""Pricing one finished message: the channel that carried it, against the old SMS/LMS route."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.config import Prices
from alerts.costs import ledger_row, month_of
from alerts.models import Delivery

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
