"""Roles and the remaining pages: a viewer cannot send or change anything, an operator sees masked numbers
and cannot search by partial digits, an admin sees numbers whole; subscribers CSV import reports per line;
templates, costs and audit pages render. Real HTTP against a live server, plus one browser pass with
screenshots of each page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlmodel import select
from web_testkit import PASSWORD, login, page_csrf

from alerts.db import session_scope
from alerts.web.models import AuditEntry
from subscribers.models import Subscriber
from subscribers.store import add_subscriber

PHONE = "01098765432"


@pytest.fixture
def people(web_env):
    with session_scope(web_env.engine) as session:
        add_subscriber(session, phone=PHONE, zones=["S1251100"], name="김선장")
        add_subscriber(session, phone="01011110000", zones=["L1010200"], name="이농부")
    for name, role in (("viewer1", "viewer"), ("operator1", "operator"), ("admin1", "admin")):
        web_env.user(name, role)
    return web_env


@contextmanager
def client_for(server, name: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as client:
        assert login(client, name).status_code == 303
        yield client


def test_viewer_cannot_send_or_change(people, live_server):
    server = live_server(people.app())
    with client_for(server, "viewer1") as viewer:
        token = page_csrf(viewer.get("/").text)
        form = {"csrf_token": token, "event": "항만 폐쇄", "zones": "S1251100", "severity": "Severe",
                "urgency": "Immediate", "certainty": "Observed", "category": "Safety", "action": "send"}
        assert viewer.post("/compose", data=form).status_code == 403
        assert viewer.get("/compose").status_code == 403
        assert viewer.post("/subscribers/1/pause", data={"csrf_token": token}).status_code == 403
        assert viewer.post("/alerts/1/lift", data={"csrf_token": token}).status_code == 403
        assert "Compose" not in viewer.get("/").text  # not even offered
    with session_scope(people.engine) as session:
        assert session.exec(select(Subscriber).where(Subscriber.status != "active")).first() is None


def test_phone_numbers_masked_for_all_but_admins(people, live_server):
    server = live_server(people.app())
    with client_for(server, "operator1") as operator, client_for(server, "admin1") as admin:
        page = operator.get("/subscribers").text
        assert "010-****-5432" in page and PHONE not in page
        assert operator.get("/subscribers", params={"q": PHONE}).text.count("010-****-5432") == 1  # whole number
        assert "010-****-5432" in operator.get("/subscribers", params={"q": "5432"}).text  # last four digits
        assert operator.get("/subscribers", params={"q": "98765"}).status_code == 400  # no digit-by-digit probing
        assert PHONE in admin.get("/subscribers").text
        assert PHONE in admin.get("/subscribers", params={"q": "98765"}).text


def test_pause_resume_remove_and_csv_import_are_audited(people, live_server, tmp_path):
    server = live_server(people.app())
    with client_for(server, "operator1") as operator:
        token = page_csrf(operator.get("/subscribers").text)
        with session_scope(people.engine) as session:
            person = session.exec(select(Subscriber).where(Subscriber.phone == PHONE)).one()
        for action, status in (("pause", "paused"), ("resume", "active"), ("remove", "unsubscribed")):
            assert operator.post(f"/subscribers/{person.id}/{action}", data={"csrf_token": token}).status_code == 303
            with session_scope(people.engine) as session:
                assert session.get(Subscriber, person.id).status == status
        csv = "phone,name,zones,min_severity\n01022223333,박어민,서해중부먼바다,Minor\nnot-a-phone,x,S1251100,\n"
        answer = operator.post("/subscribers/import", data={"csrf_token": token},
                               files={"file": ("people.csv", csv.encode(), "text/csv")})
        assert answer.status_code == 200
        assert "<b>1</b> added" in answer.text and "line 3" in answer.text
    with session_scope(people.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEntry))]
        assert session.exec(select(Subscriber).where(Subscriber.phone == "01022223333")).one().name == "박어민"
    assert {"subscriber.pause", "subscriber.resume", "subscriber.remove", "subscriber.import"} <= set(actions)


def test_pages_in_the_browser(people, live_server, page, screenshot):
    server = live_server(people.app())
    page.goto(server.url + "/login")
    page.fill("input[name=name]", "operator1")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation(url=server.url + "/"):
        page.click("button[type=submit]")
    page.goto(server.url + "/subscribers")
    assert page.locator("#subscriber-table td.phone").first.inner_text() == "010-****-5432"
    screenshot(page, "subscribers")
    page.goto(server.url + "/templates")
    assert page.locator("#template-alert .fallback-kind").inner_text() in ("SMS", "LMS")
    screenshot(page, "templates")
    page.goto(server.url + "/costs")
    assert page.locator("#cost-chart").count() == 1
    screenshot(page, "costs")
    page.goto(server.url + "/audit")
    assert "login" in page.locator("#audit-table").inner_text()
    screenshot(page, "audit")
