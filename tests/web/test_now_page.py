"""The Now page: a live alert is drawn on the map with its severity, expiry and progress; it updates itself."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from web_testkit import PASSWORD

from alerts.db import session_scope
from alerts.ingest import ingest
from alerts.models import Delivery
from feeds.model import Alert, Area, Circle, Info
from subscribers.sqltypes import utcnow
from subscribers.store import add_subscriber


def storm_alert(identifier: str = "T-1", *, severity: str = "Severe", zones: tuple[str, ...] = ("L1010200",),
                hours: int = 6) -> Alert:
    now = utcnow()
    area = Area(desc="서해 중부 해상", polygons=[[(37.0, 125.0), (37.5, 125.0), (37.5, 125.8), (37.0, 125.8),
                                               (37.0, 125.0)]],
                circles=[Circle(35.1, 129.1, 20.0)], geocodes={"KMA_ZONE": list(zones)})
    info = Info(event="풍랑경보", category=["Met"], urgency="Immediate", severity=severity, certainty="Observed",
                language="ko-KR", expires=now + timedelta(hours=hours), headline="서해중부 풍랑경보",
                instruction="조업 선박은 대피하십시오.", areas=[area])
    return Alert(sender="kma@kma.go.kr", identifier=identifier, sent=now - timedelta(minutes=1), infos=[info])


def log_in(page, url: str, name: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation(url=url + "/"):
        page.click("button[type=submit]")


def test_live_alert_on_the_map_and_progress_updates_by_itself(web_env, live_server, page, screenshot):
    web_env.user("kim", "viewer")
    with session_scope(web_env.engine) as session:
        ingest(session, [storm_alert()], feed="kma", now=utcnow())
        person = add_subscriber(session, phone="01012345678", zones=["L1010200"], name="홍길동")
    server = live_server(web_env.app())
    log_in(page, server.url, "kim")
    item = page.locator(".alert-item").first
    assert "서해중부 풍랑경보" in item.inner_text() and "Severe" in item.inner_text()
    assert page.locator("svg.map .shape.sev-Severe path").count() == 1
    assert page.locator("svg.map .shape.sev-Severe circle").count() == 1
    assert item.locator(".n-matched").inner_text() == "0"
    screenshot(page, "now")
    # the job matches and sends: the page shows it without a reload
    with session_scope(web_env.engine) as session:
        from sqlmodel import select

        from alerts.models import AlertRecord

        record = session.exec(select(AlertRecord)).one()
        session.add(Delivery(alert_id=record.id, thread_id=record.thread_id, subscriber_id=person.id,
                             status="delivered", text="x"))
    expect(page.locator(".alert-item .n-delivered")).to_have_text("1", timeout=20_000)
    assert page.locator(".alert-item .n-matched").inner_text() == "1"
    screenshot(page, "now-updated")


def test_live_fragment_answers_204_when_unchanged(web_env, live_server):
    import httpx
    from web_testkit import login

    web_env.user("kim", "viewer")
    with session_scope(web_env.engine) as session:
        ingest(session, [storm_alert()], feed="kma", now=utcnow())
    server = live_server(web_env.app())
    with httpx.Client(base_url=server.url) as client:
        login(client, "kim")
        first = client.get("/now/live")
        version = first.headers["X-Live-Version"]
        assert first.status_code == 200 and "서해중부 풍랑경보" in first.text
        assert client.get("/now/live", headers={"X-Live-Version": version}).status_code == 204
        with session_scope(web_env.engine) as session:
            ingest(session, [storm_alert("T-2", severity="Extreme")], feed="kma", now=utcnow())
        changed = client.get("/now/live", headers={"X-Live-Version": version})
        assert changed.status_code == 200 and changed.headers["X-Live-Version"] != version
