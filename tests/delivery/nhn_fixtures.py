"""Helpers for provider tests (a uniquely named module: ``conftest`` names clash across test folders)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from alerts.delivery.providers.base import Fallback, OutgoingMessage
from alerts.testing import NhnTestServer

TEMPLATE_CODE = "WX_ALERT"
TEMPLATE_TEXT = "[#{region}] #{event} 발령\n#{body}"
TEMPLATES = {TEMPLATE_CODE: TEMPLATE_TEXT, "WX_CANCEL": "[#{region}] #{event} 해제"}


def make_message(
    delivery_id: int,
    number: str,
    *,
    fallback: Fallback | None = None,
    template_code: str = TEMPLATE_CODE,
) -> OutgoingMessage:
    params = {"region": "서울", "event": "호우경보", "body": f"안내 {delivery_id}"}
    text = TEMPLATE_TEXT.replace("#{region}", "서울").replace("#{event}", "호우경보")
    return OutgoingMessage(
        delivery_id=delivery_id,
        recipient_no=number,
        template_code=template_code,
        parameters=params,
        text=text.replace("#{body}", params["body"]),
        fallback=fallback,
    )


def provider_settings(server: NhnTestServer, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "base_url": server.base_url,
        "app_key": server.app_key,
        "secret_key": server.secret_key,
        "sender_key": server.sender_key,
        "resend_send_no": "0212345678",
        "timeout_seconds": 5,
        "retry_attempts": 4,
        "retry_max_seconds": 20,
        "retry_initial_seconds": 0.01,
        "retry_max_wait_seconds": 0.05,
    }
    settings.update(overrides)
    return settings


def assert_no_numbers_logged(caplog: pytest.LogCaptureFixture, *numbers: str) -> None:
    """No phone number, in any spelling, in anything logged; no long digit run in our own records.

    Third-party debug records (httpcore prints object addresses) are held only to the first rule,
    so an address that happens to be nine digits long cannot fail the test.
    """
    for number in numbers:
        local = number[1:] if number.startswith("0") else number
        for spelling in (number, local, f"+82{local}", f"{number[:3]}-{number[3:-4]}-{number[-4:]}", number[3:]):
            assert spelling not in caplog.text, f"{spelling} appears in the log"
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("alerts"))
    assert not re.search(r"\d{9,}", ours), ours
