"""Lifecycle chains from real source formats through the real parsers and the pipeline's ingest:
an NWS Alert -> Update -> Cancel chain, an NGA warning and its cancellation, the same CAP alert from two
feeds, and NWS eventEndingTime deciding when a warning is over."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alimcast_testkit import cap_xml
from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.models import AlertRecord, AlertThread
from alerts.pipeline import Pipeline, feed_spec

NWS_SENDER = "w-nws.webmaster@noaa.gov"


def nws_feature(ident: str, sent: datetime, msg_type: str, refs: list[tuple[str, datetime]], *,
                expires: datetime, ends: datetime | None = None) -> dict[str, Any]:
    props = {
        "id": ident, "areaDesc": "Coastal waters", "geocode": {"UGC": ["PZZ560"], "SAME": ["057560"]},
        "references": [{"identifier": i, "sender": NWS_SENDER, "sent": t.isoformat()} for i, t in refs],
        "sent": sent.isoformat(), "effective": sent.isoformat(), "onset": sent.isoformat(),
        "expires": expires.isoformat(), "ends": ends.isoformat() if ends else None, "status": "Actual",
        "messageType": msg_type, "category": "Met", "severity": "Severe", "certainty": "Likely",
        "urgency": "Expected", "event": "Gale Warning", "sender": NWS_SENDER, "senderName": "NWS Monterey CA",
        "headline": "Gale Warning", "description": "Gale force winds.", "instruction": "Stay in port.",
        "response": "Prepare", "parameters": {},
    }
    return {"id": f"https://api.weather.gov/alerts/{ident}", "type": "Feature", "geometry": None,
            "properties": props}


def nws_doc(*features: dict[str, Any]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()


def nga_doc(*warnings: dict[str, Any]) -> bytes:
    return json.dumps({"broadcast-warn": list(warnings)}).encode()


def nga_warning(number: int, *, cancel: bool = False) -> dict[str, Any]:
    return {
        "msgYear": 2099, "msgNumber": number, "navArea": "P", "subregion": "94",
        "text": "YELLOW SEA.\nKOREA.\nGUNNERY EXERCISES IN AREA BOUND BY\n37-00.00N 124-00.00E, 37-00.00N 125-00.00E,\n"
                "36-30.00N 125-00.00E, 36-30.00N 124-00.00E.\n",
        "status": "A", "issueDate": "141453Z APR 2099", "authority": "ROK NAVY",
        "cancelDate": "151200Z APR 2099" if cancel else None, "cancelNavArea": "P" if cancel else None,
        "cancelMsgYear": 2099 if cancel else None, "cancelMsgNumber": number if cancel else None,
    }


def make(db_url: str, write_config: Callable[..., Path], feeds: list[tuple[str, str, str]]) -> Pipeline:
    return Pipeline(load_config(write_config(db_url, feeds)))


def threads(pipeline: Pipeline) -> list[tuple[str | None, str, int]]:
    with session_scope(pipeline.engine) as s:
        out = []
        for t in s.exec(select(AlertThread).order_by(AlertThread.id)):
            n = len(list(s.exec(select(AlertRecord).where(AlertRecord.thread_id == t.id))))
            out.append((t.key, t.state, n))
        return out


def test_nws_update_cancel_chain(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    feed = tmp_path / "nws.json"
    p = make(db_url, write_config, [("nws", "nws", str(feed))])
    spec = feed_spec(p.config.feeds[0])
    a = nws_feature("NWS-1", t0, "Alert", [], expires=t0 + timedelta(hours=6))
    u = nws_feature("NWS-2", t0 + timedelta(hours=1), "Update", [("NWS-1", t0)], expires=t0 + timedelta(hours=8))
    c = nws_feature("NWS-3", t0 + timedelta(hours=2), "Cancel", [("NWS-1", t0), ("NWS-2", t0 + timedelta(hours=1))],
                    expires=t0 + timedelta(hours=8))
    for doc in (nws_doc(a), nws_doc(a, u), nws_doc(u, c)):
        feed.write_bytes(doc)
        p.poll(spec, force=True)
        p.tick()
    assert threads(p) == [(None, "cancelled", 3)]
    p.close()


def test_nws_event_ending_time_outlives_expires(db_url: str, tmp_path: Path,
                                                write_config: Callable[..., Path]) -> None:
    """NWS `expires` can pass while the event goes on: the thread stays live until `ends`."""
    t0 = datetime.now(UTC).replace(microsecond=0)
    feed = tmp_path / "nws.json"
    p = make(db_url, write_config, [("nws", "nws", str(feed))])
    live = nws_feature("NWS-L", t0 - timedelta(hours=3), "Alert", [], expires=t0 - timedelta(hours=1),
                       ends=t0 + timedelta(hours=5))
    over = nws_feature("NWS-O", t0 - timedelta(hours=3), "Alert", [], expires=t0 + timedelta(hours=1),
                       ends=t0 - timedelta(minutes=1))
    feed.write_bytes(nws_doc(live, over))
    p.poll(feed_spec(p.config.feeds[0]), force=True)
    p.tick()
    with session_scope(p.engine) as s:
        states = {r.identifier: s.get(AlertThread, r.thread_id).state  # type: ignore[union-attr]
                  for r in s.exec(select(AlertRecord))}
    assert states == {"NWS-L": "active", "NWS-O": "expired"}
    p.close()


def test_nga_cancellation_closes_the_warning(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    feed = tmp_path / "nga.json"
    p = make(db_url, write_config, [("nga", "nga-msi", str(feed))])
    spec = feed_spec(p.config.feeds[0])
    feed.write_bytes(nga_doc(nga_warning(101)))
    p.poll(spec, force=True)
    p.tick()
    assert [state for _, state, _ in threads(p)] == ["active"]
    feed.write_bytes(nga_doc(nga_warning(101, cancel=True)))
    p.poll(spec, force=True)
    p.tick()
    result = threads(p)
    assert len(result) == 1 and result[0][1] == "cancelled" and result[0][2] == 2
    p.close()


def test_same_alert_from_two_feeds_is_stored_once(db_url: str, tmp_path: Path,
                                                  write_config: Callable[..., Path]) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    doc = cap_xml("SHARED-1", sent=t0, zones=["S1251100"])
    (tmp_path / "one.xml").write_bytes(doc)
    (tmp_path / "two.xml").write_bytes(doc)
    feeds = [("one", "cap", str(tmp_path / "one.xml")), ("two", "cap", str(tmp_path / "two.xml"))]
    p = make(db_url, write_config, feeds)
    summary = p.run_once()
    assert summary.alerts_new == 1 and summary.duplicates == 1
    assert threads(p) == [(None, "active", 1)]
    p.close()
