"""NGA MSI broadcast warnings: real HYDROPAC/NAVAREA IV records, position parsing, cancels."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.nga_msi import NgaMsiParser, dtg, positions


@pytest.fixture(scope="module")
def hydropac(shared_dir: Path) -> bytes:
    return (shared_dir / "corpus/feeds/nga_msi_broadcast_warn_hydropac_excerpt.json").read_bytes()


@pytest.fixture(scope="module")
def navarea4(shared_dir: Path) -> bytes:
    return (shared_dir / "corpus/feeds/nga_msi_broadcast_warn_mock_navarea4.json").read_bytes()


def test_hydropac_identity_and_positions_near_korea_japan(hydropac: bytes) -> None:
    result = NgaMsiParser().parse(hydropac)
    assert result.errors == []
    by_id = {a.identifier: a for a in result.alerts}
    yellow_sea = by_id["NGA-HYDROPAC-1244-2023"]
    assert yellow_sea.sender == "msi.nga.mil"
    assert yellow_sea.sent == datetime(2023, 4, 14, 14, 53, tzinfo=UTC)
    assert yellow_sea.thread_key == "nga:P:1244/2023"
    info = yellow_sea.infos[0]
    assert info.event == "Navigational warning" and info.category == ["Safety", "Transport"]
    circles = [(round(c.lat, 3), round(c.lon, 3)) for c in info.areas[0].circles]
    assert circles == [(44.936, 154.323), (38.12, 120.009)]  # 38-07.22N 120-00.55E: Yellow Sea
    assert "YELLOW SEA" in info.areas[0].desc
    sea_of_japan = by_id["NGA-HYDROPAC-1144-2023"].infos[0]
    ring = sea_of_japan.areas[0].polygons[0]
    assert len(ring) == 6 and ring[0] == ring[-1]
    assert all(42 < lat < 43 and 131 < lon < 133 for lat, lon in ring)
    assert sea_of_japan.expires == datetime(2023, 4, 20, 9, 0, tzinfo=UTC)  # CANCEL THIS MSG 200900Z APR 23
    assert by_id["NGA-HYDROPAC-1144-2023"].msg_type == "Alert"
    volcano = by_id["NGA-HYDROPAC-809-2022"].infos[0].areas[0].circles[0]
    assert (round(volcano.lat, 3), round(volcano.lon, 3)) == (25.455, 141.238)  # 25-27.3N 141-14.3E
    assert by_id["NGA-NAVAREA12-213-2023"].infos[0].areas[0].circles[0].lon < -122


def test_navarea4_polygons_and_cancel_of_other_warning(navarea4: bytes) -> None:
    alerts = NgaMsiParser().parse(navarea4).alerts
    launch = alerts[0]
    assert launch.identifier == "NGA-NAVAREA4-1177-2022" and launch.sent == datetime(2022, 11, 7, 22, 39,
                                                                                       tzinfo=UTC)
    polygons = launch.infos[0].areas[0].polygons
    assert len(polygons) == 2 and polygons[0][0] == pytest.approx((28.665333, -80.638833))
    assert launch.infos[0].expires == datetime(2022, 11, 18, 19, 54, tzinfo=UTC)
    cancels = [a for a in alerts if a.msg_type == "Cancel"]
    assert [a.thread_key for a in cancels] == ["nga:4:1165/2022", "nga:4:1100/2022", "nga:4:1139/2022",
                                               "nga:4:1145/2022"]
    # the in-force list of 1169 is not a list of cancels
    assert len(alerts) == 6


def test_record_with_cancel_date_is_a_cancel_of_itself(hydropac: bytes) -> None:
    doc = json.loads(hydropac)
    record = doc["broadcast-warn"][0]
    record.update(cancelDate="161200Z APR 2023", cancelNavArea="P", cancelMsgYear=2023, cancelMsgNumber=1250)
    alert = NgaMsiParser().parse(json.dumps({"broadcast-warn": [record]}).encode()).alerts[0]
    assert alert.msg_type == "Cancel" and alert.thread_key == "nga:P:1244/2023"
    assert alert.references[0].key() == ("msi.nga.mil", "NGA-HYDROPAC-1244-2023",
                                         datetime(2023, 4, 14, 14, 53, tzinfo=UTC))
    assert alert.sent == datetime(2023, 4, 16, 12, 0, tzinfo=UTC)


def test_cancel_hydropac_in_text_and_other_series() -> None:
    record = {"msgYear": 2022, "msgNumber": 1300, "navArea": "P", "issueDate": "010000Z DEC 2022",
              "text": "JAPAN.\n1. CANCEL HYDROPAC 1234/22 AND NAVAREA XI 99/22.\n2. CANCEL THIS MSG.\n"}
    result = NgaMsiParser().parse(json.dumps({"broadcast-warn": [record]}).encode())
    assert [a.thread_key for a in result.alerts] == ["nga:P:1300/2022", "nga:P:1234/2022"]
    assert result.alerts[1].msg_type == "Cancel"
    assert result.alerts[0].infos[0].parameter("NGA_CANCELS_OTHER") == "NAVAREA XI 99/22"


@pytest.mark.parametrize(("text", "expected"), [
    ("28-39.92N 080-38.33W", [(28.665333, -80.638833)]),
    ("8-39N 80-38W", [(8.65, -80.633333)]),
    ("34-05-30N 129-10-00E", [(34.091667, 129.166667)]),
    ("33-00S 151-30E", [(-33.0, 151.5)]),
    ("91-00N 010-00E, 10-61N 010-00E", []),
    ("09 THRU 14 APR", []),
])
def test_position_table(text: str, expected: list[tuple[float, float]]) -> None:
    assert [pytest.approx(p) for p in expected] == [(lat, lon) for _, _, lat, lon in positions(text)]


def test_within_miles_radius() -> None:
    record = {"msgYear": 2023, "msgNumber": 1, "navArea": "P", "issueDate": "010000Z JAN 2023",
              "text": "KOREA.\nDIVING OPERATIONS WITHIN 2 MILES OF 35-05.00N 129-02.00E.\n"}
    circle = NgaMsiParser({"point_radius_km": 0.5}).parse(
        json.dumps({"broadcast-warn": [record]}).encode()).alerts[0].infos[0].areas[0].circles[0]
    assert circle.radius_km == pytest.approx(3.704)


def test_bad_record_reported() -> None:
    records = [{"msgYear": 2023, "msgNumber": 5, "navArea": "P", "issueDate": "yesterday"},
               {"msgYear": 2023, "msgNumber": 6, "navArea": "P", "issueDate": "010000Z JAN 2023"}]
    result = NgaMsiParser().parse(json.dumps({"broadcast-warn": records}).encode(), origin="nga")
    assert len(result.alerts) == 1 and result.errors[0].startswith("nga: NGA MSI broadcast-warn JSON record 1 (P 5/")


def test_dtg_two_digit_year() -> None:
    assert dtg("181954Z NOV 22") == datetime(2022, 11, 18, 19, 54, tzinfo=UTC)
