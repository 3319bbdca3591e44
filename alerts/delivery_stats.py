"""What became of one alert's messages, counted in SQL: the figures behind ``alimcast alerts show``.

Kept apart from the CLI so the web console can show the same figures. Every count is one
``GROUP BY`` over the outbox (``delivery``), never a row-by-row walk: a national fan-out has
hundreds of thousands of rows.

Vocabulary (one outbox row per person and alert version):

* matched — rows written for the alert (people it reached by zone, point or vessel);
* queued / sending — not yet taken by the provider (waiting, or in a request now);
* sent — taken by the provider (``sent_at`` set), whatever happened next;
* awaiting result — taken, no delivery result yet;
* delivered (AlimTalk), fell back (SMS/LMS, from the channel that carried it), failed (by reason),
  uncertain (sent, no receipt), suppressed (not sent: the warning ended or changed first);
* acknowledged — people who confirmed the warning (thread) this version belongs to (see
  :func:`count_acknowledged`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from alerts.models import AlertRecord, AlertThread, Delivery
from alerts.public.ack_stats import count_acks_by_alert

#: Statuses still moving towards the provider.
NOT_YET_SENT = ("queued", "sending")


@dataclass(slots=True)
class Reason:
    code: str | None
    reason: str
    count: int


@dataclass(slots=True)
class Counts:
    matched: int = 0
    queued: int = 0
    sending: int = 0
    sent: int = 0
    awaiting_result: int = 0
    delivered: int = 0
    fallback: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    uncertain: int = 0
    suppressed: int = 0
    acknowledged: int | None = None

    @property
    def fell_back(self) -> int:
        return sum(self.fallback.values())

    @property
    def finished(self) -> bool:
        """Nothing left to hand to the provider (results may still be coming in)."""
        return self.queued + self.sending == 0

    @property
    def handled(self) -> int:
        """Rows past the outbox: sent, or settled without a send (suppressed, refused)."""
        return self.matched - self.queued - self.sending


@dataclass(slots=True)
class Version:
    alert_id: int
    msg_type: str
    event: str
    severity: str
    received_at: datetime
    matched: int
    current: bool


@dataclass(slots=True)
class AlertDelivery:
    alert_id: int
    identifier: str
    sender: str
    event: str
    severity: str
    urgency: str
    msg_type: str
    headline: str | None
    received_at: datetime
    thread_id: int | None
    thread_state: str | None
    counts: Counts
    failed_by_reason: list[Reason]
    suppressed_by_reason: list[Reason]
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    versions: list[Version]

    @property
    def first_send_seconds(self) -> float | None:
        return None if self.first_sent_at is None else (self.first_sent_at - self.received_at).total_seconds()

    @property
    def last_send_seconds(self) -> float | None:
        return None if self.last_sent_at is None else (self.last_sent_at - self.received_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        counts = asdict(self.counts)
        counts["fell_back"] = self.counts.fell_back
        return {
            "alert": {"id": self.alert_id, "identifier": self.identifier, "sender": self.sender,
                      "event": self.event, "severity": self.severity, "urgency": self.urgency,
                      "msg_type": self.msg_type, "headline": self.headline,
                      "received_at": _iso(self.received_at), "thread_id": self.thread_id,
                      "thread_state": self.thread_state},
            "counts": counts,
            "failed_by_reason": [asdict(r) for r in self.failed_by_reason],
            "suppressed_by_reason": [asdict(r) for r in self.suppressed_by_reason],
            "timing": {"first_sent_at": _iso(self.first_sent_at), "last_sent_at": _iso(self.last_sent_at),
                       "first_send_seconds": self.first_send_seconds, "last_send_seconds": self.last_send_seconds},
            "versions": [{**asdict(v), "received_at": _iso(v.received_at)} for v in self.versions],
        }


@dataclass(slots=True)
class AlertSummary:
    """One line of ``alerts list``."""

    alert_id: int
    received_at: datetime
    event: str
    severity: str
    msg_type: str
    thread_state: str | None
    counts: Counts

    def to_json(self) -> dict[str, Any]:
        counts = asdict(self.counts)
        counts["fell_back"] = self.counts.fell_back
        return {"id": self.alert_id, "received_at": _iso(self.received_at), "event": self.event,
                "severity": self.severity, "msg_type": self.msg_type, "thread_state": self.thread_state,
                "counts": counts}


def count_acknowledged(session: Session, alert_ids: Sequence[int]) -> dict[int, int]:
    """People who confirmed the warning each alert id belongs to (:func:`alerts.public.ack_stats.count_acks_by_alert`).

    A direct call, not a hook another module fills in: the acknowledgement table ships with every database
    (migration 0007), so there is no install in which the figure is unknown, and a module-level hook set at
    import time would make the figure depend on which modules happened to be imported first."""
    return count_acks_by_alert(session, list(alert_ids))


def status_counts(session: Session, alert_ids: Sequence[int]) -> dict[int, Counts]:
    """Counts per alert id, from two GROUP BY queries (status x channel, and sent/not sent)."""
    out: dict[int, Counts] = {a: Counts() for a in alert_ids}
    if not alert_ids:
        return out
    by_status = select(Delivery.alert_id, Delivery.status, Delivery.channel, func.count()).where(
        col(Delivery.alert_id).in_(list(alert_ids))).group_by(Delivery.alert_id, Delivery.status, Delivery.channel)
    for alert_id, status, channel, n in session.exec(by_status):
        c = out[alert_id]
        c.matched += n
        if status == "fallback_sent":
            key = channel or "unknown"
            c.fallback[key] = c.fallback.get(key, 0) + n
        elif status == "accepted":
            c.awaiting_result += n
        elif status in ("queued", "sending", "delivered", "failed", "uncertain", "suppressed"):
            setattr(c, status, getattr(c, status) + n)
    sent = select(Delivery.alert_id, func.count()).where(
        col(Delivery.alert_id).in_(list(alert_ids)), col(Delivery.sent_at).is_not(None)).group_by(Delivery.alert_id)
    for alert_id, n in session.exec(sent):
        out[alert_id].sent = n
    acks = count_acknowledged(session, alert_ids)
    for alert_id in alert_ids:
        out[alert_id].acknowledged = acks.get(alert_id, 0)
    return out


def _reasons(session: Session, alert_id: int, status: str) -> list[Reason]:
    reason = func.coalesce(Delivery.result_message, Delivery.last_error, "")
    stmt = (select(Delivery.result_code, reason, func.count()).where(Delivery.alert_id == alert_id,
                                                                        Delivery.status == status)
            .group_by(Delivery.result_code, reason).order_by(func.count().desc()))
    return [Reason(code, text or "(no reason given)", n) for code, text, n in session.exec(stmt)]


def alert_delivery(session: Session, alert_id: int) -> AlertDelivery | None:
    """Everything ``alerts show`` prints for one alert, or None when there is no such alert."""
    alert = session.get(AlertRecord, alert_id)
    if alert is None:
        return None
    thread = session.get(AlertThread, alert.thread_id) if alert.thread_id is not None else None
    counts = status_counts(session, [alert_id])[alert_id]
    first, last = session.exec(select(func.min(Delivery.sent_at), func.max(Delivery.sent_at))
                               .where(Delivery.alert_id == alert_id)).one()
    versions: list[Version] = []
    if alert.thread_id is not None:
        matched = dict(session.exec(select(Delivery.alert_id, func.count()).where(
            Delivery.thread_id == alert.thread_id).group_by(Delivery.alert_id)).all())
        for v in session.exec(select(AlertRecord).where(AlertRecord.thread_id == alert.thread_id)
                              .order_by(col(AlertRecord.received_at), col(AlertRecord.id))):
            versions.append(Version(v.id or 0, v.msg_type, v.event, v.severity, v.received_at,
                                    matched.get(v.id, 0), thread is not None and thread.current_alert_id == v.id))
    return AlertDelivery(
        alert_id=alert_id, identifier=alert.identifier, sender=alert.sender, event=alert.event,
        severity=alert.severity, urgency=alert.urgency, msg_type=alert.msg_type, headline=alert.headline,
        received_at=alert.received_at, thread_id=alert.thread_id, thread_state=thread.state if thread else None,
        counts=counts, failed_by_reason=_reasons(session, alert_id, "failed"),
        suppressed_by_reason=_reasons(session, alert_id, "suppressed"),
        first_sent_at=first, last_sent_at=last, versions=versions,
    )


def recent_alerts(session: Session, limit: int = 20) -> list[AlertSummary]:
    """The most recently received alerts with their counts, newest first."""
    alerts = list(session.exec(select(AlertRecord).order_by(col(AlertRecord.received_at).desc(),
                                                            col(AlertRecord.id).desc()).limit(limit)))
    ids = [a.id for a in alerts if a.id is not None]
    counts = status_counts(session, ids)
    thread_ids = {a.thread_id for a in alerts if a.thread_id is not None}
    states = dict(session.exec(select(AlertThread.id, AlertThread.state)
                               .where(col(AlertThread.id).in_(thread_ids))).all()) if thread_ids else {}
    return [AlertSummary(a.id or 0, a.received_at, a.event, a.severity, a.msg_type, states.get(a.thread_id),
                         counts[a.id or 0]) for a in alerts]


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None
