"""The provider contract, run against every provider's loopback server (NHN, Solapi).

What the dispatcher relies on, whatever the provider: a batch of up to ``max_batch`` goes in one
request; a repeat under the same key after a lost answer sends nothing twice; ``lookup`` tells an
orphaned batch that arrived from one that did not; results and fallback come back as the same statuses;
failures are sorted into retry (same request later), stop (configuration) and fail (this recipient);
no phone number reaches a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from nhn_fixtures import assert_no_numbers_logged, make_message
from provider_harness import (
    BAD_NUMBER,
    DELIVERED,
    FALLBACK_FAILS,
    FALLS_BACK,
    HARNESSES,
    REFUSED_FOR_NOW,
    Harness,
)

from alerts.delivery.providers.base import Fallback, PendingDelivery, ProviderError, SendOutcome


@pytest.fixture(params=HARNESSES, ids=lambda h: h.name)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = request.param()
    with h.running():
        yield h


def _send_until_settled(provider, batch, key: str, tries: int = 5) -> list[SendOutcome]:
    """What the dispatcher does: a batch whose outcome is unknown is sent again under its key."""
    for _ in range(tries):
        try:
            return provider.send(batch, idempotency_key=key)
        except ProviderError as exc:
            assert exc.retryable and exc.unknown_outcome, exc
    raise AssertionError("never settled")


def test_a_full_batch_goes_in_one_request(harness: Harness) -> None:
    p = harness.provider()
    n = p.max_batch
    batch = [make_message(i, f"010{i:08d}") for i in range(1, n + 1)]
    outcomes = p.send(batch, idempotency_key="k-full")
    assert len(harness.send_requests()) == 1
    assert len(outcomes) == n and all(o.accepted for o in outcomes)
    with pytest.raises(ValueError, match=str(n + 1)):
        p.send([*batch, make_message(n + 1, "01099999999")], idempotency_key="k-over")
    with pytest.raises(ValueError, match="one template"):
        p.send([make_message(1, "01011112222"), make_message(2, "01011113333", template_code="WX_CANCEL")],
               idempotency_key="k-mixed")
    assert len(harness.send_requests()) == 1  # refused before anything went out


def test_lost_answer_never_sends_twice(harness: Harness) -> None:
    p = harness.provider(timeout_seconds=0.3)
    harness.server.delay_next(1, 1.2)  # taken, then the answer comes too late
    batch = [make_message(1, "01012345678"), make_message(2, "01087654321")]
    outcomes = _send_until_settled(p, batch, "k-lost")
    assert [(o.delivery_id, o.accepted) for o in outcomes] == [(1, True), (2, True)]
    assert harness.sends_to("01012345678") == 1 and harness.sends_to("01087654321") == 1
    # and once more, as after a crash before the outcome was saved
    again = p.send(batch, idempotency_key="k-lost")
    assert [o.accepted for o in again] == [True, True]
    assert {o.request_id for o in again} == {o.request_id for o in outcomes}
    assert harness.sends_to("01012345678") == 1


def test_lookup_tells_an_arrived_batch_from_a_lost_one(harness: Harness) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    batch = [make_message(1, "01012345678"), make_message(2, "01087654321")]
    harness.provider().send(batch, idempotency_key="k-arrived")
    fresh = harness.provider()  # another process, after the first died
    found = fresh.lookup(batch, idempotency_key="k-arrived", sent_after=started)
    assert found is not None and [(o.delivery_id, o.accepted) for o in found] == [(1, True), (2, True)]
    assert fresh.lookup(batch, idempotency_key="k-never-sent", sent_after=started) == []
    assert harness.sends_to("01012345678") == 1


def test_results_and_fallback() -> None:
    for cls in HARNESSES:
        h = cls()
        with h.running(results_after_polls=1):
            cases = [("01000000001", DELIVERED, "delivered", "alimtalk"),
                     ("01000000002", FALLS_BACK, "fallback_sent", "sms"),
                     ("01000000003", FALLBACK_FAILS, "failed", None)]
            for number, what, *_ in cases:
                h.behave(number, what)
            p = h.provider()
            batch = [make_message(i, no, fallback=Fallback("SMS", "대피하세요"))
                     for i, (no, *_) in enumerate(cases, start=1)]
            outcomes = p.send(batch, idempotency_key="k-results")
            pending = [PendingDelivery(o.delivery_id, o.request_id or "", o.recipient_seq) for o in outcomes]
            assert p.poll_results(pending) == [], h.name  # nothing final yet
            results = {r.delivery_id: r for r in p.poll_results(pending)}
            got = [(results[i].status, results[i].channel) for i in range(1, 4)]
            assert got == [(s, c) for *_, s, c in cases], h.name


def test_fallback_off_is_not_requested(harness: Harness) -> None:
    harness.behave("01000000002", FALLS_BACK)
    p = harness.provider(fallback=False)
    (o,) = p.send([make_message(1, "01000000002", fallback=Fallback("SMS", "x"))], idempotency_key="k")
    (r,) = p.poll_results([PendingDelivery(1, o.request_id or "", o.recipient_seq)])
    assert (r.status, r.channel) == ("failed", None)


def test_throttling_is_retried_and_honours_retry_after(harness: Harness) -> None:
    p = harness.provider()
    harness.server.fail_next(1, status=429, retry_after=0.5)
    harness.server.fail_next(1, status=503)
    (o,) = p.send([make_message(1, "01012345678")], idempotency_key="k-429")
    posts = harness.send_requests()
    assert [r.http_status for r in posts] == [429, 503, 200]
    assert posts[1].received_at - posts[0].received_at >= 0.5
    assert o.accepted and harness.sends_to("01012345678") == 1


def test_retries_are_bounded_and_handed_back(harness: Harness) -> None:
    p = harness.provider(retry_attempts=3)
    harness.server.fail_next(10, status=503)
    with pytest.raises(ProviderError) as info:
        p.send([make_message(1, "01012345678")], idempotency_key="k")
    assert info.value.retryable is True
    assert len(harness.send_requests()) == 3 and harness.sends_to("01012345678") == 0


def test_wrong_credentials_stop(harness: Harness) -> None:
    p = harness.provider(**harness.wrong_credentials())
    with pytest.raises(ProviderError) as info:
        p.send([make_message(1, "01012345678")], idempotency_key="k")
    # stop (an operator must act); Solapi also says the outcome is unknown, since it could not check whether
    # an earlier attempt under this key arrived: the outbox then keeps the key, which is never wrong
    assert info.value.retryable is False
    assert harness.sends_to("01012345678") == 0


def test_recipient_refusals_fail_or_retry(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    harness.behave("01099990000", BAD_NUMBER)
    harness.behave("01055550000", REFUSED_FOR_NOW)
    p = harness.provider()
    batch = [make_message(1, "01012345678"), make_message(2, "01099990000"), make_message(3, "01055550000")]
    with caplog.at_level(logging.DEBUG):
        outcomes = {o.delivery_id: o for o in p.send(batch, idempotency_key="k")}
    assert (outcomes[1].accepted, outcomes[1].retryable) == (True, False)
    assert (outcomes[2].accepted, outcomes[2].retryable, outcomes[2].result_code) == (
        False, False, harness.bad_number_code)
    assert (outcomes[3].accepted, outcomes[3].retryable) == (False, True)
    assert "010-****-0000" in caplog.text
    assert_no_numbers_logged(caplog, "01012345678", "01099990000", "01055550000")


def test_results_carry_no_phone_number(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    harness.behave("01023456789", FALLBACK_FAILS)
    p = harness.provider()
    (o,) = p.send([make_message(1, "01023456789", fallback=Fallback("SMS", "x"))], idempotency_key="k")
    with caplog.at_level(logging.DEBUG):
        (r,) = p.poll_results([PendingDelivery(1, o.request_id or "", o.recipient_seq)])
    assert r.status == "failed"
    assert "01023456789" not in repr(r.raw) and "1023456789" not in repr(r.raw)
    assert_no_numbers_logged(caplog, "01023456789")
