"""The cost ledger and the monthly summary managers read.

Each finished message is priced once, by the channel that really carried it, next to what the same
text would have cost on the old route (SMS when it fits 90 EUC-KR bytes, else LMS). Prices come from
config.toml: contracts differ, and the government rate is not the reseller's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session, select

from alerts.config import Prices
from alerts.models import CostEntry
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


BILLED_STATUSES = {"delivered": None, "fallback_sent": None, "uncertain": "alimtalk"}


def month_of(value: datetime) -> str:
    return value.astimezone(KST).strftime("%Y-%m")


def baseline_channel(delivery: Billable) -> str:
    return "lms" if (delivery.fallback_kind or "SMS").upper() == "LMS" else "sms"


def ledger_row(delivery: Billable, prices: Prices, *, dry_run: bool, now: datetime) -> dict[str, Any] | None:
    """The ledger row for a finished delivery, or None when nothing is billed (failed, suppressed)."""
    if delivery.status not in BILLED_STATUSES:
        return None
    channel = (delivery.channel or BILLED_STATUSES[delivery.status] or "alimtalk").lower()
    if delivery.status == "fallback_sent" and channel not in ("sms", "lms"):
        # The provider did not say which (NHN's results omit the resend type): we chose it by length.
        channel = (delivery.fallback_kind or "LMS").lower()
    if channel not in ("alimtalk", "sms", "lms"):
        channel = "alimtalk"
    base = baseline_channel(delivery)
    return {
        "delivery_id": delivery.id, "month": month_of(delivery.finished_at or now), "channel": channel,
        "price_krw": prices.of(channel), "baseline_channel": base, "baseline_krw": prices.of(base),
        "dry_run": dry_run, "created_at": now,
    }


def record_costs(session: Session, deliveries: Sequence[Billable], prices: Prices, *, dry_run: bool,
                 now: datetime) -> int:
    rows = [r for d in deliveries if (r := ledger_row(d, prices, dry_run=dry_run, now=now)) is not None]
    return insert_ignore(session, CostEntry, rows, conflict=("delivery_id",))


@dataclass(slots=True)
class MonthlySummary:
    """One month's messages and cost, against the SMS/LMS baseline. A manager's figures are real sends only;
    what a dry run would have cost is summed apart (``simulated``), never into the totals."""

    month: str
    messages: int = 0
    cost_krw: float = 0.0
    baseline_krw: float = 0.0
    by_channel: dict[str, dict[str, float]] = field(default_factory=dict)
    simulated: MonthlySummary | None = None

    @property
    def saving_krw(self) -> float:
        return self.baseline_krw - self.cost_krw

    @property
    def saving_ratio(self) -> float | None:
        return None if self.baseline_krw == 0 else self.saving_krw / self.baseline_krw

    def to_json(self) -> dict[str, Any]:
        """The figures; the month's report adds ``simulated`` (the dry run's figures, or null)."""
        figures: dict[str, Any] = {
            "month": self.month, "messages": self.messages, "cost_krw": round(self.cost_krw, 2),
            "baseline_krw": round(self.baseline_krw, 2), "saving_krw": round(self.saving_krw, 2),
            "saving_ratio": None if self.saving_ratio is None else round(self.saving_ratio, 4),
            "by_channel": self.by_channel,
        }
        return figures

    def report_json(self) -> dict[str, Any]:
        return {**self.to_json(), "simulated": self.simulated.to_json() if self.simulated is not None else None}


def monthly_summary(session: Session, month: str) -> MonthlySummary:
    """Real sends of ``month`` (KST); dry-run rows go into ``simulated`` when there are any."""
    real, dry = _sum(session, month, dry_run=False), _sum(session, month, dry_run=True)
    real.simulated = dry if dry.messages else None
    return real


def _sum(session: Session, month: str, *, dry_run: bool) -> MonthlySummary:
    summary = MonthlySummary(month=month)
    channels: dict[str, dict[str, float]] = defaultdict(lambda: {"messages": 0, "cost_krw": 0.0})
    for entry in session.exec(select(CostEntry).where(CostEntry.month == month, CostEntry.dry_run == dry_run)):
        summary.messages += 1
        summary.cost_krw += entry.price_krw
        summary.baseline_krw += entry.baseline_krw
        channels[entry.channel]["messages"] += 1
        channels[entry.channel]["cost_krw"] += entry.price_krw
    summary.by_channel = {k: {"messages": int(v["messages"]), "cost_krw": round(v["cost_krw"], 2)}
                          for k, v in sorted(channels.items())}
    return summary
