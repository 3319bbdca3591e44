"""What one alert's fan-out costs, before or while it goes out, against the old SMS/LMS route.

Messages already finished are taken from the ledger as billed. Those still queued or in flight are priced
with the model in shared/reference/alimtalk.md: ``r·P_alimtalk + (1−r)·P_fallback`` against
``P_baseline``, where ``r`` is the AlimTalk reach measured over the last 90 days of real sends (the
reference's 80% when there is no history yet) and the fallback type is the one the row will use (the
short SMS form or the full text by length).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from alerts.costs import baseline_channel
from alerts.models import AlertRecord, CostEntry, Delivery, DeliveryMessage
from alerts.pricing import PriceBook, from_units, money

#: AlimTalk reach assumed when the ledger has no real sends yet (the reference's public-sector check).
DEFAULT_REACH = Decimal("0.8")
REACH_WINDOW = timedelta(days=90)
PENDING_STATUSES = ("queued", "sending", "accepted")


@dataclass(slots=True)
class Estimate:
    alert_id: int
    recipients: int
    finished: int
    pending: int
    failed: int
    billed_krw: Decimal
    pending_krw: Decimal
    baseline_krw: Decimal
    reach: Decimal
    reach_source: str

    @property
    def total_krw(self) -> Decimal:
        return self.billed_krw + self.pending_krw

    @property
    def saving_krw(self) -> Decimal:
        return self.baseline_krw - self.total_krw

    def to_json(self) -> dict[str, Any]:
        ratio = None if self.baseline_krw == 0 else round(float(self.saving_krw / self.baseline_krw), 4)
        return {"alert_id": self.alert_id, "recipients": self.recipients, "finished": self.finished,
                "pending": self.pending, "failed_not_billed": self.failed, "billed_krw": money(self.billed_krw),
                "pending_estimate_krw": money(self.pending_krw.quantize(Decimal("0.0001"))),
                "total_estimate_krw": money(self.total_krw.quantize(Decimal("0.0001"))),
                "baseline_krw": money(self.baseline_krw.quantize(Decimal("0.0001"))),
                "saving_krw": money(self.saving_krw.quantize(Decimal("0.0001"))), "saving_ratio": ratio,
                "reach_assumed": float(self.reach), "reach_source": self.reach_source}


def measured_reach(session: Session, now: datetime) -> tuple[Decimal, str]:
    """Share of real messages AlimTalk carried over the last 90 days, or the default."""
    rows = dict(session.exec(
        select(CostEntry.channel, func.count())
        .where(CostEntry.dry_run == False, col(CostEntry.created_at) >= now - REACH_WINDOW)  # noqa: E712
        .group_by(CostEntry.channel)
    ).all())
    total = sum(rows.values())
    if not total:
        return DEFAULT_REACH, "default (no real sends in the last 90 days)"
    return Decimal(rows.get("alimtalk", 0)) / Decimal(total), f"measured over {total:,} messages, last 90 days"


def estimate_alert(session: Session, alert_id: int, book: PriceBook, provider: str, now: datetime) -> Estimate:
    if session.get(AlertRecord, alert_id) is None:
        raise LookupError(f"alert {alert_id}: no such alert")
    billed_n, billed, billed_base = session.exec(
        select(func.count(), func.sum(CostEntry.price_e4), func.sum(CostEntry.baseline_e4))
        .where(CostEntry.alert_id == alert_id)
    ).one()
    counts = dict(session.exec(
        select(Delivery.status, func.count()).where(Delivery.alert_id == alert_id).group_by(Delivery.status)
    ).all())
    reach, source = measured_reach(session, now)
    entry = book.entry_at(provider, now)
    pending_cost, pending_base, pending = Decimal(0), Decimal(0), 0
    # Pending rows share a few texts: group them by (fallback kind, text) in the database.
    for kind, text, n in session.exec(
        select(DeliveryMessage.fallback_kind, DeliveryMessage.text, func.count())
        .select_from(Delivery).join(DeliveryMessage, col(DeliveryMessage.id) == col(Delivery.message_id))
        .where(Delivery.alert_id == alert_id, col(Delivery.status).in_(PENDING_STATUSES))
        .group_by(DeliveryMessage.fallback_kind, DeliveryMessage.text)
    ).all():
        fallback = (kind or "LMS").lower()
        base = baseline_channel(Delivery(text=text, fallback_kind=kind, alert_id=0, thread_id=0, subscriber_id=0),
                                book.baseline_mode)
        per = reach * entry.alimtalk + (1 - reach) * entry.of(fallback)
        pending_cost += per * n
        pending_base += entry.of(base) * n
        pending += n
    return Estimate(
        alert_id=alert_id, recipients=sum(counts.values()), finished=int(billed_n or 0), pending=pending,
        failed=counts.get("failed", 0), billed_krw=from_units(billed), pending_krw=pending_cost,
        baseline_krw=from_units(billed_base) + pending_base, reach=reach, reach_source=source)
