"""Solapi (CoolSMS) Messages API v4 adapter: AlimTalk (``ATA``) with Solapi's own SMS/LMS fallback.

Solapi has no idempotency key, so "never sent twice" is built from what it does have:

* Every message carries ``customFields`` ``{"alimcastKey": <the batch's idempotency key>,
  "deliveryId": <our delivery id>}``; Solapi stores them with the message.
* Before a batch goes out, the adapter asks ``GET /messages/v4/list`` for the messages to the batch's
  first recipient in the last day and looks for one carrying the key. One request of a batch is one
  Solapi group, created whole or not at all, so finding one message finds the batch; its ``groupId``
  then lists the whole group, and the batch is answered from there instead of being sent again. This
  probe is one small GET per batch (up to 10,000 recipients): the price of surviving a crash or a lost
  answer with a provider that cannot refuse a repeat.
* A failure after which the request may have arrived (read timeout, dropped connection, HTTP
  500/502/504) is never retried inside the adapter: it goes back to the dispatcher as
  ``unknown_outcome``, which keeps the batch under its key and comes back after a backoff of seconds,
  when the probe above finds what arrived (Solapi's list may trail its sends by a moment).
* Failures that prove nothing was taken (refused connection, HTTP 429/503, a 403 for a reused
  signature) are retried in place with backoff that honours ``Retry-After``, each attempt signed anew.

Auth: ``Authorization: HMAC-SHA256 apiKey=…, date=<ISO-8601>, salt=<random>,
signature=hex(HMAC-SHA256(api_secret, date + salt))``, a fresh salt per request (Solapi refuses a
reused signature and a clock more than 15 minutes off, with HTTP 403).

Phone numbers are masked in every log line and error text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)

from alerts.delivery.providers import solapi_codes as codes
from alerts.delivery.providers.base import (
    DeliveryResult,
    OutgoingMessage,
    PendingDelivery,
    Provider,
    ProviderError,
    SendOutcome,
)
from alerts.delivery.providers.nhn import mask_phone, parse_retry_after, scrub_numbers

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.solapi.com"
SEND_PATH = "/messages/v4/send-many/detail"
LIST_PATH = "/messages/v4/list"
KEY_FIELD = "alimcastKey"
ID_FIELD = "deliveryId"
#: How far back the pre-send probe looks for an earlier attempt of the same batch.
PROBE_WINDOW = timedelta(days=1)
LIST_LIMIT = 500
#: Statuses after which nothing was taken: safe to repeat at once.
NOT_TAKEN_HTTP = frozenset({429, 503})
#: Statuses after which the request may have been processed: never repeated blindly.
MAYBE_TAKEN_HTTP = frozenset({500, 502, 504})


class _ScrubNumbers(logging.Filter):
    """The probe asks for messages ``to`` a number, and httpx logs each request's URL at INFO: mask
    phone numbers in httpx's records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub_numbers(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def _scrub_httpx_logs() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _ScrubNumbers) for f in logger.filters):
        logger.addFilter(_ScrubNumbers())


def sign(api_key: str, api_secret: str, *, date: str | None = None, salt: str | None = None) -> str:
    """The ``Authorization`` header value for one request (fresh salt unless given, for tests)."""
    date = date or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # the form of Solapi's own samples
    salt = salt or secrets.token_hex(16)
    signature = hmac.new(api_secret.encode(), (date + salt).encode(), hashlib.sha256).hexdigest()
    return f"HMAC-SHA256 apiKey={api_key}, date={date}, salt={salt}, signature={signature}"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Retryable(Exception):
    """An attempt failed in a way that proves nothing was taken. Internal to the retry loop."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _wait(initial: float, maximum: float) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential(multiplier=initial, max=maximum) + wait_random(0, initial)

    def wait(state: RetryCallState) -> float:
        seconds = backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return max(seconds, retry_after) if retry_after is not None else seconds

    return wait


def _truthy(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class SolapiProvider(Provider):
    """Settings (secrets resolved from the environment by the config loader): ``api_key``,
    ``api_secret``, ``pf_id`` (KakaoTalk channel id), ``sender_no`` (registered sender number, also the
    SMS/LMS fallback's sender), optional ``base_url`` (https://api.solapi.com), ``fallback`` (True),
    ``timeout_seconds`` (10), ``retry_attempts`` (5), ``retry_max_seconds`` (60),
    ``retry_initial_seconds`` (0.5), ``retry_max_wait_seconds`` (30). Unknown keys are ignored."""

    kind: ClassVar[str] = "solapi"
    max_batch: ClassVar[int] = 10_000

    def __init__(self, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(settings)
        missing = [k for k in ("api_key", "api_secret", "pf_id", "sender_no") if not settings.get(k)]
        if missing:
            raise ValueError(f"solapi provider settings: missing {', '.join(missing)}")
        self.base_url = str(settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = str(settings["api_key"])
        self._api_secret = str(settings["api_secret"])
        self.pf_id = str(settings["pf_id"])
        self.sender_no = "".join(c for c in str(settings["sender_no"]) if c.isdigit())
        self.fallback_enabled = _truthy(settings.get("fallback"), True)
        self.timeout = float(settings.get("timeout_seconds", 10))
        self.retry_attempts = int(settings.get("retry_attempts", 5))
        self.retry_max_seconds = float(settings.get("retry_max_seconds", 60))
        self.retry_initial = float(settings.get("retry_initial_seconds", 0.5))
        self.retry_max_wait = float(settings.get("retry_max_wait_seconds", 30))
        self._client = httpx.Client(timeout=self.timeout, transport=transport)
        _scrub_httpx_logs()

    def close(self) -> None:
        self._client.close()

    # ---- send -------------------------------------------------------------------------------------

    def build_body(self, batch: Sequence[OutgoingMessage], key: str) -> dict[str, Any]:
        """The JSON body of ``send-many/detail`` for ``batch`` (public so its shape can be inspected)."""
        self.check_batch(batch)
        messages = []
        for m in batch:
            fallback = self.fallback_enabled and m.fallback is not None
            message: dict[str, Any] = {
                "to": m.recipient_no,
                "from": self.sender_no,
                "type": "ATA",
                # Solapi sends ``text`` (and ``subject``) as the SMS/LMS when AlimTalk fails.
                "text": m.text,
                "kakaoOptions": {
                    "pfId": self.pf_id,
                    "templateId": m.template_code,
                    "variables": {f"#{{{k}}}": v for k, v in m.parameters.items()},
                    "disableSms": not fallback,
                },
                "customFields": {KEY_FIELD: key, ID_FIELD: str(m.delivery_id)},
            }
            if fallback and m.fallback is not None and m.fallback.kind == "LMS" and m.fallback.title:
                message["subject"] = m.fallback.title
            messages.append(message)
        return {"messages": messages, "allowDuplicates": False, "showMessageList": True}

    def send(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str) -> list[SendOutcome]:
        body = self.build_body(batch, idempotency_key)
        try:
            earlier = self._find_group(batch, idempotency_key, since=datetime.now(UTC) - PROBE_WINDOW)
        except ProviderError as exc:
            # Whether an earlier attempt arrived is still unknown: the batch must keep its key (a fresh key
            # would skip this check next time and could send it twice).
            raise ProviderError(f"cannot check whether batch {idempotency_key} already reached Solapi: {exc}",
                                retryable=exc.retryable, retry_after=exc.retry_after, unknown_outcome=True) from exc
        if earlier is not None:
            log.info("solapi: batch %s had already reached Solapi (group %s): answered from there, not re-sent",
                     idempotency_key, earlier[0])
            return self._outcomes_from_rows(batch, earlier[1])
        payload = self._with_retries(lambda: self._request("POST", SEND_PATH, json=body),
                                     what=f"send {batch[0].template_code} x{len(batch)}")
        return self._outcomes(batch, payload)

    def lookup(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str,
               sent_after: datetime) -> list[SendOutcome] | None:
        found = self._find_group(batch, idempotency_key, since=sent_after - timedelta(minutes=1))
        if found is None:
            return []
        return self._outcomes_from_rows(batch, found[1])

    def _outcomes(self, batch: Sequence[OutgoingMessage], payload: Mapping[str, Any]) -> list[SendOutcome]:
        group_id = (payload.get("groupInfo") or {}).get("groupId")
        accepted: dict[str, Mapping[str, Any]] = {}
        for row in payload.get("messageList") or []:
            accepted[str((row.get("customFields") or {}).get(ID_FIELD))] = row
        failed: dict[str, Mapping[str, Any]] = {}
        for row in payload.get("failedMessageList") or []:
            failed[str((row.get("customFields") or {}).get(ID_FIELD))] = row
        outcomes = []
        for m in batch:
            key = str(m.delivery_id)
            if key in failed:
                outcomes.append(self._rejected(m, failed[key], group_id))
            elif key in accepted:
                row = accepted[key]
                code = str(row.get("statusCode") or codes.ACCEPTED)
                if code in codes.IN_PROGRESS or code == codes.DELIVERED:
                    outcomes.append(SendOutcome(m.delivery_id, True, group_id, None, code, row.get("statusMessage")))
                else:
                    outcomes.append(self._rejected(m, row, group_id))
            else:
                # Not mentioned: unknown. The dispatcher keeps it under the key; the probe settles it.
                log.warning("solapi: delivery %s missing from Solapi's answer; will be checked under its key",
                            m.delivery_id)
        return outcomes

    def _rejected(self, m: OutgoingMessage, row: Mapping[str, Any], group_id: str | None) -> SendOutcome:
        code = str(row.get("statusCode"))
        info = codes.code_info(code)
        level = logging.ERROR if info.operator else logging.WARNING
        log.log(level, "solapi: recipient %s refused: %s %s (%s)%s", mask_phone(m.recipient_no), code,
                scrub_numbers(str(row.get("statusMessage") or "")), info.meaning,
                " — the operator must act" if info.operator else "")
        return SendOutcome(m.delivery_id, False, group_id, None, code,
                           scrub_numbers(str(row.get("statusMessage") or info.meaning)), info.retryable)

    def _outcomes_from_rows(self, batch: Sequence[OutgoingMessage],
                            rows: Sequence[Mapping[str, Any]]) -> list[SendOutcome]:
        """Outcomes of a batch read back from its stored group. A recipient missing from a group that was
        created whole was refused then (Solapi creates a group with all its messages or not at all)."""
        by_id = {str((r.get("customFields") or {}).get(ID_FIELD)): r for r in rows}
        outcomes = []
        for m in batch:
            row = by_id.get(str(m.delivery_id))
            if row is None:
                outcomes.append(SendOutcome(m.delivery_id, False, None, None, "absent",
                                            "not in the group that carried its batch", False))
                continue
            code = str(row.get("statusCode"))
            if not codes.refused_at_send(code):
                # taken (a later Kakao-side failure included): its result comes through polling
                outcomes.append(SendOutcome(m.delivery_id, True, row.get("groupId"), None, code,
                                            "accepted (found under its key before any re-send)"))
            else:
                outcomes.append(self._rejected(m, row, row.get("groupId")))
        return outcomes

    def _find_group(self, batch: Sequence[OutgoingMessage], key: str,
                    since: datetime) -> tuple[str, list[dict[str, Any]]] | None:
        """(groupId, its messages) of an earlier attempt of this batch, or None when nothing arrived."""
        # a well-formed number: Solapi files every message of a group under its ``to``
        probe = next((m.recipient_no for m in batch if m.recipient_no.isdigit() and len(m.recipient_no) >= 9),
                     batch[0].recipient_no)
        rows = self._list({"criteria": "to", "cond": "eq", "value": probe}, since=since)
        hit = next((r for r in rows if (r.get("customFields") or {}).get(KEY_FIELD) == key), None)
        if hit is None:
            return None
        group_id = str(hit.get("groupId"))
        group = self._list({"criteria": "groupId", "cond": "eq", "value": group_id}, since=None)
        return group_id, [r for r in group if (r.get("customFields") or {}).get(KEY_FIELD) == key]

    # ---- results ----------------------------------------------------------------------------------

    def poll_results(self, pending: Sequence[PendingDelivery]) -> list[DeliveryResult]:
        groups: dict[str, list[PendingDelivery]] = {}
        for p in pending:
            groups.setdefault(p.request_id, []).append(p)
        results: list[DeliveryResult] = []
        for group_id, items in groups.items():
            try:
                rows = self._list({"criteria": "groupId", "cond": "eq", "value": group_id}, since=None)
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                log.warning("solapi: results for group %s unavailable this round: %s", group_id, exc)
                continue
            by_id = {str((r.get("customFields") or {}).get(ID_FIELD)): r for r in rows}
            for p in items:
                row = by_id.get(str(p.delivery_id))
                if row is None:
                    continue
                result = self._result(p, row)
                if result.status != "pending":
                    results.append(result)
        return results

    def _result(self, p: PendingDelivery, row: Mapping[str, Any]) -> DeliveryResult:
        code = row.get("statusCode")
        c = codes.classify(str(code) if code is not None else None, bool(row.get("replacement")), row.get("type"))
        info = codes.code_info(str(code) if code is not None else None)
        if c.category == "unknown":
            log.warning("solapi: unknown status code %s for delivery %s", code, p.delivery_id)
        if c.operator_alert:
            log.error("solapi: delivery %s failed with %s (%s): template/sender configuration needs attention",
                      p.delivery_id, code, info.meaning)
        raw = {k: v for k, v in row.items() if k not in ("to", "from", "text", "kakaoOptions")}
        raw["to"] = mask_phone(row.get("to"))
        raw["category"] = c.category
        raw["operatorAlert"] = c.operator_alert
        message = row.get("reason") or row.get("statusMessage") or info.meaning
        return DeliveryResult(delivery_id=p.delivery_id, status=c.status, channel=c.channel,
                              result_code=str(code) if code is not None else None,
                              result_message=scrub_numbers(str(message)) if message else None, raw=raw)

    def _list(self, params: Mapping[str, str], *, since: datetime | None) -> list[dict[str, Any]]:
        """Every stored message matching ``params`` (pages followed by ``startKey``/``nextKey``)."""
        query: dict[str, str] = {**params, "limit": str(LIST_LIMIT)}
        if since is not None:
            query["startDate"] = iso(since)
            query["endDate"] = iso(datetime.now(UTC) + timedelta(minutes=1))
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            q = dict(query)
            payload = self._with_retries(lambda q=q: self._request("GET", LIST_PATH, params=q), what="list messages")
            page = payload.get("messageList") or {}
            for message_id, row in (page.items() if isinstance(page, dict) else enumerate(page)):
                mid = str(row.get("messageId") or message_id)
                if mid not in seen:
                    seen.add(mid)
                    rows.append(row)
            next_key = payload.get("nextKey")
            if not next_key or not page:
                return rows
            query["startKey"] = str(next_key)

    # ---- HTTP + retry plumbing --------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One signed attempt. Raises :class:`_Retryable` when nothing was taken and a repeat may work,
        :class:`ProviderError` otherwise (``unknown_outcome`` when the request may have been taken)."""
        headers = {"Authorization": sign(self.api_key, self._api_secret)}
        try:
            response = self._client.request(method, self.base_url + path, headers=headers, **kwargs)
        except httpx.ConnectError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        except httpx.TransportError as exc:  # timeouts, a dropped connection: may have been taken
            raise ProviderError(f"Solapi {method} {path}: {type(exc).__name__}: no answer within "
                                f"{self.timeout:g}s (outcome unknown: checked under its key before any re-send)",
                                retryable=True, unknown_outcome=method == "POST") from exc
        status = response.status_code
        text = scrub_numbers(response.text)[:300]
        if status in NOT_TAKEN_HTTP:
            log.warning("solapi: HTTP %s on %s %s (Retry-After %s): %s", status, method, path,
                        response.headers.get("Retry-After"), text)
            raise _Retryable(f"HTTP {status}", retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if status in MAYBE_TAKEN_HTTP:
            log.warning("solapi: HTTP %s on %s %s: %s", status, method, path, text)
            raise ProviderError(f"Solapi {method} {path}: HTTP {status} (outcome unknown)", retryable=True,
                                unknown_outcome=method == "POST")
        try:
            payload = response.json()
        except ValueError as exc:
            raise ProviderError(f"Solapi answered HTTP {status} with a non-JSON body: {text!r}",
                                retryable=status >= 500, unknown_outcome=method == "POST" and status >= 500) from exc
        if status >= 400 or not isinstance(payload, dict):
            raise self._api_error(status, payload)
        return payload

    def _api_error(self, status: int, payload: Any) -> Exception:
        error_code = str(payload.get("errorCode")) if isinstance(payload, dict) else "?"
        message = str(payload.get("errorMessage")) if isinstance(payload, dict) else str(payload)
        if status == 403 and error_code == "SignatureDuplicated":
            # Our salt collided (or a proxy replayed us): nothing was taken; a fresh signature fixes it.
            return _Retryable("HTTP 403 SignatureDuplicated")
        answer = scrub_numbers(json.dumps(payload, ensure_ascii=False, default=str))[:500]
        log.error("solapi: request refused: HTTP %s %s (%s); answer: %s%s", status, error_code, message, answer,
                  " — check this machine's clock" if error_code == "InvalidDate" else "")
        return ProviderError(f"Solapi HTTP {status} {error_code}: {scrub_numbers(message)}", retryable=False)

    def _with_retries(self, fn: Callable[[], dict[str, Any]], *, what: str) -> dict[str, Any]:
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            wait=_wait(self.retry_initial, self.retry_max_wait),
            stop=stop_after_attempt(max(self.retry_attempts, 1)) | stop_before_delay(self.retry_max_seconds),
            before_sleep=lambda s: log.info("solapi: %s attempt %d failed (%s); retrying in %.2fs", what,
                                            s.attempt_number, s.outcome.exception() if s.outcome else "?",
                                            s.upcoming_sleep),
            reraise=True,
            sleep=time.sleep,
        )
        try:
            return retrying(fn)
        except _Retryable as exc:
            raise ProviderError(f"Solapi {what} failed after retries: {exc}", retryable=True,
                                retry_after=exc.retry_after) from exc

