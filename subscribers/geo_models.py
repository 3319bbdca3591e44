"""Geometry and vessel tables: zone polygons, registered vessels, their position history and zone visits.

A vessel is linked to people through the ordinary ``Subscription`` table (kind="vessel", mmsi=...), so a
person reached through a zone, a point and a vessel is still one subscriber id. The latest fix is copied
onto ``Vessel`` because building the in-memory index must not scan the whole history; the history is
kept for audit, and ``VesselZoneVisit`` (entered/left per zone) is what lets a 해제 (lift) reach every
person whose vessel was inside the zone while the warning was in force, even after it sailed out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from subscribers.sqltypes import UTCDateTime, utcnow


class ZonePolygon(SQLModel, table=True):
    """One warning zone's outline. WKB in EPSG:4326 lon/lat order; the bbox columns allow cheap filtering."""

    __tablename__ = "zone_polygon"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)
    name: str = Field(default="", max_length=100)
    geometry: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    #: Where the outline came from (file name, licence holder): shown by ``zones list``.
    source: str = Field(default="", max_length=200)
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float
    imported_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class Vessel(SQLModel, table=True):
    __tablename__ = "vessel"

    id: int | None = Field(default=None, primary_key=True)
    mmsi: int = Field(unique=True, index=True)
    name: str = Field(default="", max_length=100)
    #: Latest fix (copied from VesselPosition on ingest); None until the first position arrives.
    last_lat: float | None = None
    last_lon: float | None = None
    last_fix_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class VesselPosition(SQLModel, table=True):
    """Position history. One row per (mmsi, time): the same report heard by two receivers is stored once."""

    __tablename__ = "vessel_position"
    __table_args__ = (UniqueConstraint("mmsi", "at", name="uq_vessel_position"),)

    id: int | None = Field(default=None, primary_key=True)
    mmsi: int = Field(index=True)
    lat: float
    lon: float
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    #: "ais", "json", a receiver id...
    source: str = Field(default="", max_length=64)


class VesselZoneVisit(SQLModel, table=True):
    """A stay of one vessel in one zone (boundary buffer included). ``left_at`` None means still inside."""

    __tablename__ = "vessel_zone_visit"
    __table_args__ = (
        Index("ix_vessel_zone_visit_zone", "zone_code", "left_at"),
        Index("ix_vessel_zone_visit_mmsi", "mmsi", "left_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    mmsi: int
    zone_code: str = Field(max_length=32)
    entered_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    left_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class VesselChange(SQLModel, table=True):
    """A vessel whose latest fix (or existence) changed: written by database triggers, never by our code.

    The geometry index (``subscribers.live_geoindex``) answers from a snapshot rebuilt in the background and
    rechecks exactly the vessels logged here since it, as the zone index does with ``subscription_change``
    (same ordering rules: ``id`` on SQLite, the writer's ``txn`` on PostgreSQL). Pruned by that index.
    """

    __tablename__ = "vessel_change"
    __table_args__ = (
        Index("ix_vessel_change_txn", "txn", sqlite_where=text("txn IS NOT NULL"),
              postgresql_where=text("txn IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    mmsi: int = Field(sa_type=BigInteger)
    #: PostgreSQL: ``pg_current_xact_id()`` of the writer; NULL on SQLite.
    txn: int | None = Field(default=None, sa_type=BigInteger)
    #: Seconds since the epoch (database clock), for pruning old rows.
    changed_at: float
