"""NHN Cloud AlimTalk result codes as data, and the two functions that read them.

Kept as tables (not if-chains or regexes) because a peer project's failure-code regex never matched and
every failure came out UNKNOWN; tables can be tested row by row against the provider's published list
(TOAST-DOCS/Alimtalk ``ko/error-code.md`` and ``ko/alimtalk-api-guide.md``, summarised in
``shared/reference/alimtalk.md``).

Two code families exist and must not be mixed up:

* API result codes (``header.resultCode`` and ``sendResults[].resultCode``): integers, answer to a request.
* Delivery result codes (``resultCode`` in the results API): strings, Kakao's own codes, arrive later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alerts.delivery.providers.base import ResultStatus

# --------------------------------------------------------------------------------------------------
# API result codes (integers)
# --------------------------------------------------------------------------------------------------

API_SUCCESS = 0
API_IDEMPOTENCY_REUSED = -1005
API_ALL_RECIPIENTS_FAILED = -1031

ApiScope = Literal["ok", "recipient", "request"]


@dataclass(frozen=True, slots=True)
class ApiCode:
    """How to treat one API result code.

    ``scope``: ``recipient`` codes reject one recipient of an otherwise accepted request; ``request``
    codes reject the whole request. ``retryable``: the same request may succeed later unchanged.
    """

    meaning: str
    scope: ApiScope
    retryable: bool


API_CODES: dict[int, ApiCode] = {
    0: ApiCode("success", "ok", False),
    4: ApiCode("parameter validation failed", "request", False),
    -1000: ApiCode("invalid appkey", "request", False),
    -1001: ApiCode("invalid secret key", "request", False),
    -1002: ApiCode("invalid SMS appkey", "request", False),
    -1003: ApiCode("invalid SMS sender number", "request", False),
    -1005: ApiCode("idempotency key reused within 10 minutes", "request", False),
    -1006: ApiCode("sender profile has no sender key", "request", False),
    # Daily volume: the same request will be accepted tomorrow (or after the limit is raised).
    -1017: ApiCode("daily volume exceeded", "request", True),
    -1019: ApiCode("invalid fallback 080 unsubscribe number", "request", False),
    -1020: ApiCode("invalid uuid", "request", False),
    -1027: ApiCode("sender profile blocked", "request", False),
    -1028: ApiCode("template variable too long for a new sender", "request", False),
    -1031: ApiCode("all recipients failed", "request", False),
    -2000: ApiCode("field longer than allowed", "request", False),
    -2001: ApiCode("required field blank", "request", False),
    -2002: ApiCode("required field null", "request", False),
    -2003: ApiCode("field shorter than allowed", "request", False),
    -2004: ApiCode("field length out of range", "request", False),
    -2005: ApiCode("field value out of range", "request", False),
    -2017: ApiCode("sender profile not found", "request", False),
    -2018: ApiCode("invalid button parameter", "request", False),
    -2019: ApiCode("content longer than 1,300 characters", "request", False),
    -2025: ApiCode("bad requestDate", "request", False),
    -2026: ApiCode("bad requestDate", "request", False),
    -2027: ApiCode("bad requestDate", "request", False),
    -2502: ApiCode("fallback requested but not configured", "request", False),
    -3002: ApiCode("request body unreadable", "request", False),
    -3003: ApiCode("template missing", "request", False),
    -3004: ApiCode("template parameter error", "request", False),
    -3005: ApiCode("template not approved", "request", False),
    # Content mismatch is reported per recipient and can still fall back to SMS.
    -3010: ApiCode("content does not match template", "recipient", False),
    -4000: ApiCode("invalid parameter", "request", False),
    -5000: ApiCode("invalid recipient number", "recipient", False),
    -9996: ApiCode("content type not application/json;charset=UTF-8", "request", False),
    -9999: ApiCode("system error", "request", True),
}

#: HTTP statuses worth retrying with the same idempotency key (throttling, gateway trouble, server error).
RETRYABLE_HTTP_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})


def api_code(code: int) -> ApiCode:
    """The table entry, or a conservative default: an unknown negative code stops the request and is
    not retried blindly (a human should read it), but it is never mistaken for success."""
    return API_CODES.get(code, ApiCode(f"unknown result code {code}", "request", False))


# --------------------------------------------------------------------------------------------------
# Delivery result codes (strings, Kakao's)
# --------------------------------------------------------------------------------------------------

DELIVERED_CODES: frozenset[str] = frozenset({"1000"})
#: The recipient cannot get this AlimTalk; SMS/LMS fallback is the remedy.
FALLBACK_CODES: frozenset[str] = frozenset({"3018", "3019", "3020", "3021"})
#: Text does not match the template: falls back, but the operator must fix the template config.
TEMPLATE_MISMATCH_CODES: frozenset[str] = frozenset({"3016"})
#: Kakao-side trouble: fallback if configured.
TRANSIENT_CODES: frozenset[str] = frozenset({"2001", "3000", "3006", "3010", "3012", "9998", "9999"})
#: Send-count quota: fallback if configured, and slow down.
QUOTA_CODES: frozenset[str] = frozenset({"4156"})
#: Sent without receipt: never resend blindly.
UNCERTAIN_CODES: frozenset[str] = frozenset({"3005"})
#: Bad phone number.
RECIPIENT_ERROR_CODES: frozenset[str] = frozenset({"3008"})
#: Length / variable / button mismatch: template configuration error, permanent.
TEMPLATE_ERROR_CODES: frozenset[str] = frozenset({"3014"} | {str(c) for c in range(3025, 3059)})
#: Bad key, sender blocked, channel blocked/closed/deleted: stop and alert the operator.
SENDER_ERROR_CODES: frozenset[str] = frozenset(str(c) for c in range(1001, 1031))

#: Categories whose cause is our configuration: an operator has to act.
OPERATOR_CATEGORIES: frozenset[str] = frozenset({"template_mismatch", "template_error", "sender_error"})

#: Fallback (resend) status codes.
RESEND_NOT_TARGET = "RSC01"
RESEND_TARGET = "RSC02"
RESEND_IN_PROGRESS = "RSC03"
RESEND_SENT = "RSC04"
RESEND_FAILED = "RSC05"

#: messageStatus values that are final (anything else, e.g. READY, means still in progress).
FINAL_MESSAGE_STATUSES: frozenset[str] = frozenset({"COMPLETED", "FAILED", "CANCEL"})


def delivery_category(code: str | None) -> str:
    """Name of the table ``code`` belongs to (``unknown`` when none, ``none`` when there is no code)."""
    if not code:
        return "none"
    for name, table in (
        ("delivered", DELIVERED_CODES),
        ("fallback", FALLBACK_CODES),
        ("template_mismatch", TEMPLATE_MISMATCH_CODES),
        ("transient", TRANSIENT_CODES),
        ("quota", QUOTA_CODES),
        ("uncertain", UNCERTAIN_CODES),
        ("recipient_error", RECIPIENT_ERROR_CODES),
        ("template_error", TEMPLATE_ERROR_CODES),
        ("sender_error", SENDER_ERROR_CODES),
    ):
        if code in table:
            return name
    return "unknown"


@dataclass(frozen=True, slots=True)
class Classification:
    status: ResultStatus
    #: alimtalk, sms, lms, or None when nothing reached the recipient (or the fallback type is unknown).
    channel: str | None
    category: str
    #: The cause is our configuration (template, sender profile): alert the operator.
    operator_alert: bool


def classify(
    message_status: str | None,
    result_code: str | None,
    resend_status: str | None = None,
    resend_type: str | None = None,
) -> Classification:
    """Map one row of NHN's results API to our delivery status.

    Rules, in order:

    1. ``CANCEL`` -> failed. No final status and no code yet -> pending.
    2. 1000 -> delivered via AlimTalk. 3005 -> uncertain (sent, no receipt).
    3. Otherwise AlimTalk failed; the fallback status decides: RSC04 -> fallback_sent (channel from
       ``resend_type``, the type we asked for, since the list API does not echo it), RSC05 -> failed,
       RSC03 -> pending. RSC02 ("will fall back") -> pending for codes NHN falls back on
       (fallback/mismatch/transient/quota/unknown); for permanent errors it is read as "no fallback
       will follow" -> failed, so a delivery cannot stay pending forever on a dead number.
    4. No fallback (RSC01 or absent) -> failed.
    """
    category = delivery_category(result_code)
    operator = category in OPERATOR_CATEGORIES
    status_u = (message_status or "").upper()

    def out(status: ResultStatus, channel: str | None = None) -> Classification:
        return Classification(status, channel, category, operator)

    if status_u == "CANCEL":
        return out("failed")
    if category == "none":
        return out("failed") if status_u == "FAILED" else out("pending")
    if category == "delivered":
        return out("delivered", "alimtalk")
    if category == "uncertain":
        return out("uncertain", "alimtalk")
    resend = (resend_status or "").upper()
    if resend == RESEND_SENT:
        return out("fallback_sent", resend_type.lower() if resend_type else None)
    if resend == RESEND_FAILED:
        return out("failed")
    if resend == RESEND_IN_PROGRESS:
        return out("pending")
    permanent = category in {"recipient_error", "template_error", "sender_error"}
    if resend == RESEND_TARGET and not permanent:
        return out("pending")
    return out("failed")
