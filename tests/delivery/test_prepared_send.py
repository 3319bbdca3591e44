"""A request built before its place in the send window is taken, and timed when its answer begins to arrive.

The send window (alerts/delivery/rate.py) may stop counting a request as in flight at a moment at or after its
arrival at the provider: the answer's arrival is such a moment (the provider answers only what arrived). These
tests hold the adapter to it: the time it reports is never before the server counted the request, belongs to
the last attempt, and is absent when no answer came.
"""

from __future__ import annotations

import time

import pytest
from nhn_fixtures import make_message, provider_settings

from alerts.delivery.providers.base import ProviderError
from alerts.delivery.providers.dryrun import DryRunProvider
from alerts.delivery.providers.nhn import NhnProvider
from alerts.metrics import InstrumentedProvider
from alerts.testing import NhnTestServer


def batch(count: int = 3) -> list:  # type: ignore[type-arg]
    return [make_message(i + 1, f"0105555{i:04d}") for i in range(count)]


def test_prepare_builds_everything_and_sends_nothing(server: NhnTestServer, provider: NhnProvider) -> None:
    prepared = provider.prepare(batch(), idempotency_key="k-prepared-1")
    assert server.send_requests() == [] and prepared.answered_at is None
    before = time.monotonic()
    outcomes = prepared.send()
    after = time.monotonic()
    assert [o.accepted for o in outcomes] == [True, True, True]
    (arrived, recipients), = server.arrivals()
    assert recipients == 3
    assert prepared.answered_at is not None
    assert before <= arrived <= prepared.answered_at <= after


def test_the_answer_time_is_the_last_attempts(server: NhnTestServer, provider: NhnProvider) -> None:
    """A first attempt refused with 503 and a second one accepted: the time is the second's answer, after the
    second arrived (an earlier attempt's answer would be before it)."""
    server.fail_next(1, status=503)
    prepared = provider.prepare(batch(), idempotency_key="k-prepared-2")
    assert all(o.accepted for o in prepared.send())
    first, second = server.send_requests()
    assert prepared.answered_at is not None
    assert first.received_at < second.received_at <= prepared.answered_at
    assert server.arrivals()[-1][0] <= prepared.answered_at


def test_no_answer_no_answer_time(server: NhnTestServer) -> None:
    """An attempt without an answer (a timeout after the request went out) leaves no time: the window then
    counts the request until the send returns, as before."""
    provider = NhnProvider(provider_settings(server, timeout_seconds=0.3, retry_attempts=1))
    try:
        server.stall_next(1, 1.0)
        prepared = provider.prepare(batch(), idempotency_key="k-prepared-3")
        with pytest.raises(ProviderError) as raised:
            prepared.send()
        assert raised.value.unknown_outcome
        assert prepared.answered_at is None
    finally:
        provider.close()


def test_a_timed_out_retry_clears_the_earlier_answer(server: NhnTestServer) -> None:
    """503 answered at once, then a retry that times out: the 503's answer came before the retry could have
    arrived, so it must not be reported (the retry may arrive later than it)."""
    provider = NhnProvider(provider_settings(server, timeout_seconds=0.3, retry_attempts=2))
    try:
        server.fail_next(1, status=503)
        server.stall_next(1, 1.0)
        prepared = provider.prepare(batch(), idempotency_key="k-prepared-4")
        with pytest.raises(ProviderError):
            prepared.send()
        assert len(server.send_requests()) == 2
        assert prepared.answered_at is None
    finally:
        provider.close()


def test_the_metrics_wrapper_passes_the_answer_time_on(server: NhnTestServer, provider: NhnProvider) -> None:
    prepared = InstrumentedProvider(provider).prepare(batch(), idempotency_key="k-prepared-5")
    assert all(o.accepted for o in prepared.send())
    assert prepared.answered_at is not None and server.arrivals()[-1][0] <= prepared.answered_at


def test_a_provider_without_preparation_sends_as_before() -> None:
    prepared = DryRunProvider().prepare(batch(2), idempotency_key="k-prepared-6")
    assert [o.accepted for o in prepared.send()] == [True, True]
    assert prepared.answered_at is None  # the window counts until the send returns
