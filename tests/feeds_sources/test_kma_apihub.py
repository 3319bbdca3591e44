"""API Hub wrn_now_data_new text (EUC-KR and UTF-8) and the wrn_met_data history rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from feeds.base import ParseError
from feeds.kma_apihub import KmaApiHubNowParser

KST = timezone(timedelta(hours=9))


@pytest.fixture(scope="module")
def fixture_text(shared_dir: Path) -> bytes:
    return (shared_dir / "corpus/kma/apihub_wrn_now_data_new_fixture.txt").read_bytes()


@pytest.mark.parametrize("encoding", ["utf-8", "euc-kr"])
def test_fixture_rows(fixture_text: bytes, encoding: str) -> None:
    data = fixture_text.decode("utf-8").encode(encoding)
    result = KmaApiHubNowParser().parse(data, origin="now.txt")
    assert KmaApiHubNowParser.snapshot is True
    assert result.errors == []
    got = [(a.zone_codes()[0], a.infos[0].event, a.msg_type, a.thread_key) for a in result.alerts]
    assert got == [
        ("S1252010", "풍랑주의보", "Alert", "kma:S1252010:풍랑"),
        ("L1022520", "대설경보", "Alert", "kma:L1022520:대설"),
        ("L1022510", "대설주의보", "Update", "kma:L1022510:대설"),
        ("L1022510", "대설예비특보", "Alert", "kma:L1022510:대설:예비"),
        ("L1022700", "강풍주의보", "Alert", "kma:L1022700:강풍"),
        ("L1022800", "대설주의보", "Cancel", "kma:L1022800:대설"),
        ("L1031920", "강풍예비특보", "Alert", "kma:L1031920:강풍:예비"),
    ]
    marine = result.alerts[0]
    assert marine.sent == datetime(2026, 12, 15, 4, 0, tzinfo=KST)
    assert marine.infos[0].effective == datetime(2026, 12, 15, 6, 0, tzinfo=KST)
    assert marine.infos[0].parameter("KMA_ED_TM") == "06일 새벽(03시~06시)"
    assert "06일 새벽" in (marine.infos[0].description or "")
    assert marine.infos[0].areas[0].desc == "서해중부안쪽먼바다"
    assert marine.infos[0].parameter("KMA_REG_UP") == "S1250000"
    assert [a.infos[0].severity for a in result.alerts[:4]] == ["Moderate", "Severe", "Moderate", "Minor"]


def test_identifier_dedup_and_stable(fixture_text: bytes) -> None:
    once = KmaApiHubNowParser().parse(fixture_text).alerts
    twice = KmaApiHubNowParser().parse(fixture_text + b"\n" + fixture_text).alerts
    assert [a.key() for a in once] == [a.key() for a in twice]
    assert once[0].identifier == "KMA-HUB-202612150400-S1252010-V-2-1"


def test_history_format_matches_now_identity() -> None:
    history = "\n".join([
        "#START7777",
        "# TM_FC TM_EF TM_IN STN REG_ID WRN LVL CMD GRD CNT RPT",
        "202612150400, 202612150600, 202612150410, 108, S1252010, V, 2, 1, 0, 1, 0,=",
        "202612151000, 202612151000, 202612151010, 108, S1252010, V, 3, 2, 0, 1, 0,=",
        "202612151600, 202612151600, 202612151610, 108, S1252010, V, 3, 3, 0, 1, 0,=",
        "202612151600, 202612151600, 202612151610, 108, S1252010, Q, 9, 1, 0, 1, 0,=",
        "#7777END",
    ]).encode("euc-kr")
    result = KmaApiHubNowParser().parse(history)
    alerts = result.alerts
    assert [a.msg_type for a in alerts[:3]] == ["Alert", "Update", "Cancel"]
    assert {a.thread_key for a in alerts[:3]} == {"kma:S1252010:풍랑"}
    assert [a.infos[0].event for a in alerts[:3]] == ["풍랑주의보", "풍랑경보", "풍랑경보"]
    assert alerts[0].identifier == "KMA-HUB-202612150400-S1252010-V-2-1"  # same as the "now" row
    assert alerts[3].warnings and alerts[3].infos[0].severity == "Severe"


def test_bad_rows_reported() -> None:
    data = "#START7777\nS1, x, y,=\n, , S1252010, 바다, 2026121504, 0, 풍랑, 주의, 발표, ,=\n".encode()
    result = KmaApiHubNowParser().parse(data, origin="hub")
    assert result.alerts == []
    assert len(result.errors) == 2 and all(e.startswith("hub: KMA API Hub line") for e in result.errors)


@pytest.mark.parametrize("data", [b"Forbidden", b'{"result": {"status": 403}}', b"<html>x</html>"])
def test_not_api_hub_text_is_an_error_not_an_empty_snapshot(data: bytes) -> None:
    with pytest.raises(ParseError):
        KmaApiHubNowParser().parse(data)


def test_empty_snapshot_with_marker_is_valid() -> None:
    assert KmaApiHubNowParser().parse(b"#START7777\n#7777END\n").alerts == []


def test_commas_inside_ed_tm_kept() -> None:
    header = "#START7777\n# REG_UP REG_UP_KO REG_ID REG_KO TM_FC TM_EF WRN LVL CMD ED_TM\n"
    row = "S1250000, 서해중부전해상, S1252010, 서해중부안쪽먼바다, 202612150400, 202612150600, 풍랑, 주의, 발표, " \
          "06일 새벽, 오전,=\n"
    for text in (header + row, "#START7777\n" + row):
        alert = KmaApiHubNowParser().parse(text.encode("euc-kr")).alerts[0]
        assert alert.infos[0].parameter("KMA_ED_TM") == "06일 새벽, 오전"
