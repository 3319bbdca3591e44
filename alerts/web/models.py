"""Console tables: people who log in, their sessions, login attempts (for throttling) and the audit log.

Sessions and attempts live in the database, not in process memory, so several ``alimcast serve`` workers on
PostgreSQL share logins and throttles. A session row stores only the SHA-256 of the cookie's token: a copy of
the table does not let anyone log in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from subscribers.sqltypes import JSONType, UTCDateTime, utcnow

ROLES = ("viewer", "operator", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}


class WebUser(SQLModel, table=True):
    __tablename__ = "web_user"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    #: argon2id hash in PHC string form ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash: str = Field(max_length=255)
    role: str = Field(default="viewer", max_length=16)
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class WebSession(SQLModel, table=True):
    __tablename__ = "web_session"

    #: SHA-256 (hex) of the random token in the cookie.
    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="web_user.id", index=True)
    #: The synchronizer token every unsafe request of this session must carry.
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    client: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=200)


class LoginAttempt(SQLModel, table=True):
    __tablename__ = "web_login_attempt"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    username: str = Field(max_length=64, index=True)
    client: str = Field(max_length=64, index=True)
    success: bool = False


class AuditEntry(SQLModel, table=True):
    """Who did what, when, from where: every change made through the console (and the users CLI)."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64, index=True)
    target: str = Field(default="", max_length=255)
    client: str = Field(default="", max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))


class ConsoleNotice(SQLModel, table=True):
    """A notice composed in the console: waiting for a second operator (Extreme, when configured), or sent.

    Sent notices are ordinary alerts (``alert.feed == "console"``); this row remembers who composed and who
    approved them, and holds the CAP body of a notice still waiting for approval.
    """

    __tablename__ = "console_notice"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by: str = Field(max_length=64)
    #: "pending" (waiting for approval), "sent", "rejected".
    state: str = Field(default="pending", max_length=16, index=True)
    msg_type: str = Field(default="Alert", max_length=16)
    #: The canonical alert (``feeds.model.Alert.to_json``) to ingest once approved.
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    alert_id: int | None = Field(default=None, index=True)
