"""The public pages in a real browser at a phone's size (Debian's Chromium via Playwright): subscribing with
the code read from the loopback provider's record, ending a subscription from its link, reading and
confirming a warning from its link. Screenshots are kept in tests/web/artifacts/ to be looked at.

And their security: CSRF refused, one person's link cannot read or change another's subscription, the
subscription page answers the same for subscribed and unknown numbers, guessing codes and links is throttled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from alimcast_testkit import cap_xml
from public_testkit import LINK, public_config_text, publish
from sqlmodel import select
from web_testkit import LiveServer, page_csrf

from alerts.config import Config, load_config
from alerts.db import session_scope
from alerts.delivery.providers.nhn import NhnProvider
from alerts.models import Delivery
from alerts.pipeline import Pipeline
from alerts.public.models import Acknowledgement
from alerts.testing import NhnTestServer
from alerts.web.app import create_app
from subscribers.geo_models import ZonePolygon
from subscribers.models import Subscriber
from subscribers.store import add_subscriber, zone_codes_of

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
         "locale": "ko-KR", "timezone_id": "Asia/Seoul"}
TEMPLATES = {"ALIMCAST_VERIFY_01": "[#{sender}] 인증번호 #{code}\n#{minutes}분 안에 입력해 주세요.",
             "ALIMCAST_WELCOME_01": "[#{sender}] 수신 신청이 완료되었습니다.\n구역: #{zones}\n"
                                    "수신 설정·해지: #{manage_url}"}
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Site:
    config: Config
    server: LiveServer
    pipeline: Pipeline
    nhn: NhnTestServer
    tmp: Path

    def warn(self, identifier: str, *, severity: str = "Severe", zones: tuple[str, ...] = ("S1251100",)) -> None:
        publish(self.tmp, cap_xml(identifier, sent=NOW, zones=list(zones), severity=severity, event="풍랑경보",
                                  expires=NOW + timedelta(hours=6)))
        self.pipeline.run_once()

    def links(self, phone: str) -> dict[str, str]:
        """The links in the newest message to this person, as they read it."""
        with session_scope(self.pipeline.engine) as s:
            person = s.exec(select(Subscriber).where(Subscriber.phone == phone)).one()
            text = s.exec(select(Delivery.text).where(Delivery.subscriber_id == person.id)
                          .order_by(Delivery.id.desc())).first()  # type: ignore[union-attr]
        assert text
        return {kind: f"{self.server.url}/{kind}/{token}" for kind, token in LINK.findall(text.replace(
            self.server.url, "https://alert.test"))}


def _outline(code: str, name: str, x: float, y: float) -> ZonePolygon:
    geom = shapely.box(x, y, x + 0.5, y + 0.4)
    return ZonePolygon(code=code, name=name, geometry=shapely.to_wkb(geom), source="test", min_lon=x, min_lat=y,
                       max_lon=x + 0.5, max_lat=y + 0.4)


@pytest.fixture
def site(tmp_path: Path, live_server: Callable[[Any], LiveServer], monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.delenv("ALIMCAST_CONFIG", raising=False)
    with NhnTestServer(templates=TEMPLATES) as nhn:
        path = tmp_path / "config.toml"
        path.write_text(public_config_text(f"sqlite:///{tmp_path / 'site.db'}", tmp_path / "feed.xml"),
                        encoding="utf-8")
        config = load_config(path)
        pipeline = Pipeline(config)  # migrates
        with session_scope(pipeline.engine) as s:
            for i, (code, name) in enumerate((("S1251100", "인천·경기북부앞바다"), ("S1251200", "인천·경기남부앞바다"),
                                              ("S1252010", "서해중부안쪽먼바다"))):
                s.add(_outline(code, name, 125.6 + 0.5 * (i % 2), 37.4 - 0.4 * i))
        provider = NhnProvider({"base_url": nhn.base_url, "app_key": nhn.app_key, "secret_key": nhn.secret_key,
                                "sender_key": nhn.sender_key, "resend_send_no": "0212345678", "retry_attempts": 1})
        server = live_server(create_app(config, engine=pipeline.engine, extras={"provider": provider}))
        # messages link to the site as people reach it
        config.raw.setdefault("web", {})["public_url"] = server.url
        yield Site(config=config, server=server, pipeline=pipeline, nhn=nhn, tmp=tmp_path)
        provider.close()
        pipeline.close()


@pytest.fixture
def phone_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(**PHONE)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_subscribe_with_the_code_from_the_provider(site: Site, phone_page: Any, screenshot: Any) -> None:
    page = phone_page
    page.goto(site.server.url + "/subscribe")
    screenshot(page, "1-phone")
    page.fill("#phone", "010-7000-0001")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url.endswith("/subscribe/code"), page.inner_text("main")
    message = [m for m in site.nhn.messages if m.recipient_no == "01070000001"][-1]
    assert message.template_code == "ALIMCAST_VERIFY_01"
    code = re.search(r"인증번호 (\d{6})", message.content).group(1)  # type: ignore[union-attr]
    page.fill("#code", code)
    screenshot(page, "2-code")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url.endswith("/subscribe/choose")
    assert page.locator("svg.seamap path.zone").count() == 3  # the imported outlines, drawn by alimcast itself
    screenshot(page, "3-choose-top", full_page=False)
    page.click("details.sea summary:has-text('서해')")
    page.click("label.chip:has-text('서해중부먼바다')")
    page.click("label.chip:has-text('인천·경기북부앞바다')")
    page.select_option("#land_region", "L1100100")
    page.select_option("#min_severity", "Moderate")
    page.fill("#vessel", "440123456")
    page.fill("input[name=quiet_start]", "22:00")
    page.fill("input[name=quiet_end]", "06:00")
    page.check("input[name=consent]")
    screenshot(page, "3-choose")
    page.locator("label.chip:has-text('서해중부먼바다')").scroll_into_view_if_needed()
    screenshot(page, "3a-zones-seen-on-the-phone", full_page=False)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "신청되었습니다" in page.inner_text("h1")
    screenshot(page, "4-done")
    with session_scope(site.pipeline.engine) as s:
        person = s.exec(select(Subscriber).where(Subscriber.phone == "01070000001")).one()
        assert (person.status, person.consent_source, person.min_severity) == ("active", "web", "Moderate")
        assert person.consent_text.startswith("[2026-12-01] ") and person.quiet_start_min == 22 * 60
        assert zone_codes_of(s, person.id) == ["L1100100", "S1251100", "S1252010", "S1252020"]  # type: ignore[arg-type]
    welcome = site.nhn.messages[-1]
    assert welcome.template_code == "ALIMCAST_WELCOME_01" and "/u/" in welcome.content
    # the link in the confirmation opens this person's own settings
    page.goto(re.search(r"https?://\S+/u/\S+", welcome.content).group(0))  # type: ignore[union-attr]
    assert "010-****-0001" in page.inner_text("main")
    assert page.is_checked("input[value='서해중부먼바다']") and page.is_checked("input[value=S1251100]")
    screenshot(page, "5-manage")


def test_unsubscribe_from_the_link_in_a_message(site: Site, phone_page: Any, screenshot: Any) -> None:
    with session_scope(site.pipeline.engine) as s:
        add_subscriber(s, "010-7000-0002", ["S1251100"])
        add_subscriber(s, "010-7000-0003", ["S1251100"])
    site.warn("U1", severity="Moderate")
    page = phone_page
    page.goto(site.links("01070000002")["u"])
    assert "010-****-0002" in page.inner_text("main") and "0003" not in page.content()
    page.click("text=수신 해지")
    page.wait_for_selector("text=수신이 해지되었습니다")
    screenshot(page, "unsubscribed")
    with session_scope(site.pipeline.engine) as s:
        statuses = dict(s.exec(select(Subscriber.phone, Subscriber.status)).all())
    assert statuses == {"01070000002": "unsubscribed", "01070000003": "active"}  # at once; only this person
    site.warn("U2", severity="Moderate")
    with session_scope(site.pipeline.engine) as s:
        phones = s.exec(select(Subscriber.phone, Delivery.alert_id)
                        .join(Delivery, Delivery.subscriber_id == Subscriber.id)).all()  # type: ignore[arg-type]
    by_alert: dict[int, set[str]] = {}
    for phone, alert_id in phones:
        by_alert.setdefault(alert_id, set()).add(phone)
    assert list(by_alert.values()) == [{"01070000002", "01070000003"}, {"01070000003"}]


def test_open_an_ack_link_and_confirm(site: Site, phone_page: Any, screenshot: Any) -> None:
    with session_scope(site.pipeline.engine) as s:
        add_subscriber(s, "010-7000-0004", ["S1251100"], name="김선장")
    site.warn("A1")
    link = site.links("01070000004")["a"]
    page = phone_page
    page.goto(link)
    assert "인천·경기북부앞바다" in page.inner_text("main") and "대피" in page.inner_text("main")
    assert page.locator("svg.zonemap path.warned").count() == 1
    screenshot(page, "warning")
    with session_scope(site.pipeline.engine) as s:
        assert s.exec(select(Acknowledgement)).all() == []  # opening is not confirming
    with page.expect_navigation():
        page.click("button.confirm")
    page.wait_for_selector("text=확인하셨습니다")
    screenshot(page, "confirmed")
    with session_scope(site.pipeline.engine) as s:
        (ack,) = s.exec(select(Acknowledgement)).all()
        assert ack.how == "link"


# -- security over plain HTTP ----------------------------------------------------------------------------


def _form_token(client: httpx.Client, path: str) -> str:
    return page_csrf(client.get(path).text)


def test_csrf_is_refused_on_the_public_forms(site: Site) -> None:
    with session_scope(site.pipeline.engine) as s:
        add_subscriber(s, "010-7000-0005", ["S1251100"])
    site.warn("C1")
    links = site.links("01070000005")
    with httpx.Client(base_url=site.server.url) as client:
        a_path, u_path = links["a"].removeprefix(site.server.url), links["u"].removeprefix(site.server.url)
        token = _form_token(client, a_path)
        assert client.post(a_path, data={}).status_code == 403  # no token
        assert client.post(a_path, data={"csrf_token": "x" * 43}).status_code == 403  # wrong token
        assert client.post(a_path, data={"csrf_token": token},
                           headers={"Origin": "https://evil.example"}).status_code == 403  # another site
        assert client.post(u_path + "/unsubscribe", data={}).status_code == 403
        assert client.post("/subscribe", data={"phone": "010-7000-0099"}).status_code == 403
    with session_scope(site.pipeline.engine) as s:
        assert s.exec(select(Acknowledgement)).all() == []
        assert s.exec(select(Subscriber.status).where(Subscriber.phone == "01070000005")).one() == "active"
    assert site.nhn.sends_to("01070000099") == 0


def test_one_persons_link_cannot_read_or_change_anothers(site: Site) -> None:
    with session_scope(site.pipeline.engine) as s:
        add_subscriber(s, "010-7000-0006", ["S1251100"], name="A")
        b = add_subscriber(s, "010-7000-0007", ["S1251100", "S1251200"], name="B").id
    site.warn("P1")
    a_links = site.links("01070000006")
    with httpx.Client(base_url=site.server.url) as client:
        path = a_links["u"].removeprefix(site.server.url)
        html = client.get(path, params={"subscriber_id": b, "phone": "01070000007"}).text
        assert "010-****-0006" in html and "0007" not in html and "S1251200\" checked" not in html
        token = page_csrf(html)
        saved = client.post(path, data={"csrf_token": token, "zones": ["S1252010"], "subscriber_id": str(b),
                                         "min_severity": "Severe", "language": "ko"})
        assert saved.status_code == 200
        # the ack link of A is not a manage link, nor B's ack link
        assert client.get(a_links["a"].replace("/a/", "/u/").removeprefix(site.server.url)).status_code == 404
    with session_scope(site.pipeline.engine) as s:
        people = {p.phone: p for p in s.exec(select(Subscriber)).all()}
        assert zone_codes_of(s, people["01070000006"].id) == ["S1252010"]  # type: ignore[arg-type]
        assert zone_codes_of(s, b) == ["S1251100", "S1251200"]  # type: ignore[arg-type]
        assert people["01070000007"].min_severity == "Unknown"


def test_subscription_page_reveals_nothing_and_guessing_is_throttled(site: Site) -> None:
    with session_scope(site.pipeline.engine) as s:
        add_subscriber(s, "010-7000-0008", ["S1251100"])
    answers = []
    for phone in ("010-7000-0008", "010-7000-0009"):  # subscribed, and not
        with httpx.Client(base_url=site.server.url) as client:
            sent = client.post("/subscribe", data={"phone": phone, "csrf_token": _form_token(client, "/subscribe")})
            code_page = client.get("/subscribe/code")
            wrong = client.post("/subscribe/code", data={"code": "000000" if "000000" not in site.nhn.messages[-1]
                                                         .content else "111111",
                                                         "csrf_token": page_csrf(code_page.text)})
            answers.append((sent.status_code, sent.headers.get("location"), code_page.status_code,
                            wrong.status_code, re.sub(r'content="[^"]+"|value="[^"]+"', "", wrong.text)))
    assert answers[0] == answers[1]
    # brute force of one code: five wrong tries, then the code is dead and the page sends you back
    with httpx.Client(base_url=site.server.url) as client:
        client.post("/subscribe", data={"phone": "010-7000-0010", "csrf_token": _form_token(client, "/subscribe")})
        code = re.search(r"인증번호 (\d{6})", site.nhn.messages[-1].content).group(1)  # type: ignore[union-attr]
        statuses = []
        for i in range(1, 6):
            token = page_csrf(client.get("/subscribe/code").text)
            guess = f"{(int(code) + i) % 1_000_000:06d}"
            statuses.append(client.post("/subscribe/code", data={"code": guess, "csrf_token": token}).status_code)
        assert statuses == [400] * 4 + [410]
        assert client.get("/subscribe/code").status_code == 303  # the attempt is over: back to the start
    # unknown links: the same 404 page, then 429 for a client that keeps trying
    with httpx.Client(base_url=site.server.url) as client:
        codes = [client.get(f"/a/{'x' * 32}{i}").status_code for i in range(31)]
        assert codes[:30] == [404] * 30 and codes[30] == 429
