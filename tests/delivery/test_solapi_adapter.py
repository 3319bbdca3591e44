"""What only Solapi has: its signed header, its request shape, its clock and signature checks, and how
its codes read. The shared behaviour is in test_provider_contract.py."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from nhn_fixtures import TEMPLATE_CODE, TEMPLATES, make_message
from provider_harness import solapi_settings

from alerts.delivery.providers import solapi as solapi_module
from alerts.delivery.providers import solapi_codes
from alerts.delivery.providers.base import Fallback, PendingDelivery, ProviderError
from alerts.delivery.providers.registry import create_provider
from alerts.delivery.providers.solapi import SolapiProvider, sign
from alerts.testing import SolapiBehaviour, SolapiTestServer


@pytest.fixture
def server() -> Iterator[SolapiTestServer]:
    with SolapiTestServer(templates=TEMPLATES) as srv:
        yield srv


def test_request_shape_and_signature(server: SolapiTestServer) -> None:
    p = SolapiProvider(solapi_settings(server))
    batch = [make_message(11, "01012345678", fallback=Fallback("LMS", "긴 안내", title="호우경보")),
             make_message(12, "01087654321")]
    outcomes = p.send(batch, idempotency_key="key-abc")
    (req,) = server.send_requests()
    assert req.path == "/messages/v4/send-many/detail"
    auth = req.headers["authorization"]
    assert auth.startswith("HMAC-SHA256 apiKey=NCSTESTKEY, date=")
    fields = dict(part.strip().split("=", 1) for part in auth.removeprefix("HMAC-SHA256 ").split(","))
    expected = hmac.new(server.api_secret.encode(), (fields["date"] + fields["salt"]).encode(), hashlib.sha256)
    assert fields["signature"] == expected.hexdigest()
    first, second = req.body["messages"]
    assert first["type"] == "ATA" and first["to"] == "01012345678" and first["from"] == server.sender_no
    assert first["text"] == batch[0].text and first["subject"] == "호우경보"
    assert first["kakaoOptions"] == {"pfId": server.pf_id, "templateId": TEMPLATE_CODE,
                                     "variables": {"#{region}": "서울", "#{event}": "호우경보", "#{body}": "안내 11"},
                                     "disableSms": False}
    assert second["kakaoOptions"]["disableSms"] is True  # no fallback asked for
    assert first["customFields"] == {"alimcastKey": "key-abc", "deliveryId": "11"}
    group = {m.group_id for m in server.messages}
    assert [(o.delivery_id, o.accepted, o.request_id, o.result_code) for o in outcomes] == [
        (11, True, next(iter(group)), "2000"), (12, True, next(iter(group)), "2000")]
    # every request has its own salt
    salts = {dict(p.strip().split("=", 1) for p in r.headers["authorization"][12:].split(","))["salt"]
             for r in server.requests}
    assert len(salts) == len(server.requests) == 2  # the probe GET and the POST


def test_clock_skew_stops(server: SolapiTestServer) -> None:
    server.clock_offset = timedelta(minutes=20)
    p = SolapiProvider(solapi_settings(server))
    with pytest.raises(ProviderError, match="InvalidDate") as info:
        p.send([make_message(1, "01012345678")], idempotency_key="k")
    assert info.value.retryable is False
    assert server.messages == []
    server.clock_offset = timedelta(minutes=14)  # within Solapi's 15 minutes
    assert p.send([make_message(1, "01012345678")], idempotency_key="k")[0].accepted


def test_reused_signature_is_refused_and_a_fresh_one_accepted(server: SolapiTestServer) -> None:
    header = sign(server.api_key, server.api_secret, salt="fixed-salt")
    with httpx.Client(base_url=server.base_url) as client:
        assert client.get("/messages/v4/list", headers={"Authorization": header}).status_code == 200
        replay = client.get("/messages/v4/list", headers={"Authorization": header})
        assert (replay.status_code, replay.json()["errorCode"]) == (403, "SignatureDuplicated")
        bad = sign(server.api_key, "not-the-secret")
        assert client.get("/messages/v4/list", headers={"Authorization": bad}).json()["errorCode"] == (
            "SignatureDoesNotMatch")


def test_server_error_after_sending_is_an_unknown_outcome(server: SolapiTestServer) -> None:
    """A 500 may come after Solapi took the batch: never re-sent blindly, the next attempt asks first."""
    p = SolapiProvider(solapi_settings(server))
    server.fail_next(1, status=500)
    with pytest.raises(ProviderError) as info:
        p.send([make_message(1, "01012345678")], idempotency_key="k")
    assert info.value.retryable and info.value.unknown_outcome
    assert len(server.send_requests()) == 1  # not repeated inside the adapter
    assert p.send([make_message(1, "01012345678")], idempotency_key="k")[0].accepted
    assert server.sends_to("01012345678") == 1


def test_dropped_connection_after_taking_the_batch(server: SolapiTestServer) -> None:
    p = SolapiProvider(solapi_settings(server))
    server.drop_next()
    batch = [make_message(1, "01012345678"), make_message(2, "01087654321")]
    with pytest.raises(ProviderError) as info:
        p.send(batch, idempotency_key="k-drop")
    assert info.value.unknown_outcome
    outcomes = p.send(batch, idempotency_key="k-drop")
    assert [o.accepted for o in outcomes] == [True, True]
    assert len(server.send_requests()) == 1 and len(server.messages) == 2


def test_refused_recipient_found_later_stays_refused(server: SolapiTestServer) -> None:
    server.behaviours["01099990000"] = SolapiBehaviour(refuse="1020")
    p = SolapiProvider(solapi_settings(server))
    batch = [make_message(1, "01099990000"), make_message(2, "01012345678")]
    p.send(batch, idempotency_key="k")
    again = {o.delivery_id: o for o in p.send(batch, idempotency_key="k")}
    assert (again[1].accepted, again[1].result_code) == (False, "1020")
    assert again[2].accepted and len(server.send_requests()) == 1


def test_list_paging_is_followed(server: SolapiTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    p = SolapiProvider(solapi_settings(server))
    outcomes = p.send([make_message(i, f"0101234{i:04d}") for i in range(1, 6)], idempotency_key="k")
    monkeypatch.setattr(solapi_module, "LIST_LIMIT", 2)
    results = p.poll_results([PendingDelivery(o.delivery_id, o.request_id or "", None) for o in outcomes])
    assert sorted(r.delivery_id for r in results) == [1, 2, 3, 4, 5]
    gets = [r for r in server.requests if r.method == "GET" and r.query.get("criteria") == ["groupId"]]
    assert len(gets) == 3 and "startKey" in gets[1].query


@pytest.mark.parametrize(
    ("code", "replacement", "kind", "status", "channel"),
    [
        ("2000", False, "ATA", "pending", None),
        ("3000", True, "SMS", "pending", None),
        ("4000", False, "ATA", "delivered", "alimtalk"),
        ("4000", True, "LMS", "fallback_sent", "lms"),
        ("3104", False, "ATA", "failed", None),
        ("3107", False, "ATA", "failed", None),
        ("3103", False, "ATA", "failed", None),
        ("9999", False, "ATA", "failed", None),
    ],
)
def test_classify(code, replacement, kind, status, channel) -> None:
    c = solapi_codes.classify(code, replacement, kind)
    assert (c.status, c.channel) == (status, channel)


def test_code_table() -> None:
    assert solapi_codes.code_info("1030").retryable and solapi_codes.code_info("1030").operator
    assert solapi_codes.code_info("3103").operator and solapi_codes.code_info("1043").operator
    assert solapi_codes.code_info("3104").category == "fallback"
    assert solapi_codes.code_info("12345").category == "unknown" and not solapi_codes.code_info("12345").retryable
    assert solapi_codes.refused_at_send("1020") and not solapi_codes.refused_at_send("3104")


def test_registry_and_missing_settings() -> None:
    p = create_provider("solapi", {"api_key": "k", "api_secret": "s", "pf_id": "pf", "sender_no": "02-123-4567"})
    assert isinstance(p, SolapiProvider) and p.max_batch == 10_000 and p.sender_no == "021234567"
    assert p.base_url == "https://api.solapi.com"
    with pytest.raises(ValueError, match="missing api_secret, pf_id"):
        SolapiProvider({"api_key": "k", "sender_no": "0212345678"})


def test_config_reads_solapi_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib
    from pathlib import Path

    from alerts.config import ConfigError, parse_config

    raw = tomllib.loads((Path(__file__).resolve().parents[2] / "config.toml").read_text(encoding="utf-8"))
    raw["provider"] = {"kind": "solapi", "api_key": "env:T_SOLAPI_KEY", "api_secret": "env:T_SOLAPI_SECRET",
                       "pf_id": "KA01PF", "sender_no": "env:T_SOLAPI_FROM", "rate_per_second": 100}
    with pytest.raises(ConfigError, match="T_SOLAPI_KEY"):
        parse_config(raw)
    monkeypatch.setenv("T_SOLAPI_KEY", "key")
    monkeypatch.setenv("T_SOLAPI_SECRET", "secret")
    monkeypatch.setenv("T_SOLAPI_FROM", "0212345678")
    settings = parse_config(raw).provider.settings
    assert (settings["api_key"], settings["api_secret"], settings["sender_no"]) == ("key", "secret", "0212345678")
    assert isinstance(create_provider("solapi", settings), SolapiProvider)
    raw["provider"]["api_secret"] = "plain-secret"
    with pytest.raises(ConfigError, match="api_secret"):
        parse_config(raw)
    raw["provider"]["api_secret"] = "env:T_SOLAPI_SECRET"
    del raw["provider"]["pf_id"]
    with pytest.raises(ConfigError, match="pf_id"):
        parse_config(raw)


def test_a_failed_check_keeps_the_outcome_unknown(server: SolapiTestServer) -> None:
    """If Solapi cannot be asked whether an earlier attempt arrived, the batch must keep its key: the error
    says the outcome is unknown (a plain retryable error would let the outbox give the batch a new key)."""
    p = SolapiProvider(solapi_settings(server, retry_attempts=2))
    batch = [make_message(1, "01012345678")]
    server.delay_next(1, 1.0)
    with pytest.raises(ProviderError):
        SolapiProvider(solapi_settings(server, timeout_seconds=0.3)).send(batch, idempotency_key="k")
    server.fail_lists_next(2)  # both attempts of the check
    with pytest.raises(ProviderError) as info:
        p.send(batch, idempotency_key="k")
    assert info.value.retryable and info.value.unknown_outcome
    assert len(server.send_requests()) == 1  # nothing re-sent without the check
    assert p.send(batch, idempotency_key="k")[0].accepted and server.sends_to("01012345678") == 1


def test_the_check_asks_about_a_well_formed_number(server: SolapiTestServer) -> None:
    p = SolapiProvider(solapi_settings(server))
    p.send([make_message(1, "010"), make_message(2, "01012345678")], idempotency_key="k")
    (probe,) = [r for r in server.requests if r.method == "GET"]
    assert probe.query["value"] == ["01012345678"]
