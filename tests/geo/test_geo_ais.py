"""AIS NMEA and JSON-lines reading: the real sample file, tag-block times, reassembly, bad lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

import pytest
from pyais.encode import encode_dict

from subscribers.ais import position_from_json, read_positions

RECEIVED = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)


def sixbit(payload: str) -> str:
    """AIS armoring undone by hand (ITU-R M.1371 / gpsd AIVDM.html), independent of pyais."""
    bits = []
    for ch in payload:
        v = ord(ch) - 48
        if v > 40:
            v -= 8
        bits.append(format(v, "06b"))
    return "".join(bits)


def signed(bits: str) -> int:
    value = int(bits, 2)
    return value - (1 << len(bits)) if bits[0] == "1" else value


def decode_type1(payload: str) -> tuple[int, float, float]:
    b = sixbit(payload)
    assert int(b[0:6], 2) in (1, 2, 3)
    return int(b[8:38], 2), signed(b[89:116]) / 600000.0, signed(b[61:89]) / 600000.0


def decode_shipname(payload: str) -> str:
    b = sixbit(payload)
    chars = []
    for i in range(112, 232, 6):
        v = int(b[i:i + 6], 2)
        chars.append(chr(v + 64 if v < 32 else v))
    return "".join(chars).replace("@", " ").strip()


def tag(fields: str) -> str:
    checksum = reduce(lambda a, c: a ^ ord(c), fields, 0)
    return f"\\{fields}*{checksum:02X}\\"


@pytest.fixture
def sample(shared_dir: Path) -> Path:
    path = shared_dir / "corpus" / "feeds" / "ais_aivdm_sample.ais"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def test_sample_file_positions_match_hand_decoding(sample: Path) -> None:
    lines = sample.read_text(encoding="ascii").splitlines()
    with sample.open("rb") as fh:
        result = read_positions(fh, received_at=RECEIVED)
    # Expected: every single-sentence AIVDM line whose checksum is right, decoded by hand.
    expected = []
    for line in lines:
        body = line.split("\\")[-1]
        if not body.startswith("!AIVDM,1,1,"):
            continue
        star = body.rfind("*")
        data = body[1:star] if star > 0 else ""
        if star < 0 or reduce(lambda a, c: a ^ ord(c), data, 0) != int(body[star + 1:star + 3], 16):
            continue
        expected.append(decode_type1(body.split(",")[5]))
    assert len(expected) == 10
    assert [(p.mmsi, p.lat, p.lon) for p in result.positions] == [
        (m, pytest.approx(la, abs=1e-6), pytest.approx(lo, abs=1e-6)) for m, la, lo in expected]
    assert result.mmsis == {227006760, 205448890, 786434, 249191000, 316013198, 366913120, 413355820, 445451000}
    # No line of the sample carries a valid tag-block time: all fixes take the receive time.
    assert {p.at for p in result.positions} == {RECEIVED}
    assert result.lines == len(lines)


def test_sample_file_bad_lines_and_multipart(sample: Path) -> None:
    lines = sample.read_text(encoding="ascii").splitlines()
    result = read_positions(lines, received_at=RECEIVED)
    assert [b.split(":")[0] for b in result.bad] == ["line 10", "line 12", "line 17"]
    assert "not an NMEA sentence" in result.bad[0]
    assert "checksum" in result.bad[1]
    assert "fragment count 0" in result.bad[2]
    # Lines 13-14 are a two-sentence type 5: reassembled, it names its vessel.
    payload = lines[12].split("\\")[-1].split(",")[5] + lines[13].split("\\")[-1].split(",")[5]
    assert result.names == {366989380: decode_shipname(payload)}
    assert result.names[366989380] == "MARE ISLAND"


def test_tag_block_time_is_used_when_its_checksum_is_right() -> None:
    sentence = "!AIVDM,1,1,,A,13HOI:0P0000VOHLCnHQKwvL05Ip,0*23"
    good = tag("s:r003669945,c:1747818025") + sentence
    bad_checksum = "\\c:1747818025*00\\" + sentence
    garbage_time = tag("c:99") + sentence
    result = read_positions([good, bad_checksum, garbage_time], received_at=RECEIVED)
    assert [p.at for p in result.positions] == [datetime.fromtimestamp(1747818025, UTC), RECEIVED, RECEIVED]
    assert result.bad == []


def test_multipart_reassembly_uses_first_fragment_time_and_reports_orphans() -> None:
    part1, part2 = encode_dict({"type": 5, "mmsi": 440123459, "shipname": "HAEYANG HO"},
                               talker_id="AI", sentence_type="VDM")
    lines = [tag("c:1747818025") + part1, part2, part2, part1]
    result = read_positions(lines, received_at=RECEIVED)
    assert result.names == {440123459: "HAEYANG HO"}
    assert result.bad == ["line 3: fragment 2 of 2 without the fragments before it",
                          "line 4: multi-sentence message incomplete (1 of 2 fragments)"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"type": 1, "mmsi": 440123456, "lat": 35.1, "lon": 129.05}, (440123456, 35.1, 129.05)),
        ({"type": 3, "mmsi": 440123456, "lat": -33.5, "lon": -70.25}, (440123456, -33.5, -70.25)),
        ({"type": 18, "mmsi": 440123457, "lat": 35.1, "lon": 129.05}, (440123457, 35.1, 129.05)),
        ({"type": 27, "mmsi": 440123458, "lat": 34.5, "lon": 128.25}, (440123458, 34.5, 128.25)),
        ({"type": 1, "mmsi": 440123456, "lat": 91, "lon": 181}, None),   # "not available"
        ({"type": 18, "mmsi": 440123456, "lat": 91, "lon": 181}, None),
        ({"type": 27, "mmsi": 440123456, "lat": 91, "lon": 181}, None),
        ({"type": 4, "mmsi": 440123460, "lat": 34.5, "lon": 128.25}, "ignored"),  # base station
    ],
)
def test_position_message_types(fields: dict, expected: tuple | str | None) -> None:
    result = read_positions(encode_dict(fields, talker_id="AI", sentence_type="VDM"), received_at=RECEIVED)
    assert result.bad == []
    if expected == "ignored":
        assert result.positions == [] and result.ignored == 1
    elif expected is None:
        assert result.positions == [] and result.unavailable == 1
    else:
        mmsi, lat, lon = expected
        assert [(p.mmsi, p.lat, p.lon) for p in result.positions] == [
            (mmsi, pytest.approx(lat, abs=1 / 600), pytest.approx(lon, abs=1 / 600))]


def test_aivdo_own_vessel_reports_are_read() -> None:
    result = read_positions(encode_dict({"type": 1, "mmsi": 440000009, "lat": 35.0, "lon": 129.0}),
                            received_at=RECEIVED)
    assert [p.mmsi for p in result.positions] == [440000009]


GOOD = {"mmsi": 440123456, "lat": 35.1, "lon": 129.05, "at": "2026-05-01T12:00:00+09:00"}


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({**GOOD, "at": "2026-05-01T12:00:00"}, "no UTC offset"),
        ({k: v for k, v in GOOD.items() if k != "lat"}, "missing 'lat'"),
        ({**GOOD, "lat": 95.0}, "lat 95.0: outside"),
        ({**GOOD, "lon": "east"}, "lon 'east': not a number"),
        ({**GOOD, "mmsi": 1234567890}, "mmsi 1234567890"),
        ({**GOOD, "at": "yesterday"}, "not an ISO 8601 time"),
    ],
)
def test_json_lines_errors_name_the_line(record: dict, error: str) -> None:
    lines = [json.dumps(GOOD), json.dumps(record), "{not json"]
    result = read_positions(lines, received_at=RECEIVED)
    assert len(result.positions) == 1
    assert result.positions[0].at == datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
    assert result.positions[0].source == "json"
    assert result.bad[0].startswith("line 2: ") and error in result.bad[0]
    assert result.bad[1].startswith("line 3: not JSON")


def test_position_from_json_accepts_z() -> None:
    p = position_from_json({"mmsi": "440123456", "lat": 35, "lon": 129, "at": "2026-05-01T03:00:00Z"})
    assert (p.mmsi, p.lat, p.lon, p.at) == (440123456, 35.0, 129.0, RECEIVED)
