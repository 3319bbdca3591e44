"""The bundled KMA-style samples that the shipped demo sends."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import pytest
from feeds_cap_builders import SAMPLES, SHARED

from feeds.cap import CapParser
from feeds.registry import detect_kind, get_parser

KST = timezone(timedelta(hours=9))
ZONES = ["S1251100", "S1251200", "S1252010"]


def load(name: str):
    data = (SAMPLES / name).read_bytes()
    assert detect_kind(data) == "cap"
    result = get_parser("cap").parse(data, origin=name)
    assert result.errors == [] and len(result.alerts) == 1
    return data, result.alerts[0]


def test_pungrang_sample_shape() -> None:
    data, alert = load("kma_pungrang_sample.cap.xml")
    assert b"not a real KMA message" in data
    assert alert.warnings == []
    assert (alert.sender, alert.status, alert.msg_type, alert.scope) == ("kma@kma.go.kr", "Actual", "Alert", "Public")
    assert alert.sent == datetime(2026, 11, 27, 5, tzinfo=KST)
    ko, en = alert.infos
    assert (ko.language, en.language) == ("ko-KR", "en-US")
    assert (ko.event, ko.category, ko.urgency, ko.severity, ko.certainty) == (
        "풍랑주의보", ["Met"], "Expected", "Moderate", "Likely")
    assert "대피" in (ko.instruction or "") and ko.headline and ko.description
    for info in (ko, en):
        assert info.effective == datetime(2026, 11, 27, 9, tzinfo=KST)
        assert info.expires is None
        assert [area.geocodes for area in info.areas] == [{"KMA_ZONE": [z]} for z in ZONES]
    assert alert.zone_codes() == ZONES
    assert alert.end_time() is None  # live until lifted: the demo still sends after 2026-11-27


@pytest.mark.skipif(not (SHARED / "zones").is_dir(), reason=f"{SHARED}/zones is absent")
def test_sample_zone_names_match_the_kma_zone_table() -> None:
    with (SHARED / "zones" / "kma_marine_warning_zones.csv").open(encoding="utf-8") as handle:
        names = {row["reg_id"]: row["reg_ko"] for row in csv.DictReader(handle)}
    _, alert = load("kma_pungrang_sample.cap.xml")
    assert [(area.zone_codes()[0], area.desc) for area in alert.infos[0].areas] == [(z, names[z]) for z in ZONES]


def test_cancel_sample_references_the_advisory() -> None:
    _, advisory = load("kma_pungrang_sample.cap.xml")
    _, cancel = load("kma_pungrang_cancel_sample.cap.xml")
    assert cancel.msg_type == "Cancel" and cancel.warnings == []
    assert [ref.key() for ref in cancel.references] == [advisory.key()]
    assert cancel.zone_codes() == advisory.zone_codes()
    assert cancel.infos[0].response_type == ["AllClear"]


def test_samples_are_cap_parser_input_without_registry() -> None:
    for path in sorted(SAMPLES.glob("*.cap.xml")):
        assert CapParser().parse(path.read_bytes(), origin=path.name).alerts
