"""Reconciliation: our ledger's counts and amounts by final status and channel, against the provider's own
result counts for the same month, with every difference listed.

NHN's message list gives each message's status (COMPLETED / FAILED), Kakao result code and fallback
status (RSC04 sent, RSC05 failed) but not the fallback type, so fallbacks are compared as one line
(SMS + LMS). A difference means an invoice line to check: a message the provider billed that we think
failed, or one we priced that it never carried.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from alerts.cost_report import FAILED, month_bounds
from alerts.models import CostEntry, Delivery
from alerts.pricing import from_units, money

#: NHN lists at most 30 days per query.
LIST_WINDOW = timedelta(days=15)


def provider_line(row: dict[str, Any]) -> str:
    """One NHN list row -> the reconciliation line it counts in."""
    status, code, resend = row.get("messageStatus"), str(row.get("resultCode") or ""), row.get("resendStatus")
    if status == "COMPLETED" or code == "1000":
        return "delivered/alimtalk"
    if code == "3005":
        return "uncertain/alimtalk"
    if resend == "RSC04":
        return "fallback_sent/sms+lms"
    if status == "FAILED":
        return "failed/-"
    return "pending/-"


def _our_line(status: str | None, channel: str | None) -> str:
    if status == "fallback_sent" or channel in ("sms", "lms"):
        return "fallback_sent/sms+lms"
    if status == "failed":
        return "failed/-"
    return f"{status or 'delivered'}/alimtalk"


@dataclass(slots=True)
class Reconciliation:
    month: str
    provider: str
    #: Our side, detailed: (status, channel) -> messages, amount.
    ours_detail: dict[tuple[str, str], tuple[int, Decimal]] = field(default_factory=dict)
    ours: Counter[str] = field(default_factory=Counter)
    theirs: Counter[str] = field(default_factory=Counter)

    @property
    def differences(self) -> list[dict[str, Any]]:
        out = []
        for line in sorted(set(self.ours) | set(self.theirs)):
            if self.ours[line] != self.theirs[line]:
                out.append({"line": line, "ours": self.ours[line], "provider": self.theirs[line],
                            "difference": self.ours[line] - self.theirs[line]})
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month, "provider": self.provider,
            "ours": [{"status": s, "channel": c, "messages": n, "amount_krw": money(a)}
                     for (s, c), (n, a) in sorted(self.ours_detail.items())],
            "ours_by_line": dict(sorted(self.ours.items())), "provider_by_line": dict(sorted(self.theirs.items())),
            "differences": self.differences,
        }


def our_side(session: Session, month: str, provider: str) -> Reconciliation:
    rec = Reconciliation(month=month, provider=provider)
    for status, channel, n, amount in session.exec(
        select(CostEntry.status, CostEntry.channel, func.count(), func.sum(CostEntry.price_e4))
        .where(CostEntry.month == month, CostEntry.dry_run == False, CostEntry.provider == provider)  # noqa: E712
        .group_by(CostEntry.status, CostEntry.channel)
    ).all():
        rec.ours_detail[(status or "?", channel)] = (n, from_units(amount))
        rec.ours[_our_line(status, channel)] += n
    start, end = month_bounds(month)
    failed = session.exec(
        select(func.count()).where(FAILED, Delivery.provider == provider,
                                   col(Delivery.finished_at) >= start, col(Delivery.finished_at) < end)
    ).one()
    if failed:
        rec.ours_detail[("failed", "-")] = (failed, Decimal(0))
        rec.ours["failed/-"] += failed
    return rec


def provider_side(rec: Reconciliation, list_messages: Any, now: datetime) -> Reconciliation:
    """Count the provider's own results: ``list_messages(start, end)`` returns its rows for a window."""
    start, end = month_bounds(rec.month)
    end = min(end, now + timedelta(minutes=1))
    cursor = start
    while cursor < end:
        stop = min(cursor + LIST_WINDOW, end)
        for row in list_messages(cursor, stop):
            rec.theirs[provider_line(row)] += 1
        cursor = stop
    return rec


def nhn_lister(provider: Any) -> Any:
    """``list_messages`` over NHN's documented date-range list (``startRequestDate``/``endRequestDate``)."""
    from alerts.render import KST

    def list_messages(start: datetime, end: datetime) -> list[dict[str, Any]]:
        # the API's dates are minutes, end inclusive: stop a minute short so windows do not overlap
        last = end - timedelta(minutes=1)
        return provider._list_all({"startRequestDate": start.astimezone(KST).strftime("%Y-%m-%d %H:%M"),
                                   "endRequestDate": last.astimezone(KST).strftime("%Y-%m-%d %H:%M")})
    return list_messages
