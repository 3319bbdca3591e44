"""Acknowledgement rates per warning, zone and vessel, and the boats inside the warned zone to call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alimcast_testkit import cap_xml
from public_testkit import deliveries, links_in, make_pipeline, publish
from sqlmodel import select

from alerts.db import session_scope
from alerts.public.ack_stats import ack_rates, count_acks_by_alert, thread_of, unconfirmed_vessels
from alerts.public.acks import acknowledge_link
from subscribers.geo_models import Vessel, VesselPosition, VesselZoneVisit
from subscribers.store import add_subscriber
from subscribers.vessels import add_vessel

NOW = datetime.now(UTC).replace(microsecond=0)


def test_rates_and_vessels_to_call(db_url: str, tmp_path: Path) -> None:
    pipeline = make_pipeline(db_url, tmp_path)
    with session_scope(pipeline.engine) as s:
        a = add_subscriber(s, "010-6000-0001", ["S1251100"]).id
        b = add_subscriber(s, "010-6000-0002", ["S1251100"]).id
        c = add_subscriber(s, "010-6000-0003", ["S1251400"]).id
        add_vessel(s, 440000001, "가호", subscribers=[b])  # type: ignore[list-item]
        add_vessel(s, 440000002, "나호", subscribers=[c])  # type: ignore[list-item]
        add_vessel(s, 440000003, "다호")  # in the zone, followed by nobody
        add_vessel(s, 440000004, "라호")  # elsewhere
        fix = NOW - timedelta(minutes=10)
        for mmsi, zone in ((440000001, "S1251100"), (440000002, "S1251100"), (440000003, "S1251100"),
                           (440000004, "S1251400")):
            vessel = s.exec(select(Vessel).where(Vessel.mmsi == mmsi)).one()
            vessel.last_lat, vessel.last_lon, vessel.last_fix_at = 37.3, 126.2, fix
            s.add(vessel)
            s.add(VesselPosition(mmsi=mmsi, lat=37.3, lon=126.2, at=fix, source="test"))
            s.add(VesselZoneVisit(mmsi=mmsi, zone_code=zone, entered_at=NOW - timedelta(hours=1)))
    publish(tmp_path, cap_xml("V1", sent=NOW, zones=["S1251100"], severity="Severe", event="풍랑경보",
                              expires=NOW + timedelta(hours=6)))
    pipeline.run_once()
    rows = {d.subscriber_id: d for d in deliveries(pipeline)}
    assert set(rows) == {a, b, c}  # c through the boat she follows
    with session_scope(pipeline.engine) as s:
        thread = thread_of(s, rows[a].alert_id)
        assert thread is not None
        before = ack_rates(s, thread)
        assert (before.total.told, before.total.acked) == (3, 0)
        assert [v.mmsi for v in unconfirmed_vessels(s, thread, now=NOW)] == [440000001, 440000002, 440000003]
        for person in (a, c):
            assert acknowledge_link(s, links_in(rows[person].text)["a"], now=NOW + timedelta(minutes=5)).ok
    with session_scope(pipeline.engine) as s:
        rates = ack_rates(s, thread)
        assert rates.to_json()["total"] == {"told": 3, "acked": 2, "ratio": 0.6667}
        assert {k: (r.told, r.acked) for k, r in rates.by_zone.items()} == {"S1251100": (2, 1)}
        assert {k: (r.told, r.acked) for k, r in rates.by_vessel.items()} == {440000001: (1, 0), 440000002: (1, 1)}
        assert count_acks_by_alert(s, [rows[a].alert_id]) == {rows[a].alert_id: 2}
        calls = unconfirmed_vessels(s, thread, now=NOW)
        assert [(v.mmsi, v.name, v.followers, v.told, v.zones) for v in calls] == [
            (440000001, "가호", 1, 1, ("S1251100",)), (440000003, "다호", 0, 0, ("S1251100",))]
        # a fix older than stale_after places a boat nowhere
        assert unconfirmed_vessels(s, thread, now=NOW + timedelta(hours=7)) == []
    pipeline.close()


def test_acks_show_cli(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from alerts.cli.app import app

    pipeline = make_pipeline(f"sqlite:///{tmp_path / 'c.db'}", tmp_path)
    with session_scope(pipeline.engine) as s:
        a = add_subscriber(s, "010-6000-0011", ["S1251100"]).id
        add_subscriber(s, "010-6000-0012", ["S1251100"])
    publish(tmp_path, cap_xml("CLI1", sent=NOW, zones=["S1251100"], severity="Severe", event="풍랑경보"))
    pipeline.run_once()
    row = next(d for d in deliveries(pipeline) if d.subscriber_id == a)
    with session_scope(pipeline.engine) as s:
        assert acknowledge_link(s, links_in(row.text)["a"], now=NOW).ok
    pipeline.close()
    runner = CliRunner()
    shown = runner.invoke(app, ["acks", "show", str(row.alert_id), "--json", "--config", str(tmp_path / "config.toml")])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["total"] == {"told": 2, "acked": 1, "ratio": 0.5}
    table = runner.invoke(app, ["acks", "show", str(row.alert_id), "--config", str(tmp_path / "config.toml")])
    assert "1 of 2 confirmed (50%)" in table.output
    missing = runner.invoke(app, ["acks", "show", "999", "--config", str(tmp_path / "config.toml")])
    assert missing.exit_code == 1 and "alert 999: not found" in missing.output
