"""Vessels crossing zone borders: history, visits, the boundary buffer, staleness, and who gets the 해제."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from geo_testkit import add_person, box_feature, write_geojson
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from subscribers.ais import Position
from subscribers.geo_models import Vessel, VesselPosition, VesselZoneVisit
from subscribers.geoindex import GeoIndex
from subscribers.geometry import import_zone_geojson
from subscribers.positions import (
    current_zones,
    expire_stale_visits,
    ingest_positions,
    vessels_in_zone_during,
    vessels_in_zones_now,
)
from subscribers.vessels import VesselError, add_vessel, list_vessels, subscribers_for_vessels

T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
MMSI = 440123456
LAT = 34.5


def lon_east_of_border(km: float) -> float:
    """Longitude ``km`` east (negative: west) of the 127°E border at LAT, on the sphere."""
    return 127.0 + math.degrees(math.asin(math.sin(km / 6371.0088) / math.cos(math.radians(LAT))))


@pytest.fixture
def two_zones(any_engine: Engine, tmp_path: Path) -> Engine:
    """Zone A west of 127°E, zone B east of it, and one vessel followed by two people."""
    path = write_geojson(tmp_path / "zones.geojson", [box_feature("A", 126.0, 34.0, 127.0, 35.0),
                                                      box_feature("B", 127.0, 34.0, 128.0, 35.0)])
    with Session(any_engine) as session:
        assert import_zone_geojson(session, path).imported == ["A", "B"]
        add_person(session, "01011112222")
        add_person(session, "01033334444")
        add_vessel(session, MMSI, "제1해양호", ["010-1111-2222", "+82 10 3333 4444"])
        session.commit()
    return any_engine


def fix(minutes: float, lon: float, mmsi: int = MMSI) -> Position:
    return Position(mmsi, LAT, lon, T0 + timedelta(minutes=minutes), "test")


def visits(session: Session) -> list[tuple[str, datetime, datetime | None]]:
    rows = session.exec(select(VesselZoneVisit).order_by(VesselZoneVisit.zone_code, VesselZoneVisit.entered_at))
    return [(v.zone_code, v.entered_at, v.left_at) for v in rows]


def test_crossing_the_border_records_left_and_entered(two_zones: Engine) -> None:
    fixes = [fix(0, 126.5), fix(30, lon_east_of_border(-1.0)), fix(60, lon_east_of_border(5.0))]
    with Session(two_zones) as session:
        report = ingest_positions(session, fixes, now=T0 + timedelta(hours=1))
        session.commit()
        assert (report.positions, report.stored, report.vessels, report.entered, report.left) == (3, 3, 1, 2, 1)
        # 1 km from the border is within 1 NM: in both zones from minute 30; out of A at minute 60.
        assert visits(session) == [("A", fixes[0].at, fixes[2].at), ("B", fixes[1].at, None)]
        assert current_zones(session, MMSI) == {"B"}
        # The 해제 for A issued after the vessel left still reaches it: it was inside during the warning.
        assert vessels_in_zone_during(session, "A", since=T0 + timedelta(minutes=45)) == {MMSI}
        assert vessels_in_zone_during(session, "A", since=T0 + timedelta(minutes=61)) == set()
        assert vessels_in_zone_during(session, "B", since=T0, until=T0 + timedelta(minutes=10)) == set()
        people = subscribers_for_vessels(session, {MMSI})
        assert len(people) == 2


@pytest.mark.parametrize(("km", "zones"), [(-3.0, {"A"}), (-1.7, {"A", "B"}), (1.7, {"A", "B"}), (2.0, {"B"})])
def test_boundary_buffer_puts_a_vessel_in_both_zones(two_zones: Engine, km: float, zones: set[str]) -> None:
    with Session(two_zones) as session:
        ingest_positions(session, [fix(0, lon_east_of_border(km))], now=T0)
        assert current_zones(session, MMSI) == zones


def test_buffer_is_configurable(two_zones: Engine) -> None:
    with Session(two_zones) as session:
        ingest_positions(session, [fix(0, lon_east_of_border(-3.0))], now=T0, buffer_nm=2.0)
        assert current_zones(session, MMSI) == {"A", "B"}


def test_stale_fix_leaves_the_zone_at_last_fix_plus_stale_after(two_zones: Engine) -> None:
    with Session(two_zones) as session:
        ingest_positions(session, [fix(0, 127.5)], now=T0)
        assert vessels_in_zones_now(session, ["B"], at=T0 + timedelta(hours=5)) == {MMSI}
        assert vessels_in_zones_now(session, ["B"], at=T0 + timedelta(hours=7)) == set()
        assert expire_stale_visits(session, now=T0 + timedelta(hours=7)) == 1
        assert visits(session) == [("B", T0, T0 + timedelta(hours=6))]
        # Heard again 10 h later in B: a new visit, the old one stays closed.
        ingest_positions(session, [fix(600, 127.5)], now=T0 + timedelta(hours=10))
        assert visits(session) == [("B", T0, T0 + timedelta(hours=6)), ("B", T0 + timedelta(hours=10), None)]


def test_gap_longer_than_stale_after_inside_one_batch(two_zones: Engine) -> None:
    with Session(two_zones) as session:
        report = ingest_positions(session, [fix(0, 126.5), fix(8 * 60, 126.5)], now=T0 + timedelta(hours=8),
                                  stale_after=timedelta(hours=6))
        assert report.expired == 1
        assert visits(session) == [("A", T0, T0 + timedelta(hours=6)), ("A", T0 + timedelta(hours=8), None)]


def test_old_ingest_does_not_place_vessel_now(two_zones: Engine) -> None:
    with Session(two_zones) as session:
        report = ingest_positions(session, [fix(0, 126.5)], now=T0 + timedelta(days=1))
        assert report.entered == 1 and report.expired == 1
        assert current_zones(session, MMSI) == set()
        assert vessels_in_zone_during(session, "A", since=T0) == {MMSI}  # history is kept


def test_out_of_order_and_duplicate_fixes(two_zones: Engine) -> None:
    with Session(two_zones) as session:
        ingest_positions(session, [fix(60, 127.5)], now=T0 + timedelta(hours=1))
        report = ingest_positions(session, [fix(30, 126.5), fix(60, 127.5)], now=T0 + timedelta(hours=1))
        assert report.stored == 1  # the (mmsi, time) duplicate is not stored twice
        assert session.exec(select(func.count()).select_from(VesselPosition)).one() == 2
        assert current_zones(session, MMSI) == {"B"}  # the older fix changes nothing
        v = session.exec(select(Vessel).where(Vessel.mmsi == MMSI)).one()
        assert v.last_fix_at == T0 + timedelta(hours=1) and v.last_lon == 127.5


def test_unknown_mmsi_skipped_unless_asked(two_zones: Engine) -> None:
    with Session(two_zones) as session:
        report = ingest_positions(session, [fix(0, 126.5, mmsi=999000001)], now=T0)
        assert (report.unknown, report.stored) == (1, 0)
        report = ingest_positions(session, [fix(0, 126.5, mmsi=999000001)], now=T0, known_only=False,
                                  names={999000001: "STRANGER"})
        assert (report.unknown, report.stored, report.entered) == (0, 1, 1)
        assert [(v.mmsi, v.name, v.zones) for v in list_vessels(session) if v.mmsi == 999000001] == [
            (999000001, "STRANGER", ("A",))]


def test_geoindex_from_session_uses_latest_fix_and_staleness(two_zones: Engine) -> None:
    with Session(two_zones) as session:
        ingest_positions(session, [fix(0, 127.5)], now=T0)
        session.commit()
        people = subscribers_for_vessels(session, {MMSI})
        index = GeoIndex.from_session(session)
    poly = [(34.2, 127.2), (34.2, 127.8), (34.8, 127.8), (34.8, 127.2)]
    fresh = index.affected(polygons=[poly], at=T0 + timedelta(hours=1))
    assert set(fresh.subscriber_ids.tolist()) == people and fresh.zone_codes == {"B"}
    assert fresh.mmsis.tolist() == [MMSI]
    assert index.affected(polygons=[poly], at=T0 + timedelta(hours=7)).subscriber_ids.size == 0


def test_add_vessel_validates_and_is_idempotent(engine: Engine) -> None:
    with Session(engine) as session:
        sid = add_person(session, "01055556666")
        add_vessel(session, "440000001", "A", [sid])
        add_vessel(session, 440000001, "", ["01055556666"])
        assert subscribers_for_vessels(session, [440000001]) == {sid}
        assert [(v.mmsi, v.name, v.subscribers) for v in list_vessels(session)] == [(440000001, "A", 1)]
        with pytest.raises(VesselError, match=r"010-\*\*\*\*-9999"):
            add_vessel(session, 440000002, "B", ["01099999999"])
        with pytest.raises(VesselError, match="mmsi"):
            add_vessel(session, "12345678901", "C")
        assert len(list_vessels(session)) == 1  # nothing written for the rejected calls
