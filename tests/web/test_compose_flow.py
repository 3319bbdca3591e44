"""Compose a notice in the browser, send it through the pipeline to the loopback NHN provider, watch the
progress numbers change, lift it (해제); the notice is public CAP 1.2 and listed in /cap/atom.xml."""

from __future__ import annotations

import re

import httpx
import pytest
from alimcast_testkit import TEMPLATES
from lxml import etree
from playwright.sync_api import expect
from sqlmodel import select
from web_testkit import PASSWORD

from alerts.db import session_scope
from alerts.models import AlertRecord, AlertThread
from alerts.pipeline import Pipeline
from alerts.testing.nhn_server import NhnTestServer
from alerts.web.models import AuditEntry
from feeds.cap import CapParser
from subscribers.store import add_subscriber

FISHER = "01011112222"
NO_KAKAO = "01033334444"


@pytest.fixture
def nhn(monkeypatch: pytest.MonkeyPatch):
    with NhnTestServer(templates={code: text for code, text in TEMPLATES.values()},
                       behaviours={NO_KAKAO: "3019"}) as server:
        monkeypatch.setenv("T_APP_KEY", server.app_key)
        monkeypatch.setenv("T_SECRET_KEY", server.secret_key)
        monkeypatch.setenv("T_SENDER_KEY", server.sender_key)
        yield server


def test_compose_send_watch_and_lift(make_web_env, live_server, page, screenshot, nhn):
    env = make_web_env(provider="nhn", base_url=nhn.base_url,
                       extra='[web]\nagency_sender = "kcg@kcg.go.kr"\nagency_name = "해양경찰청"\n')
    env.user("operator1", "operator")
    with session_scope(env.engine) as session:
        add_subscriber(session, phone=FISHER, zones=["S1251100"], name="어민")
        add_subscriber(session, phone=NO_KAKAO, zones=["S1251100"], name="선장")
        add_subscriber(session, phone="01055556666", zones=["S1311100"], name="부산")  # elsewhere
    server = live_server(env.app())
    job = Pipeline(env.config, migrate=False)  # stands for the `alimcast run` beside the console
    try:
        page.goto(server.url + "/login")
        page.fill("input[name=name]", "operator1")
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation(url=server.url + "/"):
            page.click("button[type=submit]")

        page.goto(server.url + "/compose")
        page.fill("input[name=event]", "실종선박 수색")
        page.select_option("select[name=severity]", "Severe")
        page.fill("input[name=zones]", "인천·경기북부앞바다")
        page.fill("input[name=headline]", "어선 실종: 인근 선박은 수색에 협조 바랍니다")
        page.fill("textarea[name=instruction]", "인근 선박은 VHF 16번으로 해경에 연락하십시오.")
        # draw a triangle west of 인천 on the map: three clicks, then the first point again closes it
        svg = page.locator("#draw-map svg.map")
        for x, y in ((120, 160), (170, 160), (145, 200), (120, 160)):
            svg.click(position={"x": x, "y": y})
        assert len(page.input_value("#polygon-field").split()) == 4
        page.click("button[data-mode=zones]")  # pick 경기도 on the map, then take it back
        page.locator("svg.map .land path[data-zone=L1010000]").click(position={"x": 40, "y": 60})
        assert page.input_value("input[name=zones]") == "인천·경기북부앞바다, L1010000"
        page.locator("svg.map .land path[data-zone=L1010000]").click(position={"x": 40, "y": 60})
        assert page.input_value("input[name=zones]") == "인천·경기북부앞바다"
        page.click("button[value=preview]")
        expect(page.locator("#preview-reached")).to_have_text("2")
        alimtalk = page.locator("#preview-alimtalk").inner_text()
        assert "실종선박 수색" in alimtalk and "인천·경기북부앞바다" in alimtalk
        bytes_label = page.locator("#preview-bytes").inner_text()
        assert re.match(r"\d+ bytes EUC-KR", bytes_label)
        screenshot(page, "compose-preview")

        with page.expect_navigation(url=re.compile(r"/alerts/\d+$")):
            page.click("#send-button")
        alert_id = int(page.url.rsplit("/", 1)[1])
        expect(page.locator("#n-matched")).to_have_text("2")  # matched at once by the console
        expect(page.locator("#n-queued")).to_have_text("2")
        screenshot(page, "sent-queued")

        job.tick()  # match, dispatch, collect: what the running job does every few seconds
        expect(page.locator("#n-delivered")).to_have_text("1", timeout=20_000)
        expect(page.locator("#n-fell-back")).to_have_text("1")
        assert sorted(m.recipient_no for m in nhn.messages) == sorted([FISHER, NO_KAKAO])
        assert all("실종선박 수색" in m.content for m in nhn.messages)
        screenshot(page, "sent-delivered")

        page.on("dialog", lambda dialog: dialog.accept())
        with page.expect_navigation(url=re.compile(r"/alerts/\d+$")):
            page.click("#lift-form button")
        cancel_id = int(page.url.rsplit("/", 1)[1])
        assert cancel_id != alert_id
        job.tick()
        expect(page.locator("#n-matched")).to_have_text("4", timeout=20_000)  # the whole warning: 2 + 2 해제
        expect(page.locator("#n-queued")).to_have_text("0", timeout=20_000)
        cancel_texts = [m.content for m in nhn.messages if m.template_code == TEMPLATES["cancel"][0]]
        assert len(cancel_texts) == 2 and all("해제" in t for t in cancel_texts)
        screenshot(page, "lifted")
    finally:
        job.close()

    with session_scope(env.engine) as session:
        records = session.exec(select(AlertRecord).order_by(AlertRecord.id)).all()
        assert [r.msg_type for r in records] == ["Alert", "Cancel"]
        assert {r.feed for r in records} == {"console"}
        thread = session.get(AlertThread, records[0].thread_id)
        assert thread is not None and thread.state == "cancelled"
        actions = [e.action for e in session.exec(select(AuditEntry))]
        assert "notice.alert" in actions and "notice.lift" in actions

    # public CAP: the Atom feed lists both, each parses back to the same alert with alimcast's own parser
    feed = httpx.get(server.url + "/cap/atom.xml")
    assert feed.status_code == 200
    links = etree.fromstring(feed.content).findall(".//{http://www.w3.org/2005/Atom}link[@rel='alternate']")
    assert len(links) == 2
    xml = httpx.get(links[-1].get("href"))
    parsed = CapParser().parse(xml.content, origin="test").alerts
    assert parsed[0].identifier == records[0].identifier and parsed[0].sender == "kcg@kcg.go.kr"
    assert parsed[0].infos[0].areas[0].polygons
