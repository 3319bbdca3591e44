"""The loopback NHN server must refuse what NHN refuses, with NHN's codes: otherwise adapter tests
against it could pass while sending junk."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from nhn_fixtures import TEMPLATE_CODE, TEMPLATES

from alerts.testing import NhnTestServer, RecipientBehaviour

CT = "application/json;charset=UTF-8"


def valid_body() -> dict[str, Any]:
    return {
        "senderKey": "s" * 40,
        "templateCode": TEMPLATE_CODE,
        "senderGroupingKey": "batch-1",
        "recipientList": [
            {
                "recipientNo": "01012345678",
                "templateParameter": {"region": "서울", "event": "호우경보", "body": "대피"},
                "recipientGroupingKey": "1",
                "resendParameter": {
                    "isResend": True,
                    "resendType": "SMS",
                    "resendContent": "대피",
                    "resendSendNo": "0212345678",
                },
            }
        ],
    }


def post(
    srv: NhnTestServer,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    appkey: str | None = None,
    raw: bytes | None = None,
) -> dict[str, Any]:
    h = {"X-Secret-Key": srv.secret_key, "Content-Type": CT}
    h.update(headers or {})
    url = f"{srv.base_url}/alimtalk/v2.3/appkeys/{appkey or srv.app_key}/messages"
    content = raw if raw is not None else httpx.Request("POST", url, json=body).content
    r = httpx.post(url, content=content, headers=h)
    assert r.status_code == 200
    return r.json()


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return mutate


_DELETE = object()
R0 = ["recipientList", 0]

BODY_CASES = [
    ("senderKey missing", _set(["senderKey"], _DELETE), -2001),
    ("senderKey blank", _set(["senderKey"], ""), -2001),
    ("senderKey 41 chars", _set(["senderKey"], "s" * 41), -2000),
    ("senderKey unknown", _set(["senderKey"], "x" * 40), -2017),
    ("senderKey not string", _set(["senderKey"], 12), 4),
    ("templateCode missing", _set(["templateCode"], _DELETE), -2001),
    ("templateCode 21 chars", _set(["templateCode"], "T" * 21), -2000),
    ("template unknown", _set(["templateCode"], "NOPE"), -3003),
    ("senderGroupingKey 101", _set(["senderGroupingKey"], "k" * 101), -2000),
    ("recipientList missing", _set(["recipientList"], _DELETE), -2001),
    ("recipientList empty", _set(["recipientList"], []), -2001),
    ("recipientNo missing", _set([*R0, "recipientNo"], _DELETE), -2001),
    ("recipientNo 16 chars", _set([*R0, "recipientNo"], "0" * 16), -2000),
    ("recipientGroupingKey 101", _set([*R0, "recipientGroupingKey"], "g" * 101), -2000),
    ("parameter not string", _set([*R0, "templateParameter", "body"], 3), 4),
    ("parameter missing", _set([*R0, "templateParameter"], {"region": "서울"}), -3004),
    ("no parameters at all", _set([*R0, "templateParameter"], _DELETE), -3004),
    ("bad resendType", _set([*R0, "resendParameter", "resendType"], "MMS"), 4),
]


@pytest.mark.parametrize(("name", "mutate", "code"), BODY_CASES, ids=[c[0] for c in BODY_CASES])
def test_rejects_bad_body(server: NhnTestServer, name: str, mutate: Callable, code: int) -> None:
    body = copy.deepcopy(valid_body())
    mutate(body)
    answer = post(server, body)
    assert answer["header"]["resultCode"] == code, answer
    assert answer["header"]["isSuccessful"] is False
    assert server.messages == []


def test_rejects_1001_recipients(server: NhnTestServer) -> None:
    body = valid_body()
    body["recipientList"] = [dict(body["recipientList"][0], recipientNo=f"010{i:08d}") for i in range(1001)]
    assert post(server, body)["header"]["resultCode"] == -2005
    body["recipientList"] = body["recipientList"][:1000]
    answer = post(server, body)
    assert answer["header"]["resultCode"] == 0
    assert len(answer["message"]["sendResults"]) == 1000


@pytest.mark.parametrize(
    ("headers", "appkey", "raw", "code"),
    [
        ({}, "other-appkey", None, -1000),
        ({"X-Secret-Key": "wrong"}, None, None, -1001),
        ({"X-Secret-Key": ""}, None, None, -1001),
        ({"Content-Type": "application/json"}, None, None, -9996),
        ({"Content-Type": "text/plain;charset=UTF-8"}, None, None, -9996),
        ({}, None, b"{not json", -3002),
        ({}, None, b"[1, 2]", -3002),
    ],
)
def test_rejects_bad_request(server: NhnTestServer, headers, appkey, raw, code) -> None:
    assert post(server, valid_body(), headers=headers, appkey=appkey, raw=raw)["header"]["resultCode"] == code
    assert server.messages == []


def test_accepts_valid_request_and_fills_template(server: NhnTestServer) -> None:
    answer = post(server, valid_body())
    assert answer["header"] == {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": True}
    result = answer["message"]["sendResults"][0]
    assert result["recipientSeq"] == 1 and result["resultCode"] == 0 and result["recipientGroupingKey"] == "1"
    assert answer["message"]["senderGroupingKey"] == "batch-1"
    (msg,) = server.messages
    assert msg.content == "[서울] 호우경보 발령\n대피"
    assert msg.resend is not None and msg.resend["resendType"] == "SMS"


def test_fallback_without_configured_sender() -> None:
    with NhnTestServer(templates=TEMPLATES, fallback_sender=None) as srv:
        assert post(srv, valid_body())["header"]["resultCode"] == -2502
        body = valid_body()
        del body["recipientList"][0]["resendParameter"]
        assert post(srv, body)["header"]["resultCode"] == 0


def test_idempotency_key_window() -> None:
    with NhnTestServer(templates=TEMPLATES, idempotency_window_seconds=0.3) as srv:
        key = {"X-NC-API-IDEMPOTENCY-KEY": "k-1"}
        assert post(srv, valid_body(), headers=key)["header"]["resultCode"] == 0
        assert post(srv, valid_body(), headers=key)["header"]["resultCode"] == -1005
        assert len(srv.messages) == 1  # nothing sent the second time
        assert post(srv, valid_body(), headers={"X-NC-API-IDEMPOTENCY-KEY": "k-2"})["header"]["resultCode"] == 0
        time.sleep(0.35)
        assert post(srv, valid_body(), headers=key)["header"]["resultCode"] == 0
        assert len(srv.messages) == 3


def test_refused_request_does_not_burn_its_key(server: NhnTestServer) -> None:
    key = {"X-NC-API-IDEMPOTENCY-KEY": "k-1"}
    bad = valid_body()
    bad["templateCode"] = "NOPE"
    assert post(server, bad, headers=key)["header"]["resultCode"] == -3003
    assert post(server, valid_body(), headers=key)["header"]["resultCode"] == 0


def test_per_recipient_rejection() -> None:
    with NhnTestServer(templates=TEMPLATES, behaviours={"01099990000": RecipientBehaviour(reject=True)}) as srv:
        body = valid_body()
        r0 = body["recipientList"][0]
        body["recipientList"] = [r0, dict(r0, recipientNo="01099990000"), dict(r0, recipientNo="12ab")]
        answer = post(srv, body)
        assert answer["header"]["resultCode"] == 0
        assert [r["resultCode"] for r in answer["message"]["sendResults"]] == [0, -5000, -5000]
        assert len(srv.messages) == 1
        body["recipientList"] = body["recipientList"][1:]
        answer = post(srv, body)
        assert answer["header"]["resultCode"] == -1031
        assert [r["resultCode"] for r in answer["message"]["sendResults"]] == [-5000, -5000]


def get(srv: NhnTestServer, **params: Any) -> dict[str, Any]:
    r = httpx.get(
        f"{srv.base_url}/alimtalk/v2.3/appkeys/{srv.app_key}/messages",
        params=params,
        headers={"X-Secret-Key": srv.secret_key, "Content-Type": CT},
    )
    return r.json()


def test_list_api(server: NhnTestServer) -> None:
    request_id = post(server, valid_body())["message"]["requestId"]
    assert get(server)["header"]["resultCode"] == -2001
    assert get(server, requestId=request_id, pageSize=1001)["header"]["resultCode"] == -2005
    answer = get(server, requestId=request_id, pageSize=1000)
    body = answer["messageSearchResultResponse"]
    assert body["totalCount"] == 1
    row = body["messages"][0]
    assert {
        "requestId",
        "recipientSeq",
        "recipientNo",
        "messageStatus",
        "resultCode",
        "resendStatus",
        "senderGroupingKey",
        "recipientGroupingKey",
        "resultCodeName",
    } <= set(row)
    assert (row["messageStatus"], row["resultCode"], row["resendStatus"]) == ("COMPLETED", "1000", "RSC01")
    assert get(server, requestId="nope")["messageSearchResultResponse"]["totalCount"] == 0
    assert get(server, requestId=request_id, recipientGroupingKey="2")["messageSearchResultResponse"]["totalCount"] == 0
    bad_auth = httpx.get(
        f"{server.base_url}/alimtalk/v2.3/appkeys/{server.app_key}/messages",
        params={"requestId": request_id},
        headers={"X-Secret-Key": "x"},
    ).json()
    assert bad_auth["header"]["resultCode"] == -1001


def test_results_after_polls_and_fallback_states() -> None:
    behaviours = {"01011112222": RecipientBehaviour("3019", fallback_ok=False)}
    with NhnTestServer(templates=TEMPLATES, behaviours=behaviours, results_after_polls=1) as srv:
        body = valid_body()
        body["recipientList"][0]["recipientNo"] = "01011112222"
        request_id = post(srv, body)["message"]["requestId"]
        first = get(srv, requestId=request_id)["messageSearchResultResponse"]["messages"][0]
        assert (first["messageStatus"], first["resultCode"], first["resendStatus"]) == (
            "READY",
            None,
            "RSC02",
        )
        second = get(srv, requestId=request_id)["messageSearchResultResponse"]["messages"][0]
        assert (second["messageStatus"], second["resultCode"], second["resendStatus"]) == (
            "FAILED",
            "3019",
            "RSC05",
        )


def test_injected_failures_send_nothing(server: NhnTestServer) -> None:
    server.fail_next(1, status=429, retry_after=2)
    r = httpx.post(
        f"{server.base_url}/alimtalk/v2.3/appkeys/{server.app_key}/messages",
        json=valid_body(),
        headers={"X-Secret-Key": server.secret_key, "Content-Type": CT},
    )
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert server.messages == []
    assert server.requests[0].http_status == 429
