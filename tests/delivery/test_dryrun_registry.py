"""Dry-run provider and the provider registry."""

from __future__ import annotations

import logging

import pytest
from nhn_fixtures import assert_no_numbers_logged, make_message

from alerts.delivery.providers.base import Fallback, PendingDelivery, Provider
from alerts.delivery.providers.dryrun import DRYRUN_CODE, DryRunProvider
from alerts.delivery.providers.nhn import NhnProvider
from alerts.delivery.providers.registry import PROVIDERS, create_provider, provider_class
from alerts.delivery.providers.solapi import SolapiProvider


def test_dryrun_records_and_sends_nothing(caplog: pytest.LogCaptureFixture) -> None:
    p = DryRunProvider({})
    batch = [make_message(1, "01012345678", fallback=Fallback("SMS", "x")), make_message(2, "01087654321")]
    with caplog.at_level(logging.INFO, logger="alerts.delivery.providers.dryrun"):
        outcomes = p.send(batch, idempotency_key="k1")
        second = p.send([make_message(3, "01011112222")], idempotency_key="k2")
    assert [(o.delivery_id, o.accepted, o.request_id, o.recipient_seq) for o in outcomes] == [
        (1, True, "dryrun-1", 1),
        (2, True, "dryrun-1", 2),
    ]
    assert second[0].request_id == "dryrun-2"
    (req1, req2) = p.sent_requests
    assert (req1.template_code, req1.recipient_count, req1.fallback_count) == ("WX_ALERT", 2, 1)
    assert req1.masked_numbers == ("010-****-5678", "010-****-4321")
    assert req2.recipient_count == 1
    assert "would send" in caplog.text
    assert_no_numbers_logged(caplog, "01012345678", "01087654321", "01011112222")


def test_dryrun_same_key_is_a_retry() -> None:
    p = DryRunProvider({})
    batch = [make_message(1, "01012345678")]
    a = p.send(batch, idempotency_key="k")
    b = p.send(batch, idempotency_key="k")
    assert a == b and len(p.sent_requests) == 1


def test_dryrun_results_are_marked() -> None:
    p = DryRunProvider({})
    (o,) = p.send([make_message(1, "01012345678")], idempotency_key="k")
    (r,) = p.poll_results([PendingDelivery(1, o.request_id or "", o.recipient_seq)])
    assert (r.status, r.channel, r.result_code) == ("delivered", "alimtalk", DRYRUN_CODE)
    assert "not sent" in (r.result_message or "")


def test_dryrun_validates_batches_like_nhn() -> None:
    p = DryRunProvider({})
    with pytest.raises(ValueError):
        p.send([], idempotency_key="k")
    with pytest.raises(ValueError):
        p.send([make_message(i, "01012345678") for i in range(1001)], idempotency_key="k")
    with pytest.raises(ValueError):
        p.send([make_message(1, "010", template_code="A"), make_message(2, "010")], idempotency_key="k")
    assert p.sent_requests == []


@pytest.mark.parametrize(("kind", "cls"), [("nhn", NhnProvider), ("dryrun", DryRunProvider),
                                          ("solapi", SolapiProvider)])
def test_registry(kind: str, cls: type[Provider]) -> None:
    assert provider_class(kind) is cls
    assert cls.kind == kind
    assert set(PROVIDERS) == {"nhn", "dryrun", "solapi"}


def test_registry_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown provider kind 'sens'"):
        provider_class("sens")


def test_create_provider() -> None:
    assert isinstance(create_provider("dryrun", {}), DryRunProvider)
    with pytest.raises(ValueError, match="base_url"):
        create_provider("nhn", {})
