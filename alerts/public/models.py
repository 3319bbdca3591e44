"""Tables of the public side: personal links, acknowledgements, verification codes, throttling events.

Why these shapes:

* A link's token is never stored, only its SHA-256 (``token_hash``): a leaked database or backup gives
  nobody a working link. A token is 32 random bytes (``secrets.token_urlsafe``), so a plain hash is
  enough (nothing to brute-force), and lookups stay one indexed equality.
* A link names exactly one person (and, for an acknowledgement link, one warning thread): it can show
  or change nothing else, and it carries no phone number or id an attacker could vary.
* An acknowledgement is one row per (warning thread, person): the person confirmed the warning, whatever
  version they were looking at (``alert_id`` records which). Opening a link records nothing; only the
  confirmation POST writes this row, because link previews and mail scanners open links too.
* Verification codes are six digits, so they are stored with a per-row salt and expire in minutes; every
  send and every failed try is a :class:`PublicThrottleEvent`, counted in a window per phone (hashed) and
  per client address, in the database so several workers share the limits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from subscribers.sqltypes import UTCDateTime, utcnow

LINK_PURPOSES = ("ack", "manage")
ACK_HOWS = ("link", "operator")


class PersonalLink(SQLModel, table=True):
    """``/a/<token>`` (purpose ``ack``: one warning thread) or ``/u/<token>`` (``manage``: the subscription)."""

    __tablename__ = "personal_link"
    __table_args__ = (Index("ix_personal_link_thread_subscriber", "thread_id", "subscriber_id"),)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    purpose: str = Field(max_length=8)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    thread_id: int | None = Field(default=None, foreign_key="alert_thread.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    #: Manage links expire after a fixed time; acknowledgement links with their warning (checked on use).
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class Acknowledgement(SQLModel, table=True):
    __tablename__ = "acknowledgement"
    __table_args__ = (UniqueConstraint("thread_id", "subscriber_id", name="uq_ack_thread_subscriber"),)

    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(foreign_key="alert_thread.id", index=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    #: The version the person had open when they confirmed.
    alert_id: int | None = Field(default=None, foreign_key="alert.id")
    acked_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    #: ``link`` (the 확인 button) or ``operator`` (confirmed by radio, recorded in the console).
    how: str = Field(default="link", max_length=16)


class VerificationCode(SQLModel, table=True):
    """One code sent to one phone for one subscription attempt (``ticket_hash`` ties it to that browser)."""

    __tablename__ = "verification_code"

    id: int | None = Field(default=None, primary_key=True)
    #: Random per-attempt ticket held by the browser (hashed here); the phone is never in the page or URL.
    ticket_hash: str = Field(max_length=64, unique=True)
    #: The normalised phone, kept only until the attempt ends (needed to subscribe it).
    phone: str = Field(max_length=15)
    phone_hash: str = Field(max_length=64, index=True)
    salt: str = Field(max_length=32)
    code_hash: str = Field(max_length=64)
    client: str = Field(default="", max_length=64)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    attempts: int = 0
    #: When the right code was entered (the ticket then allows choosing zones and consenting, once).
    verified_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    #: When the subscription was completed (the ticket is spent).
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class PublicThrottleEvent(SQLModel, table=True):
    """One counted event (a code sent, a wrong code, a bad link) under a key such as ``send:phone:<hash>``."""

    __tablename__ = "public_throttle_event"
    __table_args__ = (Index("ix_public_throttle_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=100)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
