"""The warning reaches people however they are "in" it — zone, zone outline, fixed point, vessel —
and each of them once. Driven through the real pipeline: NGA polygon warnings and KMA zone warnings."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alimcast_testkit import cap_xml
from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.ingest import ingest
from alerts.models import Delivery
from alerts.pipeline import Pipeline, feed_spec
from feeds.model import Alert, Area, Info
from subscribers.ais import Position
from subscribers.geo_models import Vessel
from subscribers.geometry import import_zone_geojson
from subscribers.models import Subscriber, Subscription
from subscribers.positions import ingest_positions
from subscribers.store import add_subscriber
from subscribers.vessels import add_vessel

NOW = datetime.now(UTC).replace(microsecond=0)
# A made-up outline for 인천·경기북부앞바다 (S1251100): lon 125.5-126.5, lat 37.0-37.8.
ZONE_RING = [[125.5, 37.0], [126.5, 37.0], [126.5, 37.8], [125.5, 37.8], [125.5, 37.0]]


def nga(number: int, box: tuple[float, float, float, float]) -> bytes:
    lat0, lon0, lat1, lon1 = box

    def pos(lat: float, lon: float) -> str:
        return f"{int(lat):02d}-{(lat % 1) * 60:05.2f}N {int(lon):03d}-{(lon % 1) * 60:05.2f}E"

    corners = [pos(lat0, lon0), pos(lat0, lon1), pos(lat1, lon1), pos(lat1, lon0)]
    text = "YELLOW SEA.\nKOREA.\nLIVE FIRING IN AREA BOUND BY\n" + ", ".join(corners) + ".\n"
    warning = {"msgYear": 2099, "msgNumber": number, "navArea": "P", "subregion": "94", "text": text,
               "status": "A", "issueDate": "141453Z APR 2099", "authority": "ROK NAVY", "cancelDate": None,
               "cancelNavArea": None, "cancelMsgYear": None, "cancelMsgNumber": None}
    return json.dumps({"broadcast-warn": [warning]}).encode()


@pytest.fixture
def world(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> tuple[Pipeline, dict[str, int]]:
    zones_file = tmp_path / "zones.geojson"
    zones_file.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"WarnCode": "S1251100"},
         "geometry": {"type": "Polygon", "coordinates": [ZONE_RING]}}]}), encoding="utf-8")
    feeds = [("nga", "nga-msi", str(tmp_path / "nga.json")), ("kma", "cap", str(tmp_path / "kma.xml"))]
    pipeline = Pipeline(load_config(write_config(db_url, feeds)))
    ids: dict[str, int] = {}
    with session_scope(pipeline.engine) as s:
        import_zone_geojson(s, zones_file, code_property="WarnCode")
        ids["zone"] = add_subscriber(s, "01020000001", ["S1251100"]).id  # type: ignore[assignment]
        ids["far"] = add_subscriber(s, "01020000002", ["S1311100"]).id  # type: ignore[assignment]
        port = add_subscriber(s, "01020000003", ["S1311100"])
        ids["port"] = port.id  # type: ignore[assignment]
        # A fixed point: a sea farm at 37.4N 126.0E with a 2 km radius.
        s.add(Subscription(subscriber_id=port.id, kind="point", lat=37.4, lon=126.0, radius_km=2.0))
        crew = add_subscriber(s, "01020000004", ["S1311100"])
        ids["crew"] = crew.id  # type: ignore[assignment]
        add_vessel(s, 440123456, "제1해양호", subscribers=[crew.id])  # type: ignore[list-item]
        # Also subscribed to the zone and the point area: must still get one message.
        both = add_subscriber(s, "01020000005", ["S1251100"])
        ids["both"] = both.id  # type: ignore[assignment]
        s.add(Subscription(subscriber_id=both.id, kind="point", lat=37.41, lon=126.01, radius_km=1.0))
    with session_scope(pipeline.engine) as s:
        ingest_positions(s, [Position(440123456, 37.2, 125.8, NOW - timedelta(minutes=10))], now=NOW)
    return pipeline, ids


def recipients(pipeline: Pipeline) -> dict[int, int]:
    with session_scope(pipeline.engine) as s:
        out: dict[int, int] = {}
        for d in s.exec(select(Delivery)):
            out[d.subscriber_id] = out.get(d.subscriber_id, 0) + 1
        return out


def test_polygon_warning_reaches_zone_point_and_vessel_once(world: tuple[Pipeline, dict[str, int]],
                                                           tmp_path: Path) -> None:
    pipeline, ids = world
    (tmp_path / "nga.json").write_bytes(nga(7, (37.1, 125.7, 37.5, 126.1)))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    pipeline.tick()
    got = recipients(pipeline)
    assert got == {ids["zone"]: 1, ids["port"]: 1, ids["crew"]: 1, ids["both"]: 1}


def test_zone_warning_reaches_the_vessel_and_the_fixed_point_in_the_zone(world: tuple[Pipeline, dict[str, int]],
                                                                          tmp_path: Path) -> None:
    pipeline, ids = world
    (tmp_path / "kma.xml").write_bytes(cap_xml("W-V", sent=NOW, zones=["S1251100"]))
    pipeline.poll(feed_spec(pipeline.config.feeds[1]), force=True)
    pipeline.tick()
    # The crew subscribed to no West Sea zone, but their boat is inside S1251100 now; the sea farm's fixed
    # point lies inside the zone's outline.
    assert recipients(pipeline) == {ids["zone"]: 1, ids["crew"]: 1, ids["both"]: 1, ids["port"]: 1}


def test_stale_vessel_position_does_not_count(world: tuple[Pipeline, dict[str, int]]) -> None:
    pipeline, ids = world
    alert = Alert(sender="kma", identifier="W-S", sent=NOW, infos=[
        Info(event="풍랑주의보", areas=[Area("인천·경기북부앞바다", geocodes={"KMA_ZONE": ["S1251100"]})])])
    with session_scope(pipeline.engine) as s:
        now_ids = pipeline.audience.subscriber_ids(s, alert, ("KMA_ZONE",), at=NOW)
        later_ids = pipeline.audience.subscriber_ids(s, alert, ("KMA_ZONE",), at=NOW + timedelta(hours=7))
    assert ids["crew"] in now_ids
    assert ids["crew"] not in later_ids  # the only fix is older than the 6 h cut-off by then


def quiet_now() -> str:
    """A quiet-hours window (KST) around the present moment."""
    hour = NOW.astimezone(timezone(timedelta(hours=9))).hour
    return f"{(hour - 1) % 24:02d}:00-{(hour + 2) % 24:02d}:00"


def test_quiet_hours_hold_on_land_never_at_sea(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    feed = tmp_path / "kma.xml"
    pipeline = Pipeline(load_config(write_config(db_url, [("kma", "cap", str(feed))])))
    with session_scope(pipeline.engine) as s:
        sleeper = add_subscriber(s, "01020000007", ["S1251100", "L1100100"], quiet_hours=quiet_now()).id
    spec = feed_spec(pipeline.config.feeds[0])
    feed.write_bytes(cap_xml("LAND-1", sent=NOW, zones=["L1100100"], event="호우주의보"))
    pipeline.poll(spec, force=True)
    pipeline.match()
    feed.write_bytes(cap_xml("SEA-1", sent=NOW + timedelta(seconds=1), zones=["S1251100"]))
    pipeline.poll(spec, force=True)
    pipeline.match()
    with session_scope(pipeline.engine) as s:
        rows = {d.params.get("hazard"): d for d in s.exec(select(Delivery).where(Delivery.subscriber_id == sleeper))}
    assert rows["호우"].next_attempt_at is not None and rows["호우"].next_attempt_at > NOW  # held till morning
    assert rows["풍랑"].next_attempt_at is None  # the sea warning goes now
    pipeline.close()


def test_hazard_preference_with_extreme_override(db_url: str, tmp_path: Path,
                                                 write_config: Callable[..., Path]) -> None:
    feed = tmp_path / "kma.xml"
    pipeline = Pipeline(load_config(write_config(db_url, [("kma", "cap", str(feed))])))
    with session_scope(pipeline.engine) as s:
        typhoon_only = add_subscriber(s, "01020000008", ["S1251100"], hazards="태풍").id
        everything = add_subscriber(s, "01020000009", ["S1251100"]).id
    spec = feed_spec(pipeline.config.feeds[0])
    feed.write_bytes(cap_xml("H-1", sent=NOW, zones=["S1251100"]))  # 풍랑주의보, Moderate
    pipeline.poll(spec, force=True)
    feed.write_bytes(cap_xml("H-2", sent=NOW + timedelta(seconds=1), zones=["S1251100"], event="태풍주의보"))
    pipeline.poll(spec, force=True)
    feed.write_bytes(cap_xml("H-3", sent=NOW + timedelta(seconds=2), zones=["S1251100"], event="지진해일경보",
                             severity="Extreme", urgency="Immediate"))
    pipeline.poll(spec, force=True)
    pipeline.match()
    with session_scope(pipeline.engine) as s:
        got: dict[int, list[str]] = {}
        for d in s.exec(select(Delivery).order_by(Delivery.id)):
            got.setdefault(d.subscriber_id, []).append(d.params["hazard"])
    assert got[everything] == ["풍랑", "태풍", "지진해일"]
    assert got[typhoon_only] == ["태풍", "지진해일"]  # the Extreme tsunami warning reaches everyone in the area
    pipeline.close()


def deliveries_of(pipeline: Pipeline, subscriber_id: int) -> list[tuple[str, str]]:
    with session_scope(pipeline.engine) as s:
        rows = s.exec(select(Delivery).where(Delivery.subscriber_id == subscriber_id).order_by(Delivery.id))
        return [(d.kind, d.status) for d in rows]


def sail(pipeline: Pipeline, lat: float, lon: float, at: datetime) -> None:
    """A batch from a live AIS receiver, through the running job's sink."""
    from subscribers.ais import ReadResult
    from subscribers.ais_stream import parse_source

    pipeline.store_positions(parse_source("tcp://127.0.0.1:10110"),
                             ReadResult(positions=[Position(440123456, lat, lon, at)]))


def test_a_boat_sailing_into_a_live_zone_warning_brings_it_to_its_crew(world: tuple[Pipeline, dict[str, int]],
                                                                       tmp_path: Path) -> None:
    pipeline, ids = world
    sail(pipeline, 35.0, 129.0, NOW - timedelta(minutes=5))  # out of 인천·경기북부앞바다 before the warning
    (tmp_path / "kma.xml").write_bytes(cap_xml("W-IN", sent=NOW - timedelta(minutes=4), zones=["S1251100"]))
    pipeline.poll(feed_spec(pipeline.config.feeds[1]), force=True)
    pipeline.tick()
    assert recipients(pipeline) == {ids["zone"]: 1, ids["both"]: 1, ids["port"]: 1}
    sail(pipeline, 37.3, 125.9, NOW - timedelta(minutes=3))  # into the zone: the warning follows the boat
    assert deliveries_of(pipeline, ids["crew"]) == [("alert", "accepted")]  # sent by the sink at once
    sail(pipeline, 35.0, 129.0, NOW - timedelta(minutes=2))
    sail(pipeline, 37.3, 125.9, NOW - timedelta(minutes=1))  # out and back in: no second message
    assert deliveries_of(pipeline, ids["crew"]) == [("alert", "accepted")]
    (tmp_path / "kma.xml").write_bytes(cap_xml("W-IN-END", sent=NOW, zones=["S1251100"], msg_type="Cancel",
                                               references=[("W-IN", NOW - timedelta(minutes=4))]))
    pipeline.poll(feed_spec(pipeline.config.feeds[1]), force=True)
    pipeline.tick()
    assert [k for k, _ in deliveries_of(pipeline, ids["crew"])] == ["alert", "cancel"]  # the 해제 reaches them too


def test_a_boat_sailing_into_a_live_polygon_warning(world: tuple[Pipeline, dict[str, int]], tmp_path: Path) -> None:
    pipeline, ids = world
    sail(pipeline, 35.0, 129.0, NOW - timedelta(minutes=5))
    (tmp_path / "nga.json").write_bytes(nga(8, (37.1, 125.7, 37.5, 126.1)))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    pipeline.tick()
    assert ids["crew"] not in recipients(pipeline)
    sail(pipeline, 36.0, 125.0, NOW - timedelta(minutes=3))  # still outside the firing area
    assert deliveries_of(pipeline, ids["crew"]) == []
    sail(pipeline, 37.3, 125.9, NOW - timedelta(minutes=2))
    assert deliveries_of(pipeline, ids["crew"]) == [("alert", "accepted")]


def test_no_live_warning_no_message(world: tuple[Pipeline, dict[str, int]], tmp_path: Path) -> None:
    pipeline, ids = world
    (tmp_path / "kma.xml").write_bytes(cap_xml("W-OLD", sent=NOW - timedelta(hours=3), zones=["S1251100"],
                                               expires=NOW - timedelta(hours=1)))
    pipeline.poll(feed_spec(pipeline.config.feeds[1]), force=True)
    pipeline.tick()
    sail(pipeline, 35.0, 129.0, NOW - timedelta(minutes=5))
    sail(pipeline, 37.3, 125.9, NOW - timedelta(minutes=1))  # into the zone of an expired warning
    assert deliveries_of(pipeline, ids["crew"]) == []


def test_the_running_job_reads_a_live_ais_receiver(world: tuple[Pipeline, dict[str, int]], tmp_path: Path,
                                                   write_config: Callable[..., Path]) -> None:
    """``[vessels] ais_sources``: the job's reader connects to the receiver, stores the boat's fix and the
    warning it sailed into goes to the crew, with nobody calling anything but the stream."""
    import socket
    import threading
    import time

    from pyais.encode import encode_dict

    pipeline, ids = world
    sail(pipeline, 35.0, 129.0, NOW - timedelta(minutes=5))
    (tmp_path / "kma.xml").write_bytes(cap_xml("W-LIVE", sent=NOW - timedelta(minutes=4), zones=["S1251100"]))
    pipeline.poll(feed_spec(pipeline.config.feeds[1]), force=True)
    pipeline.tick()
    receiver = socket.create_server(("127.0.0.1", 0))
    sentence = encode_dict({"type": 1, "mmsi": 440123456, "lat": 37.3, "lon": 125.9}, talker_id="AI",
                           sentence_type="VDM")[0]

    def serve() -> None:
        conn, _ = receiver.accept()
        with conn:
            conn.sendall(sentence.encode() + b"\r\n")
            time.sleep(2)

    threading.Thread(target=serve, daemon=True).start()
    pipeline.lease.release()  # on PostgreSQL the job below is the worker that stores positions now
    extra = f'[vessels]\nais_sources = ["tcp://127.0.0.1:{receiver.getsockname()[1]}"]\nais_flush_seconds = 0.1\n'
    feeds = [("nga", "nga-msi", str(tmp_path / "nga.json")), ("kma", "cap", str(tmp_path / "kma.xml"))]
    job = Pipeline(load_config(write_config(pipeline.config.database_url, feeds, extra=extra)))
    (stream,) = job.ais_streams()
    stream.start()
    try:
        deadline = time.monotonic() + 10
        while not deliveries_of(job, ids["crew"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stream.stop()
        receiver.close()
        job.close()
    assert deliveries_of(pipeline, ids["crew"]) == [("alert", "accepted")]


def last_lat(pipeline: Pipeline) -> float | None:
    with session_scope(pipeline.engine) as s:
        return s.exec(select(Vessel.last_lat).where(Vessel.mmsi == 440123456)).one()


def test_only_the_polling_lease_holder_stores_positions(world: tuple[Pipeline, dict[str, int]],
                                                        write_config: Callable[..., Path], tmp_path: Path) -> None:
    """Every worker may be connected to the receiver; one stores (PostgreSQL: the lease holder)."""
    pipeline, _ids = world
    assert pipeline.lease.held()
    feeds = [("nga", "nga-msi", str(tmp_path / "nga.json")), ("kma", "cap", str(tmp_path / "kma.xml"))]
    other = Pipeline(load_config(write_config(pipeline.config.database_url, feeds)))
    try:
        sail(other, 33.0, 127.0, NOW)
        if pipeline.engine.dialect.name == "postgresql":
            assert last_lat(other) == 37.2  # dropped: the first worker holds the lease
            sail(pipeline, 33.0, 127.0, NOW)
        # SQLite: a deployment is one process, which always holds the lease
        assert last_lat(other) == 33.0
    finally:
        other.close()


def test_quiet_hours_never_hold_a_polygon_warning_at_sea(world: tuple[Pipeline, dict[str, int]],
                                                         tmp_path: Path) -> None:
    """A sea farm (fixed point) with quiet hours: a navigational warning drawn as a polygon at sea, and a
    polygon alert touching the sea zone's outline, go at once, though neither names an S-zone code."""
    pipeline, ids = world
    with session_scope(pipeline.engine) as s:
        store_person = s.get(Subscriber, ids["port"])
        assert store_person is not None
        store_person.quiet_start_min, store_person.quiet_end_min = quiet_window_minutes()
        s.add(store_person)
    (tmp_path / "nga.json").write_bytes(nga(9, (37.3, 125.9, 37.5, 126.1)))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    polygon = Alert(sender="coastguard", identifier="CG-1", sent=NOW, infos=[Info(
        event="Oil spill", category=["Env"], severity="Severe", urgency="Expected",
        areas=[Area("off Incheon", polygons=[[(37.35, 125.95), (37.35, 126.05), (37.45, 126.05), (37.45, 125.95),
                                               (37.35, 125.95)]])])])
    with session_scope(pipeline.engine) as s:
        ingest(s, [polygon], feed="manual", now=NOW)
    pipeline.match()
    with session_scope(pipeline.engine) as s:
        farm = select(Delivery).where(Delivery.subscriber_id == ids["port"])
        held = [(d.alert_id, d.next_attempt_at) for d in s.exec(farm)]
    assert len(held) == 2 and all(next_at is None for _, next_at in held)


def quiet_window_minutes() -> tuple[int, int]:
    hour = NOW.astimezone(timezone(timedelta(hours=9))).hour
    return ((hour - 1) % 24) * 60, ((hour + 2) % 24) * 60


def test_warm_up_builds_the_indexes_before_the_first_warning(world: tuple[Pipeline, dict[str, int]],
                                                              tmp_path: Path) -> None:
    pipeline, ids = world
    pipeline.warm_up()
    assert pipeline.audience.zones.builds == 1 and pipeline.audience._index is not None
    (tmp_path / "kma.xml").write_bytes(cap_xml("W-WARM", sent=NOW, zones=["S1251100"]))
    pipeline.poll(feed_spec(pipeline.config.feeds[1]), force=True)
    pipeline.tick()
    assert ids["zone"] in recipients(pipeline)
    assert pipeline.audience.zones.builds == 1  # the first warning used the index built at start-up
