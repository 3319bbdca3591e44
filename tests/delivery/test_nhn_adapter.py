"""NhnProvider against the loopback NHN server: what is NHN's own (request shape, its idempotency header and
-1005 reconciliation, its codes). Batching limits and bounded retries are in test_provider_contract.py."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest
from nhn_fixtures import TEMPLATE_CODE, TEMPLATES, assert_no_numbers_logged, make_message, provider_settings

from alerts.delivery.providers import nhn as nhn_module
from alerts.delivery.providers.base import Fallback, PendingDelivery, ProviderError
from alerts.delivery.providers.nhn import NhnProvider, mask_phone, parse_retry_after
from alerts.testing import NhnTestServer, RecipientBehaviour


def test_headers_and_body_shape(server: NhnTestServer, provider: NhnProvider) -> None:
    batch = [make_message(11, "01012345678"), make_message(12, "01087654321")]
    outcomes = provider.send(batch, idempotency_key="key-abc")
    (req,) = server.send_requests()
    assert req.path == f"/alimtalk/v2.3/appkeys/{server.app_key}/messages"
    assert req.headers["x-secret-key"] == server.secret_key
    assert req.headers["content-type"] == "application/json;charset=UTF-8"
    assert req.headers["x-nc-api-idempotency-key"] == "key-abc"
    body = req.body
    assert body["senderKey"] == server.sender_key
    assert body["templateCode"] == TEMPLATE_CODE
    assert body["senderGroupingKey"] == "key-abc"
    assert [r["recipientNo"] for r in body["recipientList"]] == ["01012345678", "01087654321"]
    assert [r["recipientGroupingKey"] for r in body["recipientList"]] == ["11", "12"]
    assert body["recipientList"][0]["templateParameter"] == {
        "region": "서울",
        "event": "호우경보",
        "body": "안내 11",
    }
    assert all("resendParameter" not in r for r in body["recipientList"])
    assert [(o.delivery_id, o.accepted, o.recipient_seq) for o in outcomes] == [(11, True, 1), (12, True, 2)]
    request_id = outcomes[0].request_id
    assert request_id and all(o.request_id == request_id for o in outcomes)
    assert [m.content for m in server.messages] == [batch[0].text, batch[1].text]


def test_fallback_parameters(server: NhnTestServer, provider: NhnProvider) -> None:
    batch = [
        make_message(1, "01011110001", fallback=Fallback("SMS", "짧은 안내")),
        make_message(2, "01011110002", fallback=Fallback("LMS", "긴 안내 " * 30, title="호우경보")),
        make_message(3, "01011110003"),
    ]
    provider.send(batch, idempotency_key="k")
    recipients = server.send_requests()[0].body["recipientList"]
    assert recipients[0]["resendParameter"] == {
        "isResend": True,
        "resendType": "SMS",
        "resendContent": "짧은 안내",
        "resendSendNo": "0212345678",
    }
    assert recipients[1]["resendParameter"]["resendType"] == "LMS"
    assert recipients[1]["resendParameter"]["resendTitle"] == "호우경보"
    assert "resendParameter" not in recipients[2]


def test_fallback_disabled(server: NhnTestServer) -> None:
    p = NhnProvider(provider_settings(server, fallback=False))
    p.send([make_message(1, "01011110001", fallback=Fallback("SMS", "x"))], idempotency_key="k")
    assert "resendParameter" not in server.send_requests()[0].body["recipientList"][0]


def test_per_recipient_rejection_and_masking(caplog: pytest.LogCaptureFixture) -> None:
    behaviours = {"01099990000": RecipientBehaviour(reject=True)}
    with NhnTestServer(templates=TEMPLATES, behaviours=behaviours) as srv:
        p = NhnProvider(provider_settings(srv))
        with caplog.at_level(logging.DEBUG):
            outcomes = p.send([make_message(1, "01012345678"), make_message(2, "01099990000")], idempotency_key="k")
        assert [(o.accepted, o.result_code, o.retryable) for o in outcomes] == [
            (True, "0", False),
            (False, "-5000", False),
        ]
        assert "010-****-0000" in caplog.text
        assert_no_numbers_logged(caplog, "01012345678", "01099990000")
        # every recipient rejected: NHN answers -1031 with per-recipient results
        outcomes = p.send([make_message(3, "01099990000")], idempotency_key="k2")
        assert [(o.accepted, o.result_code) for o in outcomes] == [(False, "-5000")]


def test_429_retry_after_is_honoured(server: NhnTestServer, provider: NhnProvider) -> None:
    server.fail_next(1, status=429, retry_after=0.6)
    outcomes = provider.send([make_message(1, "01012345678")], idempotency_key="k-429")
    first, second = server.send_requests()
    assert second.received_at - first.received_at >= 0.6
    assert first.http_status == 429 and second.result_code == 0
    assert {r.headers["x-nc-api-idempotency-key"] for r in (first, second)} == {"k-429"}
    assert outcomes[0].accepted and server.sends_to("01012345678") == 1


def test_500_retried_with_same_key(server: NhnTestServer, provider: NhnProvider) -> None:
    server.fail_next(2, status=500)
    outcomes = provider.send([make_message(1, "01012345678")], idempotency_key="k-500")
    reqs = server.send_requests()
    assert [r.http_status for r in reqs] == [500, 500, 200]
    assert {r.headers["x-nc-api-idempotency-key"] for r in reqs} == {"k-500"}
    assert outcomes[0].accepted and server.sends_to("01012345678") == 1


def test_read_timeout_never_sends_twice(server: NhnTestServer) -> None:
    p = NhnProvider(provider_settings(server, timeout_seconds=0.3))
    server.delay_next(1, 1.2)
    batch = [make_message(1, "01012345678"), make_message(2, "01087654321")]
    outcomes = p.send(batch, idempotency_key="k-timeout")
    posts = server.send_requests()
    assert len(posts) == 2
    assert {r.headers["x-nc-api-idempotency-key"] for r in posts} == {"k-timeout"}
    assert [r.result_code for r in posts] == [0, -1005]
    assert server.sends_to("01012345678") == 1 and server.sends_to("01087654321") == 1
    assert len(server.messages) == 2
    # outcomes come from the reconciliation query, pointing at the first (real) request
    gets = [r for r in server.requests if r.method == "GET"]
    assert gets and gets[0].query["senderGroupingKey"] == ["k-timeout"]
    stored = {m.recipient_grouping_key: m for m in server.messages}
    assert [(o.delivery_id, o.accepted, o.request_id, o.recipient_seq) for o in outcomes] == [
        (1, True, stored["1"].request_id, stored["1"].recipient_seq),
        (2, True, stored["2"].request_id, stored["2"].recipient_seq),
    ]


def test_repeat_send_with_same_key_reconciles(server: NhnTestServer, provider: NhnProvider) -> None:
    """The dispatcher retried a batch whose first send did go through (e.g. it crashed before saving)."""
    batch = [make_message(1, "01012345678"), make_message(2, "01087654321")]
    first = provider.send(batch, idempotency_key="k-dup")
    again = provider.send(batch, idempotency_key="k-dup")
    assert [(o.accepted, o.request_id, o.recipient_seq) for o in again] == [
        (True, o.request_id, o.recipient_seq) for o in first
    ]
    assert len(server.messages) == 2


def test_reconcile_leaves_an_unlisted_recipient_unknown_until_the_key_is_settled() -> None:
    """Right after -1005 NHN's list may lag: a recipient it does not show is unknown (no outcome, so it is
    checked again under the same key); once the key is settled (the dispatcher's look-up past NHN's key
    memory) a recipient still not listed was rejected by the first attempt."""
    with NhnTestServer(templates=TEMPLATES, behaviours={"01099990000": RecipientBehaviour(reject=True)}) as srv:
        p = NhnProvider(provider_settings(srv))
        batch = [make_message(1, "01012345678"), make_message(2, "01099990000")]
        started = datetime.now(UTC)
        p.send(batch, idempotency_key="k")
        again = p.send(batch, idempotency_key="k")
        assert [(o.delivery_id, o.accepted) for o in again] == [(1, True)]
        assert srv.sends_to("01012345678") == 1
        settled = p.lookup(batch, idempotency_key="k", sent_after=started)
        assert settled is not None and [(o.delivery_id, o.accepted, o.retryable) for o in settled] == [
            (1, True, False), (2, False, False)]


@pytest.mark.parametrize(
    ("server_kwargs", "settings", "message_template", "code"),
    [
        ({}, {"secret_key": "wrong"}, TEMPLATE_CODE, "-1001"),
        ({}, {"app_key": "wrong"}, TEMPLATE_CODE, "-1000"),
        ({}, {"sender_key": "x" * 40}, TEMPLATE_CODE, "-2017"),
        ({}, {}, "UNKNOWN_TPL", "-3003"),
        ({"fallback_sender": None}, {}, TEMPLATE_CODE, "-2502"),
    ],
)
def test_config_errors_not_retried(server_kwargs, settings, message_template, code) -> None:
    with NhnTestServer(templates=TEMPLATES, **server_kwargs) as srv:
        p = NhnProvider(provider_settings(srv, **settings))
        msg = make_message(1, "01012345678", template_code=message_template, fallback=Fallback("SMS", "x"))
        with pytest.raises(ProviderError) as info:
            p.send([msg], idempotency_key="k")
        assert info.value.retryable is False
        assert code in str(info.value)
        assert len(srv.send_requests()) == 1 and srv.messages == []


def test_retry_after_beyond_budget_is_handed_back(server: NhnTestServer) -> None:
    p = NhnProvider(provider_settings(server, retry_max_seconds=2))
    server.fail_next(1, status=429, retry_after=30)
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        p.send([make_message(1, "01012345678")], idempotency_key="k")
    assert time.monotonic() - started < 1.5  # did not sleep a wait it could not finish
    assert info.value.retryable is True and info.value.retry_after == 30
    assert len(server.send_requests()) == 1


def test_connection_refused_is_retryable() -> None:
    with NhnTestServer(templates=TEMPLATES) as srv:
        settings = provider_settings(srv, retry_attempts=2)
    p = NhnProvider(settings)  # server now stopped: nothing listens on that port
    with pytest.raises(ProviderError) as info:
        p.send([make_message(1, "01012345678")], idempotency_key="k")
    assert info.value.retryable is True


POLL_CASES = [
    # number, behaviour, fallback, expected status, channel, result_code
    ("01000000001", RecipientBehaviour("1000"), None, "delivered", "alimtalk", "1000"),
    ("01000000002", RecipientBehaviour("3019"), Fallback("SMS", "대피"), "fallback_sent", "sms", "3019"),
    (
        "01000000003",
        RecipientBehaviour("3018"),
        Fallback("LMS", "긴 안내", "제목"),
        "fallback_sent",
        "lms",
        "3018",
    ),
    ("01000000004", RecipientBehaviour("3005"), Fallback("SMS", "대피"), "uncertain", "alimtalk", "3005"),
    ("01000000005", RecipientBehaviour("3008"), None, "failed", None, "3008"),
    (
        "01000000006",
        RecipientBehaviour("3019", fallback_ok=False),
        Fallback("SMS", "x"),
        "failed",
        None,
        "3019",
    ),
    ("01000000007", RecipientBehaviour("3020"), None, "failed", None, "3020"),
    ("01000000008", RecipientBehaviour("1021"), Fallback("SMS", "x"), "fallback_sent", "sms", "1021"),
]


def test_poll_results_mapping() -> None:
    behaviours = {no: b for no, b, *_ in POLL_CASES}
    with NhnTestServer(templates=TEMPLATES, behaviours=behaviours, results_after_polls=1) as srv:
        p = NhnProvider(provider_settings(srv))
        batch = [make_message(i, no, fallback=fb) for i, (no, _, fb, *_) in enumerate(POLL_CASES, start=1)]
        outcomes = p.send(batch, idempotency_key="k")
        pending = [PendingDelivery(o.delivery_id, o.request_id, o.recipient_seq) for o in outcomes]
        assert p.poll_results(pending) == []  # nothing final yet: unchanged deliveries are omitted
        results = {r.delivery_id: r for r in p.poll_results(pending)}
        got = [(results[i].status, results[i].channel, results[i].result_code) for i in range(1, len(batch) + 1)]
        assert got == [(s, c, code) for *_, s, c, code in POLL_CASES]
        assert results[8].raw["operatorAlert"] is True
        assert results[1].raw["recipientNo"] == "010-****-0001"
        gets = [r for r in srv.requests if r.method == "GET"]
        assert all(r.query["pageSize"] == ["1000"] for r in gets)


def test_poll_matches_by_grouping_key_and_paginates(server: NhnTestServer, monkeypatch) -> None:
    p = NhnProvider(provider_settings(server))
    outcomes = p.send([make_message(i, f"0101234{i:04d}") for i in range(1, 6)], idempotency_key="k")
    monkeypatch.setattr(nhn_module, "PAGE_SIZE", 2)
    pending = [PendingDelivery(o.delivery_id, o.request_id, None) for o in outcomes]
    results = p.poll_results(pending)
    assert sorted(r.delivery_id for r in results) == [1, 2, 3, 4, 5]
    assert {r.status for r in results} == {"delivered"}
    pages = [r.query["pageNum"][0] for r in server.requests if r.method == "GET"]
    assert pages == ["1", "2", "3"]


def test_poll_fallback_type_unknown_after_restart() -> None:
    with NhnTestServer(templates=TEMPLATES, behaviours={"01012345678": "3019"}) as srv:
        sender = NhnProvider(provider_settings(srv))
        (o,) = sender.send([make_message(1, "01012345678", fallback=Fallback("SMS", "x"))], idempotency_key="k")
        fresh = NhnProvider(provider_settings(srv))  # another process: does not know the resend type
        (r,) = fresh.poll_results([PendingDelivery(1, o.request_id, o.recipient_seq)])
        assert (r.status, r.channel) == ("fallback_sent", None)


def test_poll_config_error_raises(server: NhnTestServer) -> None:
    p = NhnProvider(provider_settings(server, secret_key="wrong"))
    with pytest.raises(ProviderError) as info:
        p.poll_results([PendingDelivery(1, "req", 1)])
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("01012345678", "010-****-5678"),
        ("0212345678", "021-****-5678"),
        ("010-1234-5678", "010-****-5678"),
        ("1234", "**34"),
        ("", "<none>"),
        (None, "<none>"),
    ],
)
def test_mask_phone(number, masked) -> None:
    assert mask_phone(number) == masked


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-1", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
    ],
)
def test_parse_retry_after(value, seconds) -> None:
    from datetime import UTC, datetime

    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == seconds


def test_missing_settings_named() -> None:
    with pytest.raises(ValueError, match="secret_key"):
        NhnProvider({"base_url": "http://127.0.0.1:1", "app_key": "a", "sender_key": "s"})


def test_system_error_retried_with_same_key(server: NhnTestServer, provider: NhnProvider) -> None:
    server.refuse_next(1, -9999, "system error")
    outcomes = provider.send([make_message(1, "01012345678")], idempotency_key="k-9999")
    reqs = server.send_requests()
    assert [r.result_code for r in reqs] == [-9999, 0]
    assert {r.headers["x-nc-api-idempotency-key"] for r in reqs} == {"k-9999"}
    assert outcomes[0].accepted and server.sends_to("01012345678") == 1


def test_daily_volume_is_retryable_later_not_now(server: NhnTestServer, provider: NhnProvider) -> None:
    server.refuse_next(1, -1017, "daily volume exceeded")
    with pytest.raises(ProviderError) as info:
        provider.send([make_message(1, "01012345678")], idempotency_key="k")
    assert info.value.retryable is True and "-1017" in str(info.value)
    assert len(server.send_requests()) == 1 and server.messages == []


def test_scrub_numbers() -> None:
    from alerts.delivery.providers.nhn import scrub_numbers

    text = '{"recipientNo": "01012345678", "requestId": "20240101123456000001", "seq": 12}'
    assert scrub_numbers(text) == '{"recipientNo": "010-****-5678", "requestId": "20240101123456000001", "seq": 12}'


def test_refused_request_logs_answer_without_numbers(caplog: pytest.LogCaptureFixture) -> None:
    with NhnTestServer(templates=TEMPLATES) as srv:
        p = NhnProvider(provider_settings(srv))
        with caplog.at_level(logging.ERROR, logger="alerts.delivery.providers.nhn"), pytest.raises(ProviderError):
            p.send([make_message(1, "01012345678", template_code="NOPE")], idempotency_key="k")
    assert "-3003" in caplog.text and "Template does not exist" in caplog.text
    assert_no_numbers_logged(caplog, "01012345678")
