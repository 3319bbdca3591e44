"""Read models for the console: live alerts with their delivery progress, queue depth, provider state, feeds.

Everything is read from the tables the job writes (alerts, threads, the delivery outbox, the cost ledger,
feed state), so the console shows the same truth whichever process sends, and needs no line to the job.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from alerts.config import Config
from alerts.feedstate import DbFeedStateStore
from alerts.models import AlertRecord, AlertThread, CostEntry, Delivery
from alerts.web.ack_view import acknowledged_by
from feeds.model import SEVERITY_RANK
from subscribers.geo_models import ZonePolygon

#: How far a recent failure colours the provider's state.
RECENT = timedelta(minutes=15)


@dataclass
class Progress:
    """Delivery counts of one alert version or one whole warning (thread)."""

    by_status: Counter[str] = field(default_factory=Counter)
    #: People who confirmed the warning (``alerts.web.ack_view.acknowledged_by``); None only for a bare Progress().
    acknowledged: int | None = None

    @property
    def matched(self) -> int:
        return sum(self.by_status.values())

    @property
    def queued(self) -> int:
        return self.by_status["queued"]

    @property
    def sent(self) -> int:
        """Handed to the provider (accepted, and every outcome since)."""
        return sum(self.by_status[s] for s in ("sending", "accepted", "delivered", "fallback_sent", "failed",
                                                "uncertain"))

    @property
    def delivered(self) -> int:
        return self.by_status["delivered"]

    @property
    def fell_back(self) -> int:
        return self.by_status["fallback_sent"]

    @property
    def failed(self) -> int:
        return self.by_status["failed"] + self.by_status["uncertain"]

    @property
    def suppressed(self) -> int:
        return self.by_status["suppressed"]

    @property
    def done(self) -> int:
        return self.delivered + self.fell_back + self.failed + self.suppressed

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.matched) if self.matched else 0

    def to_json(self) -> dict[str, Any]:
        return {"matched": self.matched, "queued": self.queued, "sent": self.sent, "delivered": self.delivered,
                "fell_back": self.fell_back, "failed": self.failed, "suppressed": self.suppressed,
                "acknowledged": self.acknowledged, "percent": self.percent}


@dataclass
class LiveAlert:
    thread_id: int
    record: AlertRecord
    progress: Progress

    @property
    def severity(self) -> str:
        return self.record.severity

    @property
    def title(self) -> str:
        return self.record.headline or self.record.event or self.record.identifier


def progress_by(session: Session, column: Any, ids: list[int]) -> dict[int, Progress]:
    """Counts per thread (``Delivery.thread_id``) or per alert version (``Delivery.alert_id``)."""
    out: dict[int, Progress] = {i: Progress() for i in ids}
    if not ids:
        return out
    rows = session.exec(select(column, Delivery.status, func.count()).where(col(column).in_(ids))
                        .group_by(column, Delivery.status))
    for key, status, n in rows:
        out[key].by_status[status] = n
    acks = acknowledged_by(session, column, ids)
    for key, progress in out.items():
        progress.acknowledged = acks.get(key, 0)
    return out


def live_alerts(session: Session, now: datetime) -> list[LiveAlert]:
    """Active warnings not yet past their end, most severe first, then newest."""
    rows = session.exec(
        select(AlertThread, AlertRecord).join(AlertRecord, col(AlertRecord.id) == col(AlertThread.current_alert_id))
        .where(AlertThread.state == "active")
        .where(or_(col(AlertThread.end_time).is_(None), col(AlertThread.end_time) > now))
    ).all()
    progress = progress_by(session, Delivery.thread_id, [t.id for t, _ in rows if t.id is not None])
    out = [LiveAlert(thread_id=t.id, record=r, progress=progress[t.id]) for t, r in rows if t.id is not None]
    out.sort(key=lambda a: (-SEVERITY_RANK.get(a.severity, 0), -a.record.sent.timestamp()))
    return out


def zone_outlines(session: Session) -> dict[str, Any]:
    """Every imported zone outline (code -> shapely geometry) for the map."""
    import shapely

    return {z.code: shapely.from_wkb(z.geometry) for z in session.exec(select(ZonePolygon))}


@dataclass
class QueueState:
    due: int
    held: int
    sending: int
    retrying: int


def queue_state(session: Session, now: datetime) -> QueueState:
    def count(*where: Any) -> int:
        return session.exec(select(func.count()).select_from(Delivery).where(*where)).one()

    queued = Delivery.status == "queued"
    return QueueState(
        due=count(queued, or_(col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now)),
        held=count(queued, col(Delivery.next_attempt_at) > now),
        sending=count(Delivery.status == "sending"),
        retrying=count(queued, col(Delivery.attempts) > 0),
    )


@dataclass
class ProviderState:
    kind: str
    state: str  # "ok", "retrying", "failing", "idle"
    last_sent_at: datetime | None
    last_error: str | None
    failed_recently: int


def provider_state(session: Session, config: Config, now: datetime, queue: QueueState) -> ProviderState:
    last_sent = session.exec(select(func.max(Delivery.sent_at))).one()
    failed_recently = session.exec(select(func.count()).select_from(Delivery).where(
        Delivery.status == "failed", col(Delivery.finished_at) >= now - RECENT)).one()
    error_row = session.exec(select(Delivery.last_error).where(col(Delivery.last_error).is_not(None),
                                                               Delivery.status == "queued")
                             .order_by(col(Delivery.id).desc()).limit(1)).first()
    if queue.retrying:
        state = "retrying"
    elif failed_recently:
        state = "failing"
    elif last_sent is None:
        state = "idle"
    else:
        state = "ok"
    return ProviderState(kind=config.provider.kind, state=state, last_sent_at=last_sent, last_error=error_row,
                         failed_recently=failed_recently)


@dataclass
class FeedRow:
    name: str
    kind: str
    enabled: bool
    interval_seconds: float
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failures: int
    healthy: bool


def feed_rows(config: Config, engine: Any) -> list[FeedRow]:
    states = {s.name: s for s in DbFeedStateStore(engine).all()}
    rows = []
    for feed in config.feeds:
        s = states.get(feed.name)
        rows.append(FeedRow(name=feed.name, kind=feed.kind, enabled=feed.enabled,
                            interval_seconds=feed.interval_seconds,
                            last_success_at=s.last_success_at if s else None, last_error=s.last_error if s else None,
                            last_error_at=s.last_error_at if s else None, failures=s.consecutive_failures if s else 0,
                            healthy=bool(s and s.last_success_at and s.consecutive_failures == 0)))
    return rows


@dataclass
class CostSoFar:
    messages: int
    cost_krw: float
    baseline_krw: float

    @property
    def saving_krw(self) -> float:
        return self.baseline_krw - self.cost_krw


def cost_of(session: Session, *, thread_id: int | None = None, alert_id: int | None = None) -> CostSoFar:
    query = select(func.count(), func.coalesce(func.sum(CostEntry.price_krw), 0.0),
                   func.coalesce(func.sum(CostEntry.baseline_krw), 0.0)).join(
        Delivery, col(Delivery.id) == col(CostEntry.delivery_id))
    if thread_id is not None:
        query = query.where(Delivery.thread_id == thread_id)
    if alert_id is not None:
        query = query.where(Delivery.alert_id == alert_id)
    n, cost, baseline = session.exec(query).one()
    return CostSoFar(messages=n, cost_krw=float(cost), baseline_krw=float(baseline))
