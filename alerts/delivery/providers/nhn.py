"""NHN Cloud KakaoTalk Bizmessage AlimTalk API v2.3 adapter.

What makes it safe to retry: every attempt of one batch carries the caller's idempotency key in
``X-NC-API-IDEMPOTENCY-KEY`` and also as ``senderGroupingKey``. A read timeout leaves the outcome
unknown, so the batch is sent again with the same key; if the first attempt did go through NHN answers
-1005 ("key reused") and sends nothing, and the adapter then lists the messages whose
``senderGroupingKey`` is that key to learn what was accepted. Nothing is ever sent twice and nothing is
reported accepted without NHN saying so.

Retries happen inside :meth:`NhnProvider.send` (tenacity): on transport errors (timeouts, refused or
dropped connections), HTTP 429/500/502/503/504 and API code -9999, with exponential backoff + jitter
that never waits less than the provider's ``Retry-After``; bounded by ``retry_attempts`` and
``retry_max_seconds`` (a wait that would cross the time budget is not started: the error goes to the
caller with ``retry_after`` so the outbox can schedule the retry itself).

Phone numbers are masked in every log line (``010-****-5678``).
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from types import MappingProxyType
from typing import Any, ClassVar

import httpx
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)

from alerts.delivery.providers import codes
from alerts.delivery.providers.base import (
    DeliveryResult,
    Fallback,
    OutgoingMessage,
    PendingDelivery,
    PreparedSend,
    Provider,
    ProviderError,
    SendOutcome,
)
from alerts.delivery.providers.listed_row import ListedRow

log = logging.getLogger(__name__)

KST = timezone(timedelta(hours=9))
CONTENT_TYPE = "application/json;charset=UTF-8"
API_PREFIX = "/alimtalk/v2.3/appkeys"
PAGE_SIZE = 1000
#: How far back the -1005 reconciliation looks for the first attempt (NHN's key window is 10 minutes).
RECONCILE_WINDOW = timedelta(minutes=15)


def mask_phone(number: str | None) -> str:
    """``01012345678`` -> ``010-****-5678``; short or odd input keeps only its last two characters."""
    if not number:
        return "<none>"
    digits = number if number.isdigit() else "".join(c for c in number if c.isdigit())
    if len(digits) >= 9:
        return f"{digits[:3]}-****-{digits[-4:]}"
    return "*" * max(len(number) - 2, 0) + number[-2:]


_DIGIT_RUN = re.compile(r"(?<!\d)\d{9,15}(?!\d)")


def scrub_numbers(text: str) -> str:
    """Mask every phone-number-like digit run in provider text before it is logged or raised."""
    return _DIGIT_RUN.sub(lambda m: mask_phone(m.group(0)), text)


class _Retryable(Exception):
    """An attempt failed in a way the same request (same key) may fix. Internal to the retry loop."""

    def __init__(self, message: str, retry_after: float | None = None, unknown_outcome: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.unknown_outcome = unknown_outcome


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


class _WaitAtLeastRetryAfter:
    """Exponential backoff with jitter, but never shorter than the server's Retry-After."""

    def __init__(self, initial: float, maximum: float) -> None:
        # wait_exponential + wait_random rather than wait_exponential_jitter, whose parameter names
        # changed within tenacity 9.x.
        self._backoff = wait_exponential(multiplier=initial, max=maximum) + wait_random(0, initial)

    def __call__(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, retry_after) if retry_after is not None else backoff


def _truthy(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class NhnProvider(Provider):
    """Settings (strings resolved from the environment by the caller): ``base_url``, ``app_key``,
    ``secret_key``, ``sender_key``, optional ``resend_send_no`` (registered fallback sender number),
    ``timeout_seconds`` (10), ``fallback`` (True), ``retry_attempts`` (5), ``retry_max_seconds`` (60),
    ``retry_initial_seconds`` (0.5), ``retry_max_wait_seconds`` (30). Unknown keys are ignored."""

    kind: ClassVar[str] = "nhn"
    max_batch: ClassVar[int] = 1000

    def __init__(self, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(settings)
        missing = [k for k in ("base_url", "app_key", "secret_key", "sender_key") if not settings.get(k)]
        if missing:
            raise ValueError(f"nhn provider settings: missing {', '.join(missing)}")
        self.base_url = str(settings["base_url"]).rstrip("/")
        self.app_key = str(settings["app_key"])
        self.sender_key = str(settings["sender_key"])
        self.resend_send_no: str | None = settings.get("resend_send_no") or None
        self.fallback_enabled = _truthy(settings.get("fallback"), True)
        self.timeout = float(settings.get("timeout_seconds", 10))
        self.retry_attempts = int(settings.get("retry_attempts", 5))
        self.retry_max_seconds = float(settings.get("retry_max_seconds", 60))
        self.retry_initial = float(settings.get("retry_initial_seconds", 0.5))
        self.retry_max_wait = float(settings.get("retry_max_wait_seconds", 30))
        self._client = httpx.Client(
            timeout=self.timeout,
            transport=transport,
            headers={"X-Secret-Key": str(settings["secret_key"]), "Content-Type": CONTENT_TYPE},
        )
        #: delivery_id -> fallback type we asked for (the list API does not echo it back).
        self._resend_types: dict[int, str] = {}

    @property
    def _messages_url(self) -> str:
        return f"{self.base_url}{API_PREFIX}/{self.app_key}/messages"

    def close(self) -> None:
        self._client.close()

    # ---- send -------------------------------------------------------------------------------------

    def build_body(self, batch: Sequence[OutgoingMessage], sender_grouping_key: str) -> dict[str, Any]:
        """The JSON body NHN expects for ``batch`` (public so the request shape can be inspected)."""
        self.check_batch(batch)
        recipients = []
        # one alert's recipients share their parameters and their fallback: each is built (and encoded) as one
        # object shared by every entry, not copied per recipient
        resends: dict[int, dict[str, Any]] = {}
        for m in batch:
            entry: dict[str, Any] = {
                "recipientNo": m.recipient_no,
                "templateParameter": m.parameters if type(m.parameters) is dict else dict(m.parameters),
                "recipientGroupingKey": str(m.delivery_id),
            }
            if self.fallback_enabled and m.fallback is not None:
                resend = resends.get(id(m.fallback))
                if resend is None:
                    resend = resends[id(m.fallback)] = self._resend(m.fallback)
                entry["resendParameter"] = resend
            recipients.append(entry)
        return {
            "senderKey": self.sender_key,
            "templateCode": batch[0].template_code,
            "senderGroupingKey": sender_grouping_key,
            "recipientList": recipients,
        }

    def _resend(self, fallback: Fallback) -> dict[str, Any]:
        resend: dict[str, Any] = {"isResend": True, "resendType": fallback.kind, "resendContent": fallback.content}
        if fallback.kind == "LMS" and fallback.title:
            resend["resendTitle"] = fallback.title
        if self.resend_send_no:
            resend["resendSendNo"] = self.resend_send_no
        return resend

    def send(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str) -> list[SendOutcome]:
        return self.prepare(batch, idempotency_key=idempotency_key).send()

    def prepare(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str) -> PreparedSend:
        """The body built and encoded now, once for every attempt; the request made by ``send()`` on the
        result, which records when each attempt's answer began to arrive (see :class:`PreparedSend`)."""
        body = self.build_body(batch, idempotency_key)
        content = orjson.dumps(body)  # encoded once for every attempt (orjson: several times json's speed)
        template_code = body["templateCode"]
        return PreparedSend(batch, idempotency_key,
                            lambda prepared: self._send_prepared(prepared, template_code, content))

    def _send_prepared(self, prepared: PreparedSend, template_code: str, content: bytes) -> list[SendOutcome]:
        batch, idempotency_key = prepared.batch, prepared.idempotency_key
        for m in batch:
            if self.fallback_enabled and m.fallback is not None:
                self._resend_types[m.delivery_id] = m.fallback.kind
        headers = {"X-NC-API-IDEMPOTENCY-KEY": idempotency_key}

        def attempt() -> dict[str, Any]:
            return self._request("POST", self._messages_url, content=content, headers=headers, answered=prepared)

        payload = self._with_retries(attempt, what=f"send {template_code} x{len(batch)}")
        header = payload.get("header") or {}
        code = _int(header.get("resultCode"))
        message = payload.get("message") or {}
        if code == codes.API_IDEMPOTENCY_REUSED:
            log.info("nhn: idempotency key %s already used: reconciling by senderGroupingKey", idempotency_key)
            return self._reconcile(batch, idempotency_key)
        if code == codes.API_SUCCESS or (code == codes.API_ALL_RECIPIENTS_FAILED and message.get("sendResults")):
            return self._outcomes(batch, message)
        raise self._api_error(code, header, payload)

    def _outcomes(self, batch: Sequence[OutgoingMessage], message: Mapping[str, Any]) -> list[SendOutcome]:
        request_id = message.get("requestId")
        listed: list[dict[str, Any]] = message.get("sendResults") or []
        # NHN answers in the order of the request: the recipient at the same place is checked first (by its
        # grouping key), and the two look-up tables are built only for an answer in another order
        by_key: dict[str, dict[str, Any]] | None = None
        by_seq: dict[int | None, dict[str, Any]] = {}
        outcomes = []
        for seq, m in enumerate(batch, start=1):
            key = str(m.delivery_id)
            r = listed[seq - 1] if seq <= len(listed) else None
            if r is None or r.get("recipientGroupingKey") != key:
                if by_key is None:
                    by_key = {str(x.get("recipientGroupingKey")): x for x in listed}
                    by_seq = {_int(x.get("recipientSeq")): x for x in listed}
                r = by_key.get(key) or by_seq.get(seq)
            if r is None:
                # Unknown whether it was accepted: no outcome. The dispatcher keeps the row under this key and
                # sends it again later, which NHN refuses (-1005) if it had arrived, and we then look it up.
                log.warning("nhn: delivery %s missing from NHN's answer; will be checked again under its key",
                            m.delivery_id)
                continue
            rc = _seq(r.get("resultCode"))
            if rc == codes.API_SUCCESS:
                outcomes.append(
                    SendOutcome(
                        m.delivery_id,
                        True,
                        request_id,
                        _seq(r.get("recipientSeq")),
                        "0",
                        r.get("resultMessage"),
                    )
                )
            else:
                entry = codes.api_code(rc)
                log.warning(
                    "nhn: recipient %s rejected: %s %s (%s)",
                    mask_phone(m.recipient_no),
                    rc,
                    r.get("resultMessage"),
                    entry.meaning,
                )
                outcomes.append(
                    SendOutcome(
                        m.delivery_id,
                        False,
                        request_id,
                        _int(r.get("recipientSeq")),
                        str(rc),
                        r.get("resultMessage") or entry.meaning,
                        entry.retryable,
                    )
                )
        return outcomes

    def find_by_sender_grouping_key(self, key: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """All messages NHN holds for ``senderGroupingKey == key`` sent since ``since`` (default: the
        last 15 minutes; the list API needs a date range besides the key; dates are KST)."""
        now = datetime.now(KST)
        start = (since.astimezone(KST) - timedelta(minutes=1)) if since else now - RECONCILE_WINDOW
        params = {
            "senderGroupingKey": key,
            "startRequestDate": start.strftime("%Y-%m-%d %H:%M"),
            "endRequestDate": (now + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M"),
        }
        return self._list_all(params)

    def lookup(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str,
               sent_after: datetime) -> list[SendOutcome] | None:
        rows = self.find_by_sender_grouping_key(idempotency_key, since=sent_after)
        if not rows:
            return []
        return self._outcomes_from_rows(batch, rows, settled=True)

    def _reconcile(self, batch: Sequence[OutgoingMessage], key: str) -> list[SendOutcome]:
        """NHN says the key was used (-1005): something arrived. Whatever goes wrong from here, the outcome is
        unknown, so the batch must keep its key (a new key could send it a second time)."""
        try:
            rows = self.find_by_sender_grouping_key(key)
        except ProviderError as exc:
            raise ProviderError(f"NHN -1005 for key {key}, and its messages cannot be listed yet: {exc}",
                                retryable=True, retry_after=exc.retry_after, unknown_outcome=True) from exc
        if not rows:
            raise ProviderError(
                f"NHN -1005: idempotency key {key} was used but no message carries it yet; retry later",
                retryable=True, unknown_outcome=True,
            )
        return self._outcomes_from_rows(batch, rows, settled=False)

    def _outcomes_from_rows(self, batch: Sequence[OutgoingMessage], rows: list[dict[str, Any]], *,
                            settled: bool) -> list[SendOutcome]:
        """Outcomes from NHN's message list. A recipient it does not list is unknown right after a -1005 (the
        list lags: no outcome, checked again under the key) and rejected once the key is long settled."""
        by_key = {str(r.get("recipientGroupingKey")): r for r in rows}
        outcomes = []
        for m in batch:
            r = by_key.get(str(m.delivery_id))
            if r is None and not settled:
                continue
            if r is None:
                # Long after the attempt NHN holds no message for this recipient: it was rejected then.
                outcomes.append(
                    SendOutcome(
                        m.delivery_id,
                        False,
                        None,
                        None,
                        str(codes.API_IDEMPOTENCY_REUSED),
                        "not found after idempotent replay (rejected by the first attempt)",
                        False,
                    )
                )
            else:
                outcomes.append(
                    SendOutcome(
                        m.delivery_id,
                        True,
                        r.get("requestId"),
                        _int(r.get("recipientSeq")),
                        "0",
                        "accepted (reconciled after -1005)",
                    )
                )
        return outcomes

    # ---- results ----------------------------------------------------------------------------------

    def poll_results(self, pending: Sequence[PendingDelivery]) -> list[DeliveryResult]:
        groups: dict[str, list[PendingDelivery]] = {}
        for p in pending:
            groups.setdefault(p.request_id, []).append(p)
        results: list[DeliveryResult] = []
        for request_id, items in groups.items():
            try:
                rows = self._list_all({"requestId": request_id})
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                log.warning("nhn: results for request %s unavailable this round: %s", request_id, exc)
                continue
            by_seq = {_seq(r.get("recipientSeq")): r for r in rows}
            by_key: dict[str, dict[str, Any]] | None = None  # built only when a recipient's seq is not listed
            for p in items:
                row = by_seq.get(p.recipient_seq) if p.recipient_seq is not None else None
                if row is None:
                    if by_key is None:
                        by_key = {str(r.get("recipientGroupingKey")): r for r in rows}
                    row = by_key.get(str(p.delivery_id))
                    if row is None:
                        continue
                result = self._result(p, row)
                if result.status != "pending":
                    self._resend_types.pop(p.delivery_id, None)
                    results.append(result)
        return results

    def _result(self, p: PendingDelivery, row: Mapping[str, Any]) -> DeliveryResult:
        """One listed message -> its result. What it says is read once per kind of row (``_reading``): a page
        of a thousand results holds a handful of kinds; the row itself is only copied (numbers masked)."""
        get = row.get
        reading = _reading(get("messageStatus"), get("resultCode"), get("resendStatus"),
                           self._resend_types.get(p.delivery_id), get("resultCodeName"), get("resendStatusName"))
        c = reading.classification
        if c.category == "unknown":
            log.warning("nhn: unknown delivery code %s for delivery %s", get("resultCode"), p.delivery_id)
        if c.operator_alert:
            log.error(
                "nhn: delivery %s failed with %s (%s): template/sender configuration needs attention",
                p.delivery_id,
                get("resultCode"),
                get("resultCodeName"),
            )
        # the listed row itself, its text hidden and its number masked when read (not a copy per result)
        raw = ListedRow(row, hidden=_HIDDEN, masked=_MASKED, mask=mask_phone, extra=reading.extra)
        return DeliveryResult(p.delivery_id, c.status, c.channel, reading.result_code, reading.message, raw)

    def _list_all(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            query = {**params, "pageNum": str(page), "pageSize": str(PAGE_SIZE)}

            def attempt(q: Mapping[str, str] = query) -> dict[str, Any]:
                return self._request("GET", self._messages_url, params=q)

            payload = self._with_retries(attempt, what="list messages")
            header = payload.get("header") or {}
            code = _int(header.get("resultCode"))
            if code != codes.API_SUCCESS:
                raise self._api_error(code, header, payload)
            body = payload.get("messageSearchResultResponse") or {}
            batch = body.get("messages") or []
            rows.extend(batch)
            total = _int(body.get("totalCount")) or 0
            if not batch or len(rows) >= total:
                return rows
            page += 1

    # ---- HTTP + retry plumbing --------------------------------------------------------------------

    def _request(self, method: str, url: str, *, answered: PreparedSend | None = None, **kwargs: Any) -> dict[str, Any]:
        """One attempt. Raises :class:`_Retryable` for what a retry with the same key may fix,
        :class:`ProviderError` for what it cannot; returns the parsed JSON otherwise. With ``answered``, the
        moment the answer's status line and headers arrive is recorded on it (its body is read after)."""
        try:
            if answered is None:
                response = self._client.request(method, url, **kwargs)
            else:
                response = self._answered_request(method, url, answered, **kwargs)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"{type(exc).__name__}: no answer within {self.timeout:g}s", unknown_outcome=True) from exc
        except httpx.TransportError as exc:
            unknown = not isinstance(exc, httpx.ConnectError)
            raise _Retryable(f"{type(exc).__name__}: {exc}", unknown_outcome=unknown) from exc
        status = response.status_code
        if status in codes.RETRYABLE_HTTP_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            log.warning(
                "nhn: HTTP %s on %s (Retry-After %s): %s",
                status,
                method,
                response.headers.get("Retry-After"),
                scrub_numbers(response.text)[:300],
            )
            raise _Retryable(f"HTTP {status}", retry_after=retry_after)
        try:
            payload = orjson.loads(response.content)
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            raise ProviderError(
                f"NHN answered HTTP {status} with a non-JSON body: {scrub_numbers(response.text)[:200]!r}",
                retryable=status >= 500,
            ) from exc
        if not isinstance(payload, dict) or "header" not in payload:
            raise ProviderError(
                f"NHN answered HTTP {status} without a header: {scrub_numbers(str(payload))[:200]}",
                retryable=status >= 500,
            )
        if _int((payload.get("header") or {}).get("resultCode")) == -9999:
            raise _Retryable("NHN -9999 system error")
        return payload

    def _answered_request(self, method: str, url: str, answered: PreparedSend, **kwargs: Any) -> httpx.Response:
        """The request, its answer's arrival timed before its body is read: the provider answered only after the
        request arrived, so the send window may stop counting it as in flight from then (not after our reading
        and parsing of the body). An attempt starting clears the previous attempt's time."""
        answered.answered_at = None
        response = self._client.send(self._client.build_request(method, url, **kwargs), stream=True)
        try:
            answered.answered_at = time.monotonic()
            response.read()
        finally:
            response.close()
        return response

    def _with_retries(self, fn: Any, *, what: str) -> dict[str, Any]:
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            wait=_WaitAtLeastRetryAfter(self.retry_initial, self.retry_max_wait),
            stop=stop_after_attempt(max(self.retry_attempts, 1)) | stop_before_delay(self.retry_max_seconds),
            before_sleep=lambda s: log.info(
                "nhn: %s attempt %d failed (%s); retrying in %.2fs",
                what,
                s.attempt_number,
                s.outcome.exception() if s.outcome else "?",
                s.upcoming_sleep,
            ),
            reraise=True,
            sleep=time.sleep,
        )
        try:
            return retrying(fn)
        except _Retryable as exc:
            hint = " (outcome unknown: retry with the same idempotency key)" if exc.unknown_outcome else ""
            raise ProviderError(
                f"NHN {what} failed after retries: {exc}{hint}", retryable=True, retry_after=exc.retry_after,
                unknown_outcome=exc.unknown_outcome,
            ) from exc

    def _api_error(self, code: int | None, header: Mapping[str, Any], payload: Mapping[str, Any]) -> ProviderError:
        entry = codes.api_code(code if code is not None else -9999)
        answer = scrub_numbers(json.dumps(payload, ensure_ascii=False, default=str))[:1000]
        log.error(
            "nhn: request refused: resultCode=%s (%s, retryable=%s); answer: %s",
            code,
            entry.meaning,
            entry.retryable,
            answer,
        )
        return ProviderError(
            f"NHN resultCode {code}: {header.get('resultMessage') or entry.meaning}",
            retryable=entry.retryable,
        )


@dataclass(frozen=True, slots=True)
class _Reading:
    """A results page holds a handful of distinct kinds of row (status, code, resend status and type, names):
    each is classified once."""

    classification: codes.Classification
    result_code: str | None
    message: str | None
    #: What a result's ``raw`` adds to the listed row (shared, read-only).
    extra: Mapping[str, Any]


#: A listed row's keys a result's ``raw`` leaves out (the message text) and masks (the number).
_HIDDEN = frozenset({"content"})
_MASKED = frozenset({"recipientNo"})


@lru_cache(maxsize=1024)
def _reading(message_status: str | None, result_code: Any, resend_status: str | None, resend_type: str | None,
             code_name: str | None, resend_name: str | None) -> _Reading:
    """What one kind of listed row says (a pure function of these fields, so cached)."""
    code = str(result_code) if result_code is not None else None
    c = codes.classify(message_status, code, resend_status, resend_type)
    message = code_name or resend_name
    if c.status == "fallback_sent" and c.channel is None:
        message = f"{message or ''} (fallback type unknown to this process)".strip()
    extra = MappingProxyType({"category": c.category, "operatorAlert": c.operator_alert})
    return _Reading(c, code, message, extra)


def _seq(value: Any) -> int | None:
    """A listed ``recipientSeq`` (an integer in NHN's answers; text is read too)."""
    return value if type(value) is int else _int(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
