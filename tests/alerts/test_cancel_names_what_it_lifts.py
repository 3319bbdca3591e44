"""A 해제 says what it lifts (issue 7 §3): 풍랑주의보 -> Update to 풍랑경보 -> Cancel without ``<info>`` (legal CAP),
through the real CAP parser, ingest, matching and the dispatcher (dryrun provider). The lift names the hazard,
the level it ended, the zones and the sender; no message carries an empty variable."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import cap_xml, kst
from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.models import Delivery
from alerts.pipeline import Pipeline, feed_spec
from subscribers.store import add_subscriber

ZONES = ["S1251100", "S1251200"]


def bare_cancel(identifier: str, *, sent: datetime, references: list[tuple[str, datetime]],
                sender: str = "kma@kma.go.kr") -> bytes:
    refs = " ".join(f"{sender},{i},{kst(t)}" for i, t in references)
    return (f'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
            f"<identifier>{identifier}</identifier><sender>{sender}</sender><sent>{kst(sent)}</sent>"
            f"<status>Actual</status><msgType>Cancel</msgType><scope>Public</scope>"
            f"<references>{refs}</references></alert>").encode()


@pytest.fixture
def pipeline(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> Pipeline:
    p = Pipeline(load_config(write_config(db_url, [("kma", "cap", str(tmp_path / "kma.xml"))])))
    with session_scope(p.engine) as s:
        add_subscriber(s, "01020000001", ["S1251100"])
        add_subscriber(s, "01020000002", ["S1251200"])
        add_subscriber(s, "01020000009", ["S1251400"])  # elsewhere: never told, never lifted
    return p


def step(pipeline: Pipeline, tmp_path: Path, body: bytes) -> None:
    (tmp_path / "kma.xml").write_bytes(body)
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    pipeline.tick()


def test_cancel_without_info_names_hazard_level_and_zones(pipeline: Pipeline, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    end = t0 + timedelta(hours=12)
    step(pipeline, tmp_path, cap_xml("W1", sent=t0, zones=ZONES, expires=end, severity="Moderate"))
    step(pipeline, tmp_path, cap_xml("W2", sent=t0 + timedelta(minutes=30), zones=ZONES, msg_type="Update",
                                     event="풍랑경보", severity="Severe", expires=end,
                                     references=[("W1", t0)]))
    with caplog.at_level(logging.WARNING, logger="alimcast.render"):
        step(pipeline, tmp_path, bare_cancel("W3", sent=t0 + timedelta(hours=1),
                                             references=[("W1", t0), ("W2", t0 + timedelta(minutes=30))]))
    with session_scope(pipeline.engine) as s:
        rows = list(s.exec(select(Delivery).order_by(Delivery.id)))
    kinds: dict[int, list[str]] = {}
    for row in rows:
        assert row.status == "delivered"
        kinds.setdefault(row.subscriber_id, []).append(row.kind)
    assert sorted(kinds.values()) == [["alert", "update", "cancel"]] * 2
    lifts = [r for r in rows if r.kind == "cancel"]
    for lift in lifts:
        first_line, zones_line, when_line = lift.text.splitlines()
        assert first_line == "[풍랑 경보] 해제", lift.text  # the level it ended, not the first one
        # the zones of the ended version, in words (catalogue names), not an empty "구역:"
        assert zones_line.startswith("구역: ") and len(zones_line) > len("구역: ")
        assert "앞바다" in zones_line or "S1251100" in zones_line
        assert when_line.startswith("해제: ") and "월" in when_line
        assert all(v.strip() for v in lift.params.values()), lift.params
    # everything came from the ended version: nothing needed a last-resort word
    assert not [r for r in caplog.records if "no value for" in r.getMessage()]
    # a lift ranks like the warning it lifts (Severe), not like an info-less nothing
    assert {r.priority for r in lifts} == {r.priority for r in rows if r.kind == "update"}
    pipeline.close()


def test_cancel_with_nothing_to_inherit_still_has_no_hole(pipeline: Pipeline, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A template variable no version fills gets a general word, and the log says so."""
    t0 = datetime.now(UTC).replace(microsecond=0)
    # a warning without instruction text: the alert template's #{instruction} would be an empty line
    body = cap_xml("W1", sent=t0, zones=["S1251100"], expires=t0 + timedelta(hours=3))
    body = body.replace("<instruction>조업 선박은 안전한 곳으로 대피하십시오.</instruction>".encode(), b"")
    with caplog.at_level(logging.WARNING, logger="alimcast.render"):
        step(pipeline, tmp_path, body)
    with session_scope(pipeline.engine) as s:
        (row,) = list(s.exec(select(Delivery)))
    assert row.params["instruction"] == "안전에 유의하십시오."
    assert "\n\n" not in row.text and not row.text.endswith("\n")
    assert any("W1" in r.getMessage() and "instruction" in r.getMessage() for r in caplog.records)
    pipeline.close()
