"""USGS earthquake GeoJSON over the real sample plus tsunami/PAGER/revision cases."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.base import ParseError
from feeds.usgs import UsgsParser, felt_radius_km, magnitude_severity


@pytest.fixture(scope="module")
def doc(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "corpus/feeds/usgs_summary_2.5_hour_sample.geojson").read_bytes())


def test_real_sample(doc: dict) -> None:
    alert = UsgsParser().parse(json.dumps(doc).encode()).alerts[0]
    assert alert.key() == ("earthquake.usgs.gov", "us7000cbyq", datetime(2020, 11, 8, 0, 56, 44, 40000,
                                                                          tzinfo=UTC))
    assert alert.thread_key == "usgs:us7000cbyq" and alert.msg_type == "Update"  # updated > time
    info = alert.infos[0]
    assert info.onset == datetime(2020, 11, 8, 0, 39, 3, 808000, tzinfo=UTC)  # epoch milliseconds
    circle = info.areas[0].circles[0]
    assert (circle.lat, circle.lon) == (-11.6348, 164.9895)
    assert circle.radius_km == felt_radius_km(5.3)
    assert (info.severity, info.urgency, info.certainty) == ("Moderate", "Past", "Observed")
    assert info.parameter("magnitude") == "5.3" and info.parameter("tsunami") == "0"
    assert info.parameter("depth_km") == "12.63"


def _variant(doc: dict, **props: object) -> dict:
    feature = copy.deepcopy(doc["features"][0])
    feature["properties"].update(props)
    return feature


@pytest.mark.parametrize(("props", "severity", "urgency", "msg_type"), [
    ({"tsunami": 1}, "Severe", "Immediate", "Update"),
    ({"mag": 7.8}, "Extreme", "Past", "Update"),
    ({"mag": 4.0, "alert": "orange"}, "Severe", "Past", "Update"),
    ({"updated": 1604795943808}, "Moderate", "Past", "Alert"),
    ({"status": "deleted"}, "Moderate", "Past", "Cancel"),
])
def test_severity_table(doc: dict, props: dict, severity: str, urgency: str, msg_type: str) -> None:
    alert = UsgsParser().parse(json.dumps(_variant(doc, **props)).encode()).alerts[0]
    assert (alert.infos[0].severity, alert.infos[0].urgency, alert.msg_type) == (severity, urgency, msg_type)


def test_revision_same_thread_new_identity(doc: dict) -> None:
    later = _variant(doc, updated=1604799999000, mag=5.5)
    a, b = UsgsParser().parse(json.dumps({"features": [doc["features"][0], later]}).encode()).alerts
    assert a.thread_key == b.thread_key and a.key() != b.key()


def test_bad_feature_reported(doc: dict) -> None:
    bad = _variant(doc, time="yesterday")
    result = UsgsParser().parse(json.dumps({"features": [bad, doc["features"][0]]}).encode(), origin="q")
    assert len(result.alerts) == 1 and result.errors[0].startswith("q: USGS earthquake GeoJSON feature 1")


def test_radius_option_and_magnitude_table() -> None:
    assert [magnitude_severity(m) for m in (None, 3.0, 5.0, 6.5, 7.5)] == ["Unknown", "Minor", "Moderate",
                                                                          "Severe", "Extreme"]
    assert felt_radius_km(3.0) < felt_radius_km(5.0) < felt_radius_km(7.0) <= 1000
    with pytest.raises(ParseError, match="radius_km"):
        UsgsParser({"radius_km": "wide"}).parse(b'{"features": []}')
