"""A month's cost report, summed in the database.

One GROUP BY over the month's rollup (``cost_rollup``, kept by triggers on the ledger: migration 0006) gives
every figure a manager reads (messages, cost, baseline, fallbacks by type, what the short SMS form saved); a
count of ``cost_recipient`` gives the distinct recipients, a third query the failures, which are never
billed and so are not in the ledger. Breakdowns by feed, hazard, zone and provider group the ledger itself.
Money is summed as integers (1/10,000 KRW) and turned into :class:`~decimal.Decimal` once: a month of five
million rows adds up to the won.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from alerts.models import AlertRecord, CostEntry, CostRecipient, CostRollup, Delivery
from alerts.pricing import PriceBook, from_units, money
from alerts.render import KST, split_event
from subscribers.models import Subscription

BREAKDOWNS = ("channel", "feed", "zone", "hazard", "provider")
#: Written out, not bound: SQLite uses the partial index ix_delivery_failed_finished only for a literal.
FAILED = text("delivery.status = 'failed'")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a KST month, as aware datetimes."""
    year, mon = (int(p) for p in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=KST)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=KST)
    return start, end


def previous_year(month: str) -> str:
    year, mon = month.split("-")
    return f"{int(year) - 1:04d}-{mon}"


@dataclass(slots=True)
class Figures:
    """Messages and money of one slice (a month, a channel, a feed...)."""

    messages: int = 0
    cost_krw: Decimal = Decimal(0)
    baseline_krw: Decimal = Decimal(0)

    @property
    def saving_krw(self) -> Decimal:
        return self.baseline_krw - self.cost_krw

    @property
    def saving_ratio(self) -> float | None:
        return None if self.baseline_krw == 0 else float(self.saving_krw / self.baseline_krw)

    def to_json(self) -> dict[str, Any]:
        ratio = self.saving_ratio
        return {"messages": self.messages, "cost_krw": money(self.cost_krw), "baseline_krw": money(self.baseline_krw),
                "saving_krw": money(self.saving_krw), "saving_ratio": None if ratio is None else round(ratio, 4)}


@dataclass(slots=True)
class MonthlySummary:
    """One month's messages and cost, against the SMS/LMS baseline. A manager's figures are real sends only;
    what a dry run would have cost is summed apart (``simulated``), never into the totals."""

    month: str
    messages: int = 0
    cost_krw: Decimal = Decimal(0)
    baseline_krw: Decimal = Decimal(0)
    by_channel: dict[str, dict[str, Any]] = field(default_factory=dict)
    recipients: int = 0
    #: Messages carried by AlimTalk (delivered or sent without receipt).
    alimtalk_messages: int = 0
    fallbacks: dict[str, int] = field(default_factory=lambda: {"sms": 0, "lms": 0})
    uncertain: int = 0
    #: Failed deliveries finished this month: not billed, so not in the ledger.
    failures: int = 0
    short_sms_messages: int = 0
    short_sms_saving_krw: Decimal = Decimal(0)
    vat_included_prices: bool = False
    simulated: MonthlySummary | None = None
    #: The same month a year before: from the ledger, else from an old invoice (``[[baseline.invoices]]``).
    last_year: dict[str, Any] | None = None
    breakdown: str | None = None
    groups: dict[str, Figures] = field(default_factory=dict)

    @property
    def saving_krw(self) -> Decimal:
        return self.baseline_krw - self.cost_krw

    @property
    def saving_ratio(self) -> float | None:
        return None if self.baseline_krw == 0 else float(self.saving_krw / self.baseline_krw)

    @property
    def reach(self) -> float | None:
        """Share of messages delivered by AlimTalk (the rest fell back to SMS/LMS)."""
        return None if self.messages == 0 else self.alimtalk_messages / self.messages

    def to_json(self) -> dict[str, Any]:
        ratio = self.saving_ratio
        return {
            "month": self.month, "messages": self.messages, "cost_krw": money(self.cost_krw),
            "baseline_krw": money(self.baseline_krw), "saving_krw": money(self.saving_krw),
            "saving_ratio": None if ratio is None else round(ratio, 4), "by_channel": self.by_channel,
            "recipients": self.recipients, "alimtalk_reach": None if self.reach is None else round(self.reach, 4),
            "fallbacks": dict(self.fallbacks), "uncertain": self.uncertain, "failures_not_billed": self.failures,
            "short_sms": {"messages": self.short_sms_messages, "saving_krw": money(self.short_sms_saving_krw)},
            "vat": "excluded",
        }

    def report_json(self) -> dict[str, Any]:
        """The figures, plus ``simulated`` (the dry run's figures, or null), ``last_year`` and ``by``."""
        out = {**self.to_json(), "simulated": self.simulated.to_json() if self.simulated is not None else None,
               "last_year": self.last_year}
        if self.breakdown:
            out["by"] = self.breakdown
            out["groups"] = {name: fig.to_json() for name, fig in self.groups.items()}
        return out


def monthly_summary(session: Session, month: str, book: PriceBook | None = None,
                    by: str | None = None) -> MonthlySummary:
    """Real sends of ``month`` (KST); dry-run rows go into ``simulated`` when there are any."""
    real, dry = MonthlySummary(month=month), MonthlySummary(month=month)
    rows = session.exec(
        select(CostRollup.dry_run, CostRollup.channel, CostRollup.status, func.sum(CostRollup.messages),
               func.sum(CostRollup.price_e4), func.sum(CostRollup.baseline_e4), func.sum(CostRollup.short_messages),
               func.sum(CostRollup.short_e4))
        .where(CostRollup.month == month)
        .group_by(CostRollup.dry_run, CostRollup.channel, CostRollup.status)
    ).all()
    for dry_run, channel, status, n, price, baseline, short_n, short_saving in rows:
        if not n:
            continue  # counted in and out again (a ledger row changed or removed)
        target = dry if dry_run else real
        n = int(n)
        target.messages += n
        target.cost_krw += from_units(price)
        target.baseline_krw += from_units(baseline)
        ch = target.by_channel.setdefault(channel, {"messages": 0, "cost_krw": Decimal(0)})
        ch["messages"] += n
        ch["cost_krw"] += from_units(price)
        if channel == "alimtalk":
            target.alimtalk_messages += n
        elif channel in target.fallbacks:
            target.fallbacks[channel] += n
        if status == "uncertain":
            target.uncertain += n
        target.short_sms_messages += int(short_n or 0)
        target.short_sms_saving_krw += from_units(short_saving)
    for target in (real, dry):
        target.by_channel = {k: {"messages": v["messages"], "cost_krw": money(v["cost_krw"])}
                             for k, v in sorted(target.by_channel.items())}
    for dry_run, n in session.exec(
        select(CostRecipient.dry_run, func.count()).where(CostRecipient.month == month)
        .group_by(CostRecipient.dry_run)
    ).all():
        (dry if dry_run else real).recipients = n
    start, end = month_bounds(month)
    for provider, n in session.exec(
        select(Delivery.provider, func.count()).where(FAILED, col(Delivery.finished_at) >= start,
                                                       col(Delivery.finished_at) < end)
        .group_by(Delivery.provider)
    ).all():
        (dry if provider == "dryrun" else real).failures += n
    if book is not None:
        real.vat_included_prices = book.vat_included_anywhere()
    real.last_year = last_year(session, month, book)
    if by and by != "channel":
        real.breakdown, real.groups = by, breakdown(session, month, by)
    elif by == "channel":
        real.breakdown = "channel"
        real.groups = _channel_groups(session, month)
    real.simulated = dry if dry.messages else None
    return real


def last_year(session: Session, month: str, book: PriceBook | None) -> dict[str, Any] | None:
    """The same month a year before, from the ledger when alimcast was running then, else from an invoice."""
    before = previous_year(month)
    n, cost = session.exec(
        select(func.sum(CostRollup.messages), func.sum(CostRollup.price_e4))
        .where(CostRollup.month == before, CostRollup.dry_run == False)  # noqa: E712
    ).one()
    if n:
        return {"month": before, "messages": int(n), "cost_krw": money(from_units(cost)), "source": "ledger"}
    invoice = book.invoice(before) if book is not None else None
    if invoice is not None:
        return {"month": before, "messages": invoice.messages, "cost_krw": money(invoice.cost),
                "source": "invoice", "note": invoice.note}
    return None


def _channel_groups(session: Session, month: str) -> dict[str, Figures]:
    groups: dict[str, Figures] = {}
    for channel, n, price, baseline in session.exec(
        select(CostRollup.channel, func.sum(CostRollup.messages), func.sum(CostRollup.price_e4),
               func.sum(CostRollup.baseline_e4))
        .where(CostRollup.month == month, CostRollup.dry_run == False)  # noqa: E712
        .group_by(CostRollup.channel)
    ).all():
        if n:
            groups[channel] = Figures(int(n), from_units(price), from_units(baseline))
    return dict(sorted(groups.items()))


def breakdown(session: Session, month: str, by: str) -> dict[str, Figures]:
    """Real sends of the month grouped by feed, hazard, zone or provider (summed in the database).

    ``zone``: the recipient's subscribed zones; a person subscribed to several zones is counted in each,
    so zone rows can add up to more than the month (vessel and point subscribers appear as such)."""
    if by not in BREAKDOWNS:
        raise ValueError(f"--by {by!r}: use one of {', '.join(BREAKDOWNS)}")
    if by == "channel":
        return _channel_groups(session, month)
    real = (CostEntry.month == month, CostEntry.dry_run == False)  # noqa: E712
    sums = (func.count(), func.sum(CostEntry.price_e4), func.sum(CostEntry.baseline_e4))
    if by == "provider":
        stmt = select(CostEntry.provider, *sums).where(*real).group_by(CostEntry.provider)
    elif by in ("feed", "hazard"):
        key = AlertRecord.feed if by == "feed" else AlertRecord.event
        stmt = (select(key, *sums).join(AlertRecord, col(AlertRecord.id) == CostEntry.alert_id, isouter=True)
                .where(*real).group_by(key))
    else:
        zone = func.coalesce(Subscription.zone_code, "(" + Subscription.kind + ")")
        stmt = (select(zone, *sums)
                .join(Subscription, col(Subscription.subscriber_id) == CostEntry.subscriber_id, isouter=True)
                .where(*real).group_by(zone))
    groups: dict[str, Figures] = {}
    for key_value, n, price, baseline in session.exec(stmt).all():
        name = str(key_value) if key_value is not None else "(unknown)"
        if by == "hazard" and key_value:
            name = split_event(str(key_value))[0]
        fig = groups.setdefault(name, Figures())
        fig.messages += n
        fig.cost_krw += from_units(price)
        fig.baseline_krw += from_units(baseline)
    return dict(sorted(groups.items(), key=lambda kv: -kv[1].cost_krw))


def monthly_series(session: Session, months: list[str], book: PriceBook | None) -> list[dict[str, Any]]:
    """Cost and baseline for each month (real sends), with invoices for months before adoption."""
    found = {m: (int(n), from_units(p), from_units(b)) for m, n, p, b in session.exec(
        select(CostRollup.month, func.sum(CostRollup.messages), func.sum(CostRollup.price_e4),
               func.sum(CostRollup.baseline_e4))
        .where(col(CostRollup.month).in_(months), CostRollup.dry_run == False)  # noqa: E712
        .group_by(CostRollup.month)
    ).all() if n}
    series = []
    for m in months:
        if m in found:
            n, cost, baseline = found[m]
            series.append({"month": m, "messages": n, "cost_krw": cost, "baseline_krw": baseline,
                           "source": "ledger"})
            continue
        invoice = book.invoice(m) if book is not None else None
        if invoice is not None:
            series.append({"month": m, "messages": invoice.messages, "cost_krw": invoice.cost,
                           "baseline_krw": invoice.cost, "source": "invoice"})
        else:
            series.append({"month": m, "messages": 0, "cost_krw": Decimal(0), "baseline_krw": Decimal(0),
                           "source": None})
    return series
