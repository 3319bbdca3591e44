"""Subscribing oneself: a code through the provider (the loopback NHN server), limits on codes and guesses,
and nobody learns whether a number was subscribed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from public_testkit import public_config_text
from sqlmodel import select

from alerts.config import load_config
from alerts.db import make_engine, session_scope, upgrade
from alerts.delivery.providers.nhn import NhnProvider
from alerts.public.models import VerificationCode
from alerts.public.verification import (
    Choices,
    SubscribeError,
    check_code,
    complete_subscription,
    provider_sender,
    request_code,
    send_confirmation,
)
from alerts.testing import NhnTestServer
from subscribers.geo_models import Vessel
from subscribers.models import Subscriber, Subscription
from subscribers.store import add_subscriber, zone_codes_of

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
VERIFY = ("ALIMCAST_VERIFY_01", "[#{sender}] 인증번호 #{code}\n#{minutes}분 안에 입력해 주세요.")
WELCOME = ("ALIMCAST_WELCOME_01",
           "[#{sender}] 수신 신청이 완료되었습니다.\n구역: #{zones}\n수신 설정·해지: #{manage_url}")


class World:
    def __init__(self, tmp_path: Path, server: NhnTestServer) -> None:
        path = tmp_path / "config.toml"
        path.write_text(public_config_text(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "feed.xml", provider="nhn",
                                           base_url=server.base_url), encoding="utf-8")
        self.config = load_config(path)
        self.engine = make_engine(self.config.database_url)
        upgrade(self.engine)
        self.server = server
        self.provider = NhnProvider({**self.config.provider.settings, "retry_attempts": 1,
                                     "retry_initial_seconds": 0.01, "retry_max_wait_seconds": 0.05})
        self.send = provider_sender(self.config, self.provider)

    def code_for(self, phone: str) -> str:
        """The code as the person reads it on their phone: the last message the provider got for them."""
        message = [m for m in self.server.messages if m.recipient_no == phone][-1]
        found = re.search(r"인증번호 (\d{6})", message.content)
        assert found, message.content
        return found.group(1)

    def request(self, phone: str, client: str = "198.51.100.7", at: datetime = NOW):  # type: ignore[no-untyped-def]
        with session_scope(self.engine) as s:
            return request_code(s, self.config, phone, client=client, now=at, send=self.send)

    def check(self, ticket: str, code: str, client: str = "198.51.100.7", at: datetime = NOW):  # type: ignore[no-untyped-def]
        with session_scope(self.engine) as s:
            return check_code(s, self.config, ticket, code, client=client, now=at)


@pytest.fixture
def world(tmp_path: Path, nhn_env: dict[str, str]) -> Iterator[World]:
    with NhnTestServer(templates=dict([VERIFY, WELCOME])) as server:
        w = World(tmp_path, server)
        yield w
        w.provider.close()
        w.engine.dispose()


@pytest.fixture
def nhn_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"T_APP_KEY": "test-appkey", "T_SECRET_KEY": "test-secret", "T_SENDER_KEY": "s" * 40}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_code_through_the_provider_then_choices_and_consent(world: World) -> None:
    asked = world.request("010-5000-0001")
    assert asked.status == "sent" and asked.ticket
    code = world.code_for("01050000001")
    with session_scope(world.engine) as s:
        row = s.exec(select(VerificationCode)).one()
        assert code not in (row.code_hash, row.salt) and asked.ticket != row.ticket_hash  # hashed at rest
    wrong = "000000" if code != "000000" else "111111"
    assert world.check(asked.ticket, wrong).status == "wrong"
    assert world.check(asked.ticket, code).status == "ok"
    with session_scope(world.engine) as s:
        s.add(Vessel(mmsi=440123456, name="제1해성호"))
    with session_scope(world.engine) as s:
        person, link = complete_subscription(
            s, world.config, asked.ticket,
            Choices(zones=["서해중부먼바다"], land_region="L1100100", vessel="제1해성호", min_severity="Severe",
                    language="en", quiet_hours="22:00-06:00", consent_version="2026-12-01"),
            now=NOW + timedelta(minutes=2))
        assert person.status == "active" and person.consent_source == "web"
        assert person.consent_at == NOW + timedelta(minutes=2) and person.consent_text.startswith("[2026-12-01] ")
        assert (person.min_severity, person.language, person.quiet_start_min) == ("Severe", "en", 22 * 60)
        assert zone_codes_of(s, person.id) == ["L1100100", "S1252010", "S1252020"]  # type: ignore[arg-type]
        mmsis = s.exec(select(Subscription.mmsi).where(Subscription.subscriber_id == person.id,
                                                       Subscription.kind == "vessel")).all()
        assert mmsis == [440123456]
        assert link.startswith("https://alert.test/u/")
        assert send_confirmation(world.config, world.send, person, link, zone_codes_of(s, person.id))  # type: ignore[arg-type]
    assert "수신 신청이 완료되었습니다" in world.server.messages[-1].content
    assert link in world.server.messages[-1].content
    # the ticket is spent: it cannot subscribe again, nor another choice
    with session_scope(world.engine) as s, pytest.raises(LookupError):
        complete_subscription(s, world.config, asked.ticket, Choices(zones=["S1251100"], consent_version="2026-12-01"),
                              now=NOW + timedelta(minutes=3))


def test_choices_need_consent_and_a_known_zone_and_vessel(world: World) -> None:
    asked = world.request("010-5000-0002")
    assert world.check(asked.ticket, world.code_for("01050000002")).status == "ok"
    bad = [Choices(zones=["S1251100"], consent_version=""),  # consent not given
           Choices(zones=["서해어딘가"], consent_version="2026-12-01"),
           Choices(zones=[], consent_version="2026-12-01"),
           Choices(zones=["S1251100"], vessel="없는배", consent_version="2026-12-01")]
    for choice in bad:
        with session_scope(world.engine) as s, pytest.raises(SubscribeError):
            complete_subscription(s, world.config, asked.ticket, choice, now=NOW)
    with session_scope(world.engine) as s:
        assert s.exec(select(Subscriber)).all() == []


def test_an_unverified_ticket_cannot_subscribe(world: World) -> None:
    asked = world.request("010-5000-0003")
    with session_scope(world.engine) as s, pytest.raises(LookupError):
        complete_subscription(s, world.config, asked.ticket, Choices(zones=["S1251100"], consent_version="2026-12-01"),
                              now=NOW)
    with session_scope(world.engine) as s, pytest.raises(LookupError):
        complete_subscription(s, world.config, "made-up-ticket", Choices(zones=["S1251100"],
                                                                         consent_version="2026-12-01"), now=NOW)


def test_guessing_is_limited_per_code_and_per_client(world: World) -> None:
    asked = world.request("010-5000-0004")
    code = world.code_for("01050000004")
    wrongs = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 6)]
    results = [world.check(asked.ticket, w).status for w in wrongs]
    assert results == ["wrong"] * 4 + ["expired"]  # code_max_attempts = 5
    assert world.check(asked.ticket, code).status == "expired"  # burned: the right code no longer works
    # a guesser asking new codes for other numbers from the same address is stopped past 20 failures an hour
    statuses: list[str] = []
    for n in range(5, 11):
        fresh = world.request(f"010-5000-00{n:02d}", client="203.0.113.9")
        if fresh.status != "sent":
            statuses.append(fresh.status)
            continue
        for _ in range(5):
            statuses.append(world.check(fresh.ticket, "999999" if world.code_for(f"0105000{n:04d}") != "999999"
                                        else "888888", client="203.0.113.9").status)
    assert "throttled" in statuses
    last = world.request("010-5000-0099", client="203.0.113.10")
    assert last.status == "sent"
    right = world.code_for("01050000099")
    assert world.check(last.ticket, right, client="203.0.113.9").status == "throttled"  # not even compared
    assert world.check(last.ticket, right, client="203.0.113.9", at=NOW + timedelta(minutes=61)).status == "expired"
    assert world.check(last.ticket, right, client="203.0.113.10").status == "ok"  # another client, in time


def test_code_sends_are_throttled_per_phone_and_per_client(world: World) -> None:
    phone_limited = [world.request("010-5000-0020", client=f"192.0.2.{i}").status for i in range(4)]
    assert phone_limited == ["sent", "sent", "sent", "throttled"]
    assert world.server.sends_to("01050000020") == 3
    assert world.request("010-5000-0020", client="192.0.2.99", at=NOW + timedelta(minutes=61)).status == "sent"
    client_limited = [world.request(f"010-5001-{i:04d}", client="192.0.2.200").status for i in range(11)]
    assert client_limited == ["sent"] * 10 + ["throttled"]


def test_nobody_learns_whether_a_number_is_subscribed(world: World) -> None:
    with session_scope(world.engine) as s:
        add_subscriber(s, "010-5000-0030", ["S1251100"])
    answers = []
    for phone in ("010-5000-0030", "010-5000-0031"):
        asked = world.request(phone, client="192.0.2.50")
        answers.append((asked.status, asked.message, len(asked.ticket or "")))
        checked = world.check(asked.ticket, "000000" if world.code_for(phone.replace("-", "")) != "000000"
                              else "111111", client="192.0.2.50")
        answers.append((checked.status, checked.attempts_left))
    assert answers[0:2] == answers[2:4]  # same answers for a subscriber and a stranger
    assert world.server.sends_to("01050000030") == world.server.sends_to("01050000031") == 1


def test_bad_phone_is_refused_without_sending(world: World) -> None:
    assert world.request("070-1234-5678").status == "bad_phone"
    assert world.request("not a number").status == "bad_phone"
    assert world.server.messages == []
