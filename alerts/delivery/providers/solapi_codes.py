"""Solapi Messages API v4 status codes as data, and the function that reads a stored message.

A table, not a regex: a peer project's Solapi failure-code regex never matched and every failure came
out UNKNOWN (``shared/reference/alimtalk.md``). Each row can be tested on its own.

One code family (strings in ``statusCode``) covers both the answer to a send (per message, in
``failedMessageList`` / ``messageList``) and the later delivery state (``GET /messages/v4/list``):
2000 accepted, 3000 handed on to the carrier/Kakao, 4000 delivered, anything else a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alerts.delivery.providers.base import ResultStatus

ACCEPTED = "2000"
HANDED_ON = "3000"
DELIVERED = "4000"
#: Still on its way: accepted by Solapi, or handed on and no receipt yet.
IN_PROGRESS: frozenset[str] = frozenset({ACCEPTED, HANDED_ON})

Category = Literal["ok", "fallback", "template", "balance", "recipient", "sender", "transient", "unknown"]


@dataclass(frozen=True, slots=True)
class SolapiCode:
    """How to treat one failure code. ``retryable``: the same message may be taken later unchanged
    (so it stays queued); ``operator``: our configuration or account must be fixed by a person."""

    meaning: str
    category: Category
    retryable: bool = False
    operator: bool = False


CODES: dict[str, SolapiCode] = {
    ACCEPTED: SolapiCode("accepted", "ok"),
    HANDED_ON: SolapiCode("handed on to the carrier/Kakao", "ok"),
    DELIVERED: SolapiCode("delivered", "ok"),
    # From the reference (shared/reference/alimtalk.md):
    "3104": SolapiCode("not a KakaoTalk user", "fallback"),
    "3107": SolapiCode("KakaoTalk inactive for 72 hours or channel blocked", "fallback"),
    "3103": SolapiCode("content does not match the template", "template", operator=True),
    "1043": SolapiCode("content does not match the template", "template", operator=True),
    # Balance is the operator's to top up; the messages wait in the queue meanwhile (like NHN -1017).
    "1030": SolapiCode("insufficient balance", "balance", retryable=True, operator=True),
    # Assumed (the reference is silent; the loopback server uses the same numbers): a malformed
    # recipient number and an unregistered sender number are refused at send time.
    "1020": SolapiCode("invalid recipient number", "recipient"),
    "1062": SolapiCode("sender number not registered", "sender", operator=True),
}


def refused_at_send(code: str | None) -> bool:
    """1xxx codes are refusals when the group is created (the message never went on); 2000/3xxx/4000
    belong to a message Solapi took. (Solapi's code families; the split is our reading of them.)"""
    return code is None or str(code).startswith("1")


def code_info(code: str | None) -> SolapiCode:
    """The table row, or a conservative default: an unknown code is a failure a human should read,
    never mistaken for success and never retried blindly."""
    if code is None:
        return SolapiCode("no status code", "unknown")
    return CODES.get(str(code), SolapiCode(f"unknown status code {code}", "unknown"))


@dataclass(frozen=True, slots=True)
class Classification:
    status: ResultStatus
    channel: str | None
    category: str
    operator_alert: bool


def classify(status_code: str | None, replacement: bool, message_type: str | None) -> Classification:
    """One stored message of ``GET /messages/v4/list`` -> our delivery status.

    * 2000/3000 -> pending (also while a fallback is on its way: ``replacement`` true, not yet final).
    * 4000 -> delivered via AlimTalk, or, when ``replacement`` is true, the SMS/LMS fallback was
      delivered (channel from the stored ``type``, which Solapi rewrites to the fallback's type).
    * any other code -> failed (a failed fallback included); ``operator_alert`` for our own mistakes.
    """
    code = str(status_code) if status_code is not None else None
    info = code_info(code)
    if code in IN_PROGRESS or code is None:
        return Classification("pending", None, "pending", False)
    if code == DELIVERED:
        if replacement:
            kind = (message_type or "").upper()
            return Classification("fallback_sent", kind.lower() if kind in ("SMS", "LMS") else None, "fallback",
                                  False)
        return Classification("delivered", "alimtalk", "delivered", False)
    return Classification("failed", None, info.category, info.operator)
