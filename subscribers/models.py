"""Subscriber tables: a person (one row per phone number) and what they subscribed to.

Every subscription kind lives in one table so that "everyone affected" is one query per kind, and a
person matched through several zones, a vessel and a point still maps to one subscriber id.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from subscribers.sqltypes import JSONType, UTCDateTime, utcnow

SUBSCRIBER_STATUSES = ("active", "paused", "unsubscribed")
SUBSCRIPTION_KINDS = ("zone", "vessel", "point")


class Subscriber(SQLModel, table=True):
    __tablename__ = "subscriber"

    id: int | None = Field(default=None, primary_key=True)
    #: Normalised national form of a Korean mobile number, digits only ("01012345678"). Unique: one person.
    phone: str = Field(max_length=15, unique=True, index=True)
    name: str = Field(default="", max_length=100)
    language: str = Field(default="ko", max_length=8)
    status: str = Field(default="active", max_length=16)
    #: CAP severity; alerts below it are not sent to this person.
    min_severity: str = Field(default="Unknown", max_length=16)
    #: CAP categories the person wants; empty means all.
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    #: Hazards the person wants (KMA words such as 풍랑, 태풍, or a feed's event name); empty means all.
    hazards: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False, server_default="[]"))
    #: Quiet hours in KST as minutes after midnight; Extreme or Immediate alerts ignore them.
    quiet_start_min: int | None = None
    quiet_end_min: int | None = None
    consent_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    consent_source: str = Field(default="cli", max_length=32)
    consent_text: str = Field(default="")
    #: When the person unsubscribed. The row is kept (status "unsubscribed") so the consent history
    #: stays auditable; adding the person again records a new consent and clears this.
    unsubscribed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class Subscription(SQLModel, table=True):
    __tablename__ = "subscription"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "kind", "zone_code", "mmsi", "lat", "lon", name="uq_subscription"),
        Index("ix_subscription_zone", "zone_code"),
        # uq_subscription cannot stop duplicate zone rows: their mmsi/lat/lon are NULL, and NULLs are
        # distinct in a unique constraint. This partial index makes (person, zone) unique, which is what
        # idempotent adds and re-imports (INSERT ... ON CONFLICT DO NOTHING) rely on.
        Index(
            "uq_subscription_zone",
            "subscriber_id",
            "zone_code",
            unique=True,
            sqlite_where=text("kind = 'zone'"),
            postgresql_where=text("kind = 'zone'"),
        ),
        # Only vessel rows have an MMSI: zone and point rows stay out of this index (migration 0013).
        Index("ix_subscription_mmsi", "mmsi", sqlite_where=text("mmsi IS NOT NULL"),
              postgresql_where=text("mmsi IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    #: Looked up through uq_subscription, whose first column it is (a separate index cost every import row).
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    kind: str = Field(max_length=8)
    #: kind=zone: a leaf KMA 특보구역 code (groups and broad names are expanded before storing).
    zone_code: str | None = Field(default=None, max_length=16)
    #: kind=vessel
    mmsi: int | None = None
    #: kind=point: a fixed place (port, sea farm) and a radius on the ground.
    lat: float | None = None
    lon: float | None = None
    radius_km: float | None = None


class SubscriptionChange(SQLModel, table=True):
    """A person whose zone matching may have changed: written by database triggers, never by our code.

    Triggers on ``subscription`` (insert, update, delete) and on ``subscriber.status`` add a row here, so
    every writer (the CLI, a CSV import, another worker, an operator's SQL) is seen. A live zone index
    (``subscribers.live_zone_index``) answers from its snapshot and re-checks exactly the people listed
    here since that snapshot; it never has to guess whether it is stale.

    ``id`` orders changes on SQLite (one writer at a time, so ids follow commit order; pruning always keeps
    the newest row, so an id is never handed out twice). PostgreSQL transactions commit out of id order, so
    there ``txn`` holds the writing transaction's id, compared with the oldest transaction still running when
    the snapshot was taken. Its index is partial: SQLite rows (NULL) cost a bulk import nothing.
    """

    __tablename__ = "subscription_change"
    __table_args__ = (
        Index("ix_subscription_change_txn", "txn", sqlite_where=text("txn IS NOT NULL"),
              postgresql_where=text("txn IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int
    #: PostgreSQL: ``pg_current_xact_id()`` of the writer; NULL on SQLite.
    txn: int | None = Field(default=None, sa_type=BigInteger)
    #: Seconds since the epoch (database clock), for pruning old rows.
    changed_at: float
