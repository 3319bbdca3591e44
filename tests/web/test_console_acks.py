"""The console where acknowledgements and costs meet the operator, in a real browser (Debian's Chromium):

* a Severe warning at sea reaches people by zone and by the boat they follow; the one-alert page lists the boats
  inside the warned zone (by their latest AIS fix) that nobody confirmed; a skipper confirms on the public
  ``/a/<token>`` page on her phone, and without a reload the console's count goes up and her boat leaves the
  list of boats to call;
* the Costs page shows the month's figures with their breakdowns and the chart drawn by the console as SVG.

Screenshots are kept in tests/web/artifacts/ to be looked at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from alimcast_testkit import cap_xml
from playwright.sync_api import expect
from public_testkit import LINK, public_config_text, publish
from sqlmodel import select
from web_testkit import PASSWORD, LiveServer

from alerts.config import Prices, load_config
from alerts.costs import record_costs
from alerts.db import session_scope
from alerts.models import AlertRecord, AlertThread, Delivery
from alerts.pipeline import Pipeline
from alerts.public.models import Acknowledgement
from alerts.web.app import create_app
from alerts.web.auth import add_user
from subscribers.geo_models import Vessel, VesselPosition, VesselZoneVisit, ZonePolygon
from subscribers.store import add_subscriber
from subscribers.vessels import add_vessel

NOW = datetime.now(UTC).replace(microsecond=0)
ZONE = "S1251100"
#: MMSI, name, who follows it (phone), zone of its open visit
BOATS = ((440000001, "가호", "01070000002", ZONE), (440000002, "나호", "01070000003", ZONE),
         (440000003, "다호", None, ZONE), (440000004, "라호", None, "S1251200"))


def _log_in(page: Any, url: str, name: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation(url=url + "/"):
        page.click("button[type=submit]")


@pytest.fixture
def harbour(tmp_path: Path, live_server: Callable[[Any], LiveServer],
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Pipeline, LiveServer, Path]]:
    """A pipeline (dry-run provider) and the console serving its database, people and boats in one sea zone."""
    monkeypatch.delenv("ALIMCAST_CONFIG", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(public_config_text(f"sqlite:///{tmp_path / 'harbour.db'}", tmp_path / "feed.xml"),
                    encoding="utf-8")
    config = load_config(path)
    pipeline = Pipeline(config)  # migrates
    with session_scope(pipeline.engine) as s:
        for i, code in enumerate((ZONE, "S1251200")):
            geom = shapely.box(125.6 + 0.5 * i, 37.4 - 0.4 * i, 126.1 + 0.5 * i, 37.8 - 0.4 * i)
            b = geom.bounds
            s.add(ZonePolygon(code=code, name=code, geometry=shapely.to_wkb(geom), source="test", min_lon=b[0],
                              min_lat=b[1], max_lon=b[2], max_lat=b[3]))
        add_subscriber(s, "010-7000-0001", [ZONE], name="김선장")  # told by zone, follows no boat
        followers = {phone: add_subscriber(s, phone, ["S1251400"], name=f"선원{phone[-1]}").id  # another sea
                     for _, _, phone, _ in BOATS if phone}
        fix = datetime.now(UTC) - timedelta(minutes=12)  # NOW is the module's import time: a suite takes minutes
        for i, (mmsi, name, phone, zone) in enumerate(BOATS):
            lat, lon = 37.48 + 0.1 * i, 125.72 + 0.12 * i
            add_vessel(s, mmsi, name, subscribers=[followers[phone]] if phone else [])  # type: ignore[list-item]
            vessel = s.exec(select(Vessel).where(Vessel.mmsi == mmsi)).one()
            vessel.last_lat, vessel.last_lon, vessel.last_fix_at = lat, lon, fix
            s.add(vessel)
            s.add(VesselPosition(mmsi=mmsi, lat=lat, lon=lon, at=fix, source="test"))
            s.add(VesselZoneVisit(mmsi=mmsi, zone_code=zone, entered_at=NOW - timedelta(hours=1)))
        add_user(s, "park", PASSWORD, "operator")
    server = live_server(create_app(config, engine=pipeline.engine, extras={"refresh_ms": 400}))
    config.raw.setdefault("web", {})["public_url"] = server.url  # messages link to the site as people reach it
    yield pipeline, server, tmp_path
    pipeline.close()


def _ack_link(pipeline: Pipeline, server: LiveServer, phone: str) -> str:
    with session_scope(pipeline.engine) as s:
        from subscribers.models import Subscriber

        person = s.exec(select(Subscriber).where(Subscriber.phone == phone)).one()
        text = s.exec(select(Delivery.text).where(Delivery.subscriber_id == person.id)).one()
    links = dict(LINK.findall(text.replace(server.url, "https://alert.test")))
    return f"{server.url}/a/{links['a']}"


def test_boats_to_call_and_counts_follow_a_confirmation(harbour: tuple[Pipeline, LiveServer, Path], browser: Any,
                                                         page: Any, screenshot: Any) -> None:
    pipeline, server, tmp = harbour
    publish(tmp, cap_xml("ACK1", sent=NOW, zones=[ZONE], severity="Severe", event="풍랑경보",
                         expires=NOW + timedelta(hours=6)))
    pipeline.run_once()
    with session_scope(pipeline.engine) as s:
        alert_id = s.exec(select(AlertRecord.id)).one()
        assert len(s.exec(select(Delivery)).all()) == 3  # 김선장 by zone, the crews of 가호 and 나호
    _log_in(page, server.url, "park")
    page.goto(f"{server.url}/alerts/{alert_id}")
    boats = page.locator("#boats tr.boat")
    assert boats.count() == 3  # 라호 is in another zone
    assert page.locator("#boats tr.to-call").count() == 3
    assert page.inner_text("#n-acknowledged") == "0"
    row = page.locator("#boats tr[data-mmsi='440000001']")
    assert "가호" in row.inner_text() and "1 / 1" in row.inner_text()
    assert re.search(r"\b1[23] min ago", row.inner_text()), row.inner_text()  # a minute may turn meanwhile
    assert "nobody follows it" in page.locator("#boats tr[data-mmsi='440000003']").inner_text()
    assert "0 of 3 told" in page.inner_text("#acks h2")
    assert page.locator("svg.boats-map .boat.to-call").count() == 3
    screenshot(page, "before")

    # the crew of 가호 confirm on a phone, on the public page their message links to
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, locale="ko-KR")
    try:
        ack_page = phone.new_page()
        ack_page.goto(_ack_link(pipeline, server, "01070000002"))
        with ack_page.expect_navigation():
            ack_page.click("button.confirm")
        ack_page.wait_for_selector("text=확인하셨습니다")
    finally:
        phone.close()
    with session_scope(pipeline.engine) as s:
        assert len(s.exec(select(Acknowledgement)).all()) == 1

    # the console follows by itself (no reload): the count, the rates, and 가호 leaves the boats to call
    # (expect() polls from Python: the console's CSP forbids the eval wait_for_function needs)
    expect(page.locator("#n-acknowledged")).to_have_text("1")
    expect(page.locator("#boats tr.confirmed[data-mmsi='440000001']")).to_have_count(1)
    assert page.locator("#boats tr.to-call").count() == 2
    assert "confirmed (1)" in page.locator("#boats tr[data-mmsi='440000001']").inner_text()
    assert "1 of 3 told" in page.inner_text("#acks h2") and "33%" in page.inner_text("#acks h2")
    assert page.locator("svg.boats-map .boat.to-call").count() == 2
    assert page.locator("svg.boats-map .boat.confirmed[data-mmsi='440000001']").count() == 1
    vessels = page.inner_text("#ack-vessels")
    assert "가호" in vessels and "100%" in vessels and "나호" in vessels
    assert "0%" in page.inner_text("#ack-zones")  # 김선장, told by zone, has not confirmed
    screenshot(page, "after")

    page.goto(server.url + "/alerts")
    assert page.inner_text("table tbody tr >> nth=0 >> td >> nth=-1") == "1"  # the "confirmed" column
    page.goto(server.url + "/")
    assert page.inner_text(".alert-item .n-acknowledged") == "1"
    screenshot(page, "now")


def _month_rows(session: Any, thread: AlertThread, alert: AlertRecord, subs: list[int], when: datetime,
                delivered: int, fell_back: int) -> list[Delivery]:
    text = "[풍랑 주의보] 발표\n구역: 서해중부먼바다\n발효: 3월 10일(화) 09:00\n조업 선박은 안전한 곳으로 대피하십시오."
    rows = [Delivery(alert_id=alert.id, thread_id=thread.id, subscriber_id=subs[i], text=text, provider="nhn",
                     status="delivered" if i < delivered else "fallback_sent",
                     channel="alimtalk" if i < delivered else "lms", fallback_kind="LMS", sent_at=when,
                     finished_at=when) for i in range(delivered + fell_back)]
    session.add_all(rows)
    session.flush()
    return rows


def test_costs_page_shows_the_report_and_the_chart(make_web_env: Any, live_server: Any, page: Any,
                                                    screenshot: Any) -> None:
    invoices = "".join(f'[[baseline.invoices]]\nmonth = "{m}"\nmessages = 30\ncost_krw = {c}\n\n'
                       for m, c in (("2025-11", 1170), ("2025-12", 1209)))
    env = make_web_env(extra=invoices)
    env.user("lee", "viewer")
    with session_scope(env.engine) as s:
        subs = [add_subscriber(s, f"0103100{i:04d}", ["S1251100"]).id for i in range(30)]
        for month, delivered, fell_back in ((9, 20, 2), (10, 12, 6), (11, 25, 3)):
            when = datetime(2026, month, 10, 3, tzinfo=UTC)
            thread = AlertThread(feed="kma")
            s.add(thread)
            s.flush()
            alert = AlertRecord(sender="kma", identifier=f"C{month}", sent=when, status="Actual", msg_type="Alert",
                                scope="Public", event="풍랑주의보", feed="kma", thread_id=thread.id)
            s.add(alert)
            s.flush()
            rows = _month_rows(s, thread, alert, subs, when, delivered, fell_back)  # type: ignore[arg-type]
            record_costs(s, rows, Prices(8, 12, 39), dry_run=False, now=when)
    server = live_server(env.app())
    _log_in(page, server.url, "lee")
    page.goto(server.url + "/costs?month=2026-11")
    # the month: 25 AlimTalk at 8 + 3 LMS at 39 = 317 KRW against 28 LMS at 39 = 1,092 KRW
    stats = page.inner_text("section.card >> nth=0")
    assert "28" in stats and "317 ₩" in stats and "1,092 ₩" in stats
    details = page.inner_text("#cost-details")
    assert "89.3%" in details and "0 / 3" in details and "2025-11" in details and "1,170 ₩" in details
    breakdowns = page.inner_text("#cost-breakdowns")
    assert "풍랑" in breakdowns and "kma" in breakdowns and "S1251100" in breakdowns and "nhn" in breakdowns
    chart = page.locator("#cost-chart img")
    chart.scroll_into_view_if_needed()
    expect(chart).to_have_js_property("complete", True)
    assert chart.evaluate("img => img.naturalWidth") > 0  # the SVG loaded and decoded
    svg = page.request.get(server.url + "/costs/chart.svg?month=2026-11")
    assert svg.ok and svg.headers["content-type"].startswith("image/svg+xml")
    body = svg.text()
    # Sep 238 + Oct 330 + Nov 317 = 885 KRW paid instead of 858 + 702 + 1,092 = 2,652 KRW on LMS
    assert "3 months on AlimTalk" in body and "saved 1,767 KRW (67%)" in body
    assert "Before AlimTalk (old invoice)" in body
    assert page.request.get(server.url + "/costs/chart.svg?month=2026-13").status == 400
    screenshot(page, "costs")


def test_rates_are_reused_until_someone_confirms(harbour: tuple[Pipeline, LiveServer, Path]) -> None:
    """The page asks every few seconds; the rates (every person told) are read again only when a confirmation
    arrived or they are older than RATES_TTL. The boats to call are read afresh every time."""
    from alerts.public.acks import record_ack
    from alerts.web.ack_view import RATES_TTL, ack_view
    from alerts.web.notices import zone_name

    pipeline, _, tmp = harbour
    publish(tmp, cap_xml("ACK2", sent=NOW, zones=[ZONE], severity="Severe", event="풍랑경보",
                         expires=NOW + timedelta(hours=6)))
    pipeline.run_once()
    cache: dict = {}
    with session_scope(pipeline.engine) as s:
        thread = s.exec(select(AlertThread)).one()
        first = ack_view(s, thread, pipeline.config, NOW, zone_name, cache)
        again = ack_view(s, thread, pipeline.config, NOW + timedelta(seconds=5), zone_name, cache)
        assert again.rates is first.rates and len(again.to_call) == 3
        d = s.exec(select(Delivery).order_by(Delivery.id)).first()
        assert d is not None
        record_ack(s, thread.id, d.subscriber_id, d.alert_id, now=NOW)  # type: ignore[arg-type]
    with session_scope(pipeline.engine) as s:
        thread = s.exec(select(AlertThread)).one()
        after = ack_view(s, thread, pipeline.config, NOW + timedelta(seconds=6), zone_name, cache)
        assert after.rates is not first.rates and after.rates.total.acked == 1
        later = ack_view(s, thread, pipeline.config, NOW + timedelta(seconds=6) + RATES_TTL, zone_name, cache)
        assert later.rates is not after.rates and later.rates.total.to_json() == after.rates.total.to_json()
        assert len(cache) == 1  # older figures of the warning are dropped
