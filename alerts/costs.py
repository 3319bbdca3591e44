"""The cost ledger and the monthly summary managers read.

Each finished message is priced once, by the channel that really carried it, next to what the same
text would have cost on the old route (SMS when it fits 90 EUC-KR bytes, else LMS). Prices come from
config.toml: contracts differ, and the government rate is not the reseller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlmodel import Session

from alerts.config import Prices
from alerts.cost_report import MonthlySummary, monthly_summary
from alerts.delivery.sms import fallback_kind
from alerts.models import CostEntry
from alerts.pricing import PriceBook, single_entry, to_units
from alerts.render import KST
from alerts.sqlutil import insert_ignore


class Billable(Protocol):
    """What pricing reads of a finished delivery: a Delivery, or the dispatcher's lighter record of one."""

    @property
    def id(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def channel(self) -> str | None: ...
    @property
    def fallback_kind(self) -> str | None: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def sent_at(self) -> datetime | None: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def text(self) -> str: ...
    @property
    def alert_id(self) -> int | None: ...
    @property
    def subscriber_id(self) -> int | None: ...


BILLED_STATUSES = {"delivered": None, "fallback_sent": None, "uncertain": "alimtalk"}


def month_of(value: datetime) -> str:
    return value.astimezone(KST).strftime("%Y-%m")


def baseline_channel(delivery: Billable, mode: str = "auto") -> str:
    """What the old route would have used for this message: ``[baseline] mode`` sms or lms, or (auto) SMS
    when the full text fits 90 EUC-KR bytes, else LMS. Measured on the full text, not on a short SMS form:
    the old route sent the whole warning."""
    if mode in ("sms", "lms"):
        return mode
    if delivery.text:
        return _kind_of_text(delivery.text)
    return "lms" if (delivery.fallback_kind or "SMS").upper() == "LMS" else "sms"


@lru_cache(maxsize=4096)
def _kind_of_text(text: str) -> str:
    """A fan-out's rows share a handful of texts: measured once each."""
    return fallback_kind(text).lower()


def _book(prices: Prices) -> PriceBook:
    return prices.book or PriceBook(entries=[single_entry(prices.alimtalk, prices.sms, prices.lms)])


def ledger_row(delivery: Billable, prices: Prices, *, dry_run: bool, now: datetime) -> dict[str, Any] | None:
    """The ledger row for a finished delivery, or None when nothing is billed (failed, suppressed).

    Priced at the ``[[prices]]`` entry in force for the delivery's provider when it went out (sent_at)."""
    if delivery.status not in BILLED_STATUSES:
        return None
    channel = (delivery.channel or BILLED_STATUSES[delivery.status] or "alimtalk").lower()
    if delivery.status == "fallback_sent" and channel not in ("sms", "lms"):
        # The provider did not say which (NHN's results omit the resend type): we chose it by length.
        channel = (delivery.fallback_kind or "LMS").lower()
    if channel not in ("alimtalk", "sms", "lms"):
        channel = "alimtalk"
    book = _book(prices)
    entry = book.entry_at(delivery.provider, delivery.sent_at or delivery.finished_at or now)
    base = baseline_channel(delivery, book.baseline_mode)
    price, baseline = entry.of(channel), entry.of(base)
    short_saving = None
    if channel == "sms" and delivery.text and _kind_of_text(delivery.text) == "lms":
        short_saving = to_units(entry.lms - entry.sms)  # the short SMS form carried what the text could not
    return {
        "delivery_id": delivery.id, "month": month_of(delivery.finished_at or now), "channel": channel,
        "price_krw": float(price), "baseline_channel": base, "baseline_krw": float(baseline),
        "dry_run": dry_run, "created_at": now,
        "price_e4": to_units(price), "baseline_e4": to_units(baseline), "short_saving_e4": short_saving,
        "status": delivery.status, "provider": delivery.provider, "alert_id": delivery.alert_id,
        "subscriber_id": delivery.subscriber_id,
    }


def record_costs(session: Session, deliveries: Sequence[Billable], prices: Prices, *, dry_run: bool,
                 now: datetime) -> int:
    rows = [r for d in deliveries if (r := ledger_row(d, prices, dry_run=dry_run, now=now)) is not None]
    return insert_ignore(session, CostEntry, rows, conflict=("delivery_id",))


# The month's report lives in alerts/cost_report.py (summed in the database); kept importable from here.
__all__ = ["MonthlySummary", "baseline_channel", "ledger_row", "month_of", "monthly_summary", "record_costs"]
