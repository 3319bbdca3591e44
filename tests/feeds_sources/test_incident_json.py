"""The operator-mapped incident JSON parser, fed a partner-style document."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from feeds.base import ParseError
from feeds.incident_json import IncidentJsonParser

OPTIONS = {"items": "data.incidents", "identifier": "id", "sender": "const:coastguard.example",
           "sent": "reported_at", "event": "type", "severity": "level", "lat": "position.lat",
           "lon": "position.lon", "radius_km": "const:5", "headline": "title", "description": "details",
           "zone": "zone_code", "severity_map": {"high": "Severe", "low": "Minor"}, "timezone": "Asia/Seoul"}

DOC = {"data": {"incidents": [
    {"id": 101, "reported_at": "2026-12-15T04:10:00+09:00", "type": "Vessel fire", "level": "high",
     "position": {"lat": 35.05, "lon": 129.03}, "title": "Fire on fishing vessel", "details": "Crew of 8",
     "zone_code": "S1311100"},
    {"id": "102", "reported_at": "2026-12-15 05:00", "type": "Oil spill", "level": "LOW", "zone_code": "S1252010"},
    {"id": "103", "type": "Man overboard", "level": "high"},
    {"id": "104", "reported_at": 1797282000, "type": "Drifting object", "level": "purple"},
]}}


def test_mapping() -> None:
    result = IncidentJsonParser(OPTIONS).parse(json.dumps(DOC).encode(), origin="partner")
    assert [a.identifier for a in result.alerts] == ["101", "102", "104"]
    assert result.errors == ["partner: incident JSON item 3 (identifier 103): missing 'reported_at' (sent); "
                             "skipped"]
    fire, spill, drift = result.alerts
    assert fire.sender == "coastguard.example" and fire.thread_key == "incident:coastguard.example:101"
    assert fire.sent == datetime(2026, 12, 14, 19, 10, tzinfo=UTC)
    area = fire.infos[0].areas[0]
    assert (area.circles[0].lat, area.circles[0].lon, area.circles[0].radius_km) == (35.05, 129.03, 5.0)
    assert area.geocodes == {"KMA_ZONE": ["S1311100"]}
    assert (fire.infos[0].severity, fire.infos[0].headline) == ("Severe", "Fire on fishing vessel")
    assert spill.sent.utcoffset() == timedelta(hours=9) and spill.infos[0].severity == "Minor"
    assert drift.sent == datetime.fromtimestamp(1797282000, tz=UTC)
    assert drift.infos[0].severity == "Unknown" and any("purple" in w for w in drift.warnings)


def test_missing_options_named() -> None:
    with pytest.raises(ParseError, match="missing sent, event"):
        IncidentJsonParser({"items": "x", "identifier": "id", "sender": "const:s"}).parse(b"{}")


def test_items_path_not_found() -> None:
    with pytest.raises(ParseError, match="'data.incidents' not found"):
        IncidentJsonParser(OPTIONS).parse(b'{"data": {}}')


def test_naive_time_without_timezone_option_is_item_error() -> None:
    options = {k: v for k, v in OPTIONS.items() if k != "timezone"}
    result = IncidentJsonParser(options).parse(json.dumps(DOC).encode())
    assert [a.identifier for a in result.alerts] == ["101", "104"]
    assert any("no UTC offset" in e for e in result.errors)


def test_unmappable_status_skips_item() -> None:
    options = {**OPTIONS, "status": "state"}
    doc = {"data": {"incidents": [{**DOC["data"]["incidents"][0], "state": "drill"}]}}
    result = IncidentJsonParser(options).parse(json.dumps(doc).encode())
    assert result.alerts == [] and "status 'drill'" in result.errors[0]
    options["status_map"] = {"drill": "Exercise"}
    assert IncidentJsonParser(options).parse(json.dumps(doc).encode()).alerts[0].status == "Exercise"
