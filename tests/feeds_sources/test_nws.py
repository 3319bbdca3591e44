"""NWS alerts GeoJSON: the real zone fixture plus geometry, KEEPALIVE and error-body cases."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.base import ParseError
from feeds.nws import NwsParser


@pytest.fixture(scope="module")
def doc(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "corpus/feeds/nws_alerts_active_zone_geojson.json").read_bytes())


def test_real_zone_feature(doc: dict) -> None:
    result = NwsParser().parse(json.dumps(doc).encode())
    assert result.errors == []
    alert = result.alerts[0]
    assert alert.key() == ("w-nws.webmaster@noaa.gov", "NWS-IDP-PROD-3965873-3369046",
                           datetime(2019, 12, 20, 21, 34, tzinfo=UTC))
    assert alert.sent.utcoffset().total_seconds() == -8 * 3600
    assert alert.msg_type == "Update" and alert.status == "Actual"
    assert len(alert.references) == 4
    assert alert.references[0].identifier == "NWS-IDP-PROD-3964821-3368352"
    info = alert.infos[0]
    assert (info.event, info.severity, info.urgency, info.certainty) == ("Flood Watch", "Severe", "Future",
                                                                          "Possible")
    area = info.areas[0]
    assert area.polygons == [] and "ORZ004" in area.geocodes["UGC"] and "041007" in area.geocodes["SAME"]
    # expires is 2019-12-21 05:30 PST; the event ends 2019-12-22 10:00 PST
    assert alert.end_time() == datetime(2019, 12, 22, 18, 0, tzinfo=UTC)


def test_polygon_and_multipolygon_swap_to_lat_lon(doc: dict) -> None:
    feature = copy.deepcopy(doc["features"][0])
    feature["geometry"] = {"type": "MultiPolygon", "coordinates": [
        [[[-123.9, 45.5], [-123.0, 45.5], [-123.0, 46.0], [-123.9, 45.5]]],
        [[[-122.0, 44.0], [-121.0, 44.0], [-121.0, 44.5]]],  # unclosed: closed with a warning
    ]}
    alert = NwsParser().parse(json.dumps(feature).encode()).alerts[0]  # a single Feature
    polygons = alert.infos[0].areas[0].polygons
    assert polygons[0][0] == (45.5, -123.9)
    assert len(polygons) == 2 and polygons[1][0] == polygons[1][-1] == (44.0, -122.0)
    assert any("closed" in w for w in alert.warnings)


def test_keepalive_stays_test(doc: dict) -> None:
    feature = copy.deepcopy(doc["features"][0])
    feature["properties"].update(status="Test", event="Test Message", messageType="Alert", references=[])
    alert = NwsParser().parse(json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()).alerts[0]
    assert alert.status == "Test"


def test_bad_feature_reported_rest_kept(doc: dict) -> None:
    bad = copy.deepcopy(doc["features"][0])
    bad["properties"]["sent"] = "2019-12-20T13:34:00"  # no offset
    odd = copy.deepcopy(doc["features"][0])
    odd["properties"]["status"] = "Live"
    result = NwsParser().parse(json.dumps({"features": [bad, doc["features"][0], odd]}).encode(), origin="n")
    assert len(result.alerts) == 1
    assert "no UTC offset" in result.errors[0] and "status 'Live'" in result.errors[1]


def test_problem_json_is_parse_error() -> None:
    body = {"correlationId": "1", "title": "Not Found", "type": "https://api.weather.gov/problems/NotFound",
            "status": 404, "detail": "'/alerts/x' does not exist"}
    with pytest.raises(ParseError, match="404 Not Found"):
        NwsParser().parse(json.dumps(body).encode())
