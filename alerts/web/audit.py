"""The audit log: every change made through the console is one row (who, what, when, from where)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from alerts.web.models import AuditEntry


def record(session: Session, *, at: datetime, actor: str, action: str, target: str = "", client: str = "",
           detail: dict[str, Any] | None = None) -> AuditEntry:
    """Add an audit row in the caller's transaction, so the change and its record commit together."""
    entry = AuditEntry(at=at, actor=actor[:64], action=action[:64], target=target[:255], client=client[:64],
                       detail=detail or {})
    session.add(entry)
    return entry


def recent(session: Session, *, limit: int = 200, before_id: int | None = None,
           action: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if before_id is not None:
        query = query.where(col(AuditEntry.id) < before_id)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(session.exec(query))
