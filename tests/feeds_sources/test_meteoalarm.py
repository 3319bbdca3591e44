"""MeteoAlarm CAP-as-JSON over the real DWD sample."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from feeds.base import ParseError
from feeds.meteoalarm import MeteoAlarmParser


@pytest.fixture(scope="module")
def data(shared_dir: Path) -> bytes:
    return (shared_dir / "corpus/feeds/meteoalarm_api_v1_warnings_feeds-germany_sample.json").read_bytes()


def test_real_sample(data: bytes) -> None:
    result = MeteoAlarmParser().parse(data)
    assert result.errors == [] and len(result.alerts) == 4
    first = result.alerts[0]
    assert first.sender == "opendata@dwd.de" and first.sent.utcoffset() == timedelta(hours=2)
    assert [i.language for i in first.infos] == ["de-DE", "en"]
    info = first.infos[0]
    assert info.event == "STURMBÖEN" and info.severity == "Moderate"
    assert info.parameter("awareness_level") == "3; orange; Severe"
    assert info.parameters["impacts"] == ["einzelne herabstürzende Äste", "umherfliegende Gegenstände"]
    assert info.areas[0].geocodes == {"EMMA_ID": ["DE343"], "WARNCELLID": ["114521000"]}
    assert info.areas[0].altitude == pytest.approx(3280.8399)
    assert len(result.alerts[1].infos[0].areas) == 2
    update = result.alerts[2]
    assert update.msg_type == "Update" and update.references[0].identifier.endswith("e839a672-1b60-44ae-"
                                                                                     "bfe5-a53f369c1e98.MUL")


def test_entry_without_identity_is_reported(data: bytes) -> None:
    doc = json.loads(data)
    del doc["warnings"][1]["alert"]["identifier"]
    result = MeteoAlarmParser().parse(json.dumps(doc).encode(), origin="de")
    assert len(result.alerts) == 3
    assert result.errors[0].startswith("de: MeteoAlarm JSON warning 2") and "identifier" in result.errors[0]


def test_polygon_string_parsed() -> None:
    alert = {"identifier": "x", "sender": "s", "sent": "2026-04-20T08:55:00+02:00", "status": "Actual",
             "msgType": "Alert", "info": [{"event": "e", "area": [{"areaDesc": "a", "polygon":
                                                                   "50.0,10.0 51.0,10.0 51.0,11.0"}]}]}
    got = MeteoAlarmParser().parse(json.dumps({"warnings": [{"uuid": "u", "alert": alert}]}).encode()).alerts[0]
    assert got.infos[0].areas[0].polygons == [[(50.0, 10.0), (51.0, 10.0), (51.0, 11.0), (50.0, 10.0)]]


def test_not_meteoalarm() -> None:
    with pytest.raises(ParseError, match="no 'warnings'"):
        MeteoAlarmParser().parse(b'{"features": []}')
