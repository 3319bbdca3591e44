"""A replayed KMA getPwnCd sequence through the real parser and the real pipeline:
발표 (주의보) -> 변경해제 + 변경발표 (경보, one bulletin) -> 해제 is one thread, and the people in the
zone hear: the warning, the level change, the lift — once each, in that order."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.models import AlertRecord, AlertThread, Delivery
from alerts.pipeline import Pipeline, feed_spec
from subscribers.store import add_subscriber

ZONE = "S1251100"


def row(tm_fc: int, seq: int, command: str, stress: int, *, end: int = 0) -> dict[str, object]:
    return {"allEndTime": 0, "areaCode": ZONE, "areaName": "인천·경기북부앞바다", "cancel": "0", "command": command,
            "endTime": end, "stnId": "109", "tmFc": tm_fc, "tmSeq": seq, "warnVar": 6, "warnStress": stress,
            "startTime": tm_fc}


def page(*rows: dict[str, object]) -> bytes:
    body = {"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL_SERVICE"},
                         "body": {"dataType": "JSON", "items": {"item": list(rows)}, "pageNo": 1,
                                  "numOfRows": 100, "totalCount": len(rows)}}}
    return json.dumps(body, ensure_ascii=False).encode()


@pytest.fixture
def pipeline(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> Pipeline:
    path = write_config(db_url, [("pwn", "kma-pwncd", str(tmp_path / "pwn.json"))])
    p = Pipeline(load_config(path))
    with session_scope(p.engine) as s:
        add_subscriber(s, "01020000001", [ZONE])
        add_subscriber(s, "01020000002", ["S1251000"])  # the 앞바다 group: expands to its leaves
        add_subscriber(s, "01020000009", ["S1251400"])  # elsewhere
    return p


def test_issue_change_lift_is_one_thread(pipeline: Pipeline, tmp_path: Path) -> None:
    feed = tmp_path / "pwn.json"
    spec = feed_spec(pipeline.config.feeds[0])
    # Times are in the future so nothing expires during the test: KMA stamps tmFc in KST.
    steps = [
        page(row(209901010500, 1, "1", 0)),
        page(row(209901010500, 1, "1", 0), row(209901011100, 2, "8", 0), row(209901011100, 2, "7", 1)),
        page(row(209901011700, 3, "2", 1)),
    ]
    for body in steps:
        feed.write_bytes(body)
        pipeline.poll(spec, force=True)
        pipeline.tick()
    with session_scope(pipeline.engine) as s:
        threads = list(s.exec(select(AlertThread)))
        assert len(threads) == 1, [(t.key, t.state) for t in threads]
        assert threads[0].state == "cancelled"
        records = list(s.exec(select(AlertRecord).order_by(AlertRecord.sent, AlertRecord.id)))
        assert [r.msg_type for r in records] == ["Alert", "Cancel", "Update", "Cancel"]
        sent = list(s.exec(select(Delivery).order_by(Delivery.id)))
        per_person: dict[int, list[str]] = {}
        for d in sent:
            assert d.status == "delivered"
            per_person.setdefault(d.subscriber_id, []).append(d.kind)
        assert sorted(per_person.values()) == [["alert", "update", "cancel"]] * 2
        update_text = next(d.text for d in sent if d.kind == "update")
        assert "풍랑 경보" in update_text
    pipeline.close()


def replay(pipeline: Pipeline, tmp_path: Path, *steps: bytes) -> tuple[list[str], dict[int, list[str]]]:
    feed = tmp_path / "pwn.json"
    spec = feed_spec(pipeline.config.feeds[0])
    for body in steps:
        feed.write_bytes(body)
        pipeline.poll(spec, force=True)
        pipeline.tick()
    with session_scope(pipeline.engine) as s:
        states = [t.state for t in s.exec(select(AlertThread).order_by(AlertThread.id))]
        per_person: dict[int, list[str]] = {}
        for d in s.exec(select(Delivery).order_by(Delivery.id)):
            per_person.setdefault(d.subscriber_id, []).append(d.kind)
    pipeline.close()
    return states, per_person


def test_a_level_change_split_over_two_polls_is_not_a_lift(pipeline: Pipeline, tmp_path: Path) -> None:
    """변경발표 (경보) seen first, its 변경해제 (주의보) row of the same bulletin a poll later: the 경보 stays in
    force; nobody is told it was lifted."""
    states, per_person = replay(pipeline, tmp_path, page(row(209901010500, 1, "1", 0)),
                                page(row(209901011100, 2, "7", 1)), page(row(209901011100, 2, "8", 0)))
    assert states == ["active"]
    assert sorted(per_person.values()) == [["alert", "update"]] * 2


def test_the_warnings_own_older_row_after_its_lift_is_not_sent(pipeline: Pipeline, tmp_path: Path) -> None:
    """A page read late brings the 발표 row after the 해제: it is the lifted warning's own past, not news."""
    states, per_person = replay(pipeline, tmp_path, page(row(209901011700, 3, "2", 0)),
                                page(row(209901010500, 1, "1", 0)))
    assert states == ["cancelled"]
    assert per_person == {}  # nobody had been told, and nobody is told now
