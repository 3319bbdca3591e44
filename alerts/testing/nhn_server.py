"""A loopback HTTP server that speaks NHN Cloud's AlimTalk API v2.3 (send, message list, sender, templates).

Why it exists: the adapter's claims (no double send after a timeout, Retry-After honoured, results
mapped right) can only be proven against something that validates requests the way NHN documents
(TOAST-DOCS/Alimtalk ``ko/alimtalk-api-guide.md``, ``ko/error-code.md``) and that can misbehave on
purpose. It refuses what NHN refuses, with NHN's result codes, so a test cannot pass by sending junk.

Documented behaviour reproduced: appkey in the path (-1000), ``X-Secret-Key`` (-1001), content type
``application/json;charset=UTF-8`` (-9996), field lengths (-2000 too long, -2001 blank, -2005 list
size), sender key (-2017), template exists (-3003) and all ``#{var}`` supplied (-3004), fallback
requested without a configured fallback sender (-2502), idempotency key reused within 10 minutes
(-1005, nothing sent), invalid recipient number per recipient (-5000), all recipients failed (-1031).
Errors are HTTP 200 with ``header.isSuccessful`` false, as NHN answers.

Choices where the docs are silent (documented so tests do not over-trust them): an idempotency key is
recorded only when a request was accepted (a refused request does not burn its key); a message not yet
final is listed with ``messageStatus`` ``READY`` and no ``resultCode``; the list call requires
``requestId`` or a ``startRequestDate``/``endRequestDate`` pair (else -2001); dates are KST.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

KST = timezone(timedelta(hours=9))
CONTENT_TYPE = "application/json;charset=UTF-8"
_PATH = re.compile(r"^/alimtalk/v2\.3/appkeys/(?P<appkey>[^/]+)/messages$")
#: Sender profile lookup and template list (NHN "Sender API v2.3" and "List Templates" of the AlimTalk v2.3
#: guide): used by ``alimcast provider check``, which reads and never sends.
_SENDER_PATH = re.compile(r"^/alimtalk/v2\.3/appkeys/(?P<appkey>[^/]+)/senders/(?P<sender>[^/]+)$")
_TEMPLATES_PATH = re.compile(r"^/alimtalk/v2\.3/appkeys/(?P<appkey>[^/]+)/senders/(?P<sender>[^/]+)/templates$")
_VAR = re.compile(r"#\{([^}]+)\}")
_DATE_FMT = "%Y-%m-%d %H:%M"

_MESSAGES = {
    0: "SUCCESS",
    4: "Parameter validation failed.",
    -1000: "Invalid appKey.",
    -1001: "Invalid secretKey.",
    -1005: "The same 'X-NC-API-IDEMPOTENCY-KEY' was used within the last 10 minute.",
    -1031: "All recipients failed.",
    -2000: "The '{}' must be at less than or equal to {}.",
    -2001: "The '{}' must not be blank.",
    -2005: "The '{}' must be less than or equal to {}.",
    -2017: "Not exist plus friend.",
    -2502: "Please set up plus-friend resend setting.",
    -3002: "Field is not valid.",
    -3003: "Template does not exist.",
    -3004: "Please check template parameter.",
    -5000: "Invalid recipient number.",
    -9996: "Content-Type must be application/json;charset=UTF-8.",
}


@dataclass(slots=True)
class RecipientBehaviour:
    """What Kakao does with one recipient number.

    ``code``: the Kakao delivery result code (``1000`` delivered, ``3019`` not a KakaoTalk user, ...).
    ``fallback_ok``: when AlimTalk fails and fallback was requested, whether the SMS/LMS goes out
    (RSC04) or fails (RSC05). ``reject``: refuse the number at send time with -5000. ``refuse_times``:
    refuse it that many times with -9999 (NHN's retryable system error, per recipient), then accept it.
    """

    code: str = "1000"
    fallback_ok: bool = True
    reject: bool = False
    refuse_times: int = 0


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    #: header.resultCode of the answer, or None for injected HTTP failures.
    result_code: int | None = None
    http_status: int = 200
    received_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class StoredMessage:
    request_id: str
    recipient_seq: int
    recipient_no: str
    template_code: str
    content: str
    sender_grouping_key: str | None
    recipient_grouping_key: str | None
    resend: dict[str, Any] | None
    request_date: datetime
    behaviour: RecipientBehaviour
    polls_seen: int = 0


class _ApiError(Exception):
    def __init__(self, code: int, *args: object) -> None:
        message = _MESSAGES.get(code, "error")
        if args:
            message = message.format(*args)
        super().__init__(message)
        self.code = code
        self.message = message


class NhnTestServer:
    """Context manager: ``with NhnTestServer(templates={...}) as srv: srv.base_url``.

    Scenarios: ``behaviours`` maps recipient numbers to :class:`RecipientBehaviour` (or a bare delivery
    code string); :meth:`fail_next` injects HTTP failures before any processing (nothing sent, key not
    consumed); :meth:`refuse_next` answers with an API result code (nothing sent); :meth:`delay_next`
    processes and stores a send, then waits before answering (the client times out although the
    message went out); ``results_after_polls`` hides results for that many list polls of each message.

    ``account_limit_per_second``: the account's limit, counted as a provider counts it, on arrival and per
    rolling second: a send whose recipients would make any second since one second ago exceed it is refused
    with HTTP 429 (nothing sent). :meth:`max_recipients_per_second` reports the worst rolling second of what
    was accepted, whatever the limit. :meth:`stall_next` holds a request *before* processing it (it arrived,
    nothing is sent yet), to catch a client dying with a request in flight.
    """

    def __init__(
        self,
        *,
        app_key: str = "test-appkey",
        secret_key: str = "test-secret",
        sender_key: str = "s" * 40,
        templates: Mapping[str, str] | None = None,
        fallback_sender: str | None = "0212345678",
        behaviours: Mapping[str, RecipientBehaviour | str] | None = None,
        default_behaviour: RecipientBehaviour | None = None,
        results_after_polls: int = 0,
        idempotency_window_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        account_limit_per_second: int | None = None,
        template_status: Mapping[str, str] | None = None,
        sender_status: Mapping[str, Any] | None = None,
    ) -> None:
        self.account_limit_per_second = account_limit_per_second
        #: (arrival time, recipients) of every send request counted against the account.
        self._arrivals: list[tuple[float, int]] = []
        self.rate_refusals = 0
        self._stalls: list[float] = []
        #: Set when a stalled request has arrived (tests wait on it instead of sleeping).
        self.stalled = threading.Event()
        self.app_key = app_key
        #: templateCode -> NHN template status (TSC01 request, TSC02 inspecting, TSC03 approved, TSC04
        #: rejected); a template not named here is approved.
        self.template_status = dict(template_status or {})
        #: Overrides of the sender profile fields (e.g. {"kakaoProfileStatus": "B", "block": True}).
        self.sender_status = dict(sender_status or {})
        self.secret_key = secret_key
        self.sender_key = sender_key
        self.templates = dict(templates or {})
        self.fallback_sender = fallback_sender
        self.behaviours: dict[str, RecipientBehaviour] = {
            no: (b if isinstance(b, RecipientBehaviour) else RecipientBehaviour(code=b))
            for no, b in (behaviours or {}).items()
        }
        self.default_behaviour = default_behaviour or RecipientBehaviour()
        self.results_after_polls = results_after_polls
        self.idempotency_window_seconds = idempotency_window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._messages: list[StoredMessage] = []
        self._keys: dict[str, float] = {}
        self._failures: list[tuple[int, float | None]] = []
        self._delays: list[float] = []
        self._refusals: list[tuple[int, str]] = []
        self._lagging_lists = 0
        self._refusals_left: dict[str, int] = {}
        self._request_counter = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> NhnTestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="nhn-test-server",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ---- scenario controls ------------------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 429, retry_after: float | None = None) -> None:
        """Answer the next ``count`` send requests with HTTP ``status`` (and ``Retry-After`` seconds)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def refuse_next(self, count: int, result_code: int, message: str = "injected") -> None:
        """Answer the next ``count`` send requests with HTTP 200 and ``header.resultCode`` =
        ``result_code`` (e.g. -9999 system error, -1017 daily volume), sending nothing."""
        with self._lock:
            self._refusals.extend([(result_code, message)] * count)

    def delay_next(self, count: int, seconds: float) -> None:
        """Accept and store the next ``count`` sends, then wait ``seconds`` before answering."""
        with self._lock:
            self._delays.extend([seconds] * count)

    def stall_next(self, count: int, seconds: float) -> None:
        """Hold the next ``count`` sends ``seconds`` before processing them (then process them as usual)."""
        with self._lock:
            self._stalls.extend([seconds] * count)

    def _take_stall(self) -> float:
        with self._lock:
            return self._stalls.pop(0) if self._stalls else 0.0

    def _admit(self, recipients: int) -> bool:
        """Count a send's recipients on arrival; False (refuse with 429) when it would exceed the limit."""
        now = time.monotonic()
        with self._lock:
            if self.account_limit_per_second is not None:
                recent = sum(n for t, n in self._arrivals if t > now - 1.0)
                if recent + recipients > self.account_limit_per_second:
                    self.rate_refusals += 1
                    return False
            self._arrivals.append((now, recipients))
            return True

    def max_recipients_per_second(self) -> int:
        """The most recipients that arrived (and were admitted) within any rolling second (half-open)."""
        with self._lock:
            arrivals = sorted(self._arrivals)
        best, total, start = 0, 0, 0
        for t, n in arrivals:
            total += n
            while arrivals[start][0] <= t - 1.0:
                total -= arrivals[start][1]
                start += 1
            best = max(best, total)
        return best

    def arrivals(self) -> list[tuple[float, int]]:
        with self._lock:
            return list(self._arrivals)

    def lag_lists(self, count: int) -> None:
        """The next ``count`` message-list queries find nothing yet (NHN's list trails its sends); 0 ends it."""
        with self._lock:
            self._lagging_lists = count

    # ---- inspection -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[StoredMessage]:
        """Every recipient message actually accepted for sending."""
        with self._lock:
            return list(self._messages)

    def send_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    def sends_to(self, recipient_no: str) -> int:
        """How many accepted messages went to ``recipient_no``: the double-send detector."""
        return sum(1 for m in self.messages if m.recipient_no == recipient_no)

    # ---- request handling (called from handler threads) ------------------------------------------

    def billed(self) -> dict[str, int]:
        """What the provider bills, per channel: AlimTalk for every message Kakao delivered or sent without
        receipt (3005), SMS or LMS for every fallback that went out (the requested type, else by EUC-KR
        length as NHN chooses). Reconciliation tests compare the ledger with this, to the won."""
        billed = {"alimtalk": 0, "sms": 0, "lms": 0}
        with self._lock:
            for m in self._messages:
                code = m.behaviour.code
                if code in ("1000", "3005"):
                    billed["alimtalk"] += 1
                elif m.resend and m.behaviour.fallback_ok:
                    kind = m.resend.get("resendType")
                    if kind not in ("SMS", "LMS"):
                        text = m.resend.get("resendContent") or m.content
                        kind = "SMS" if len(text.encode("cp949", "replace")) <= 90 else "LMS"
                    billed[kind.lower()] += 1
        return billed

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)

    def _take_failure(self) -> tuple[int, float | None] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _take_refusal(self) -> tuple[int, str] | None:
        with self._lock:
            return self._refusals.pop(0) if self._refusals else None

    def _take_delay(self) -> float:
        with self._lock:
            return self._delays.pop(0) if self._delays else 0.0

    def _check_auth(self, path: str, headers: Mapping[str, str]) -> None:
        m = _PATH.match(path)
        if m is None or m.group("appkey") != self.app_key:
            raise _ApiError(-1000)
        if headers.get("x-secret-key") != self.secret_key:
            raise _ApiError(-1001)

    def handle_lookup(self, path: str, headers: Mapping[str, str], query: Mapping[str, list[str]]) -> dict[str, Any]:
        """GET a sender profile or the template list, as NHN documents them (appkey in the path -1000,
        X-Secret-Key -1001, unknown sender key -2017)."""
        m = _SENDER_PATH.match(path) or _TEMPLATES_PATH.match(path)
        assert m is not None
        if m.group("appkey") != self.app_key:
            raise _ApiError(-1000)
        if headers.get("x-secret-key") != self.secret_key:
            raise _ApiError(-1001)
        if m.group("sender") != self.sender_key:
            raise _ApiError(-2017)
        if _SENDER_PATH.match(path):
            sender = {
                "plusFriendId": "@alimcast-test", "senderKey": self.sender_key, "categoryCode": "00100010001",
                "status": "YSC03", "statusName": "정상 등록", "kakaoStatus": "A", "kakaoStatusName": "정상",
                "kakaoProfileStatus": "A", "kakaoProfileStatusName": "활성화", "profileSpamLevel": "정상",
                "profileMessageSpamLevel": "정상",
                "alimtalk": {"resendAppKey": "sms-appkey" if self.fallback_sender else None,
                             "isResend": self.fallback_sender is not None, "resendSendNo": self.fallback_sender,
                             "dailyMaxCount": 0, "sentCount": 0},
                "dormant": False, "block": False, "createDate": "2026-01-05 10:00:00",
                "initialUserRestriction": False,
            }
            sender.update(self.sender_status)
            return {"header": _header(0), "sender": sender}
        wanted = (query.get("templateCode") or [None])[0]
        templates = [
            {"plusFriendId": "@alimcast-test", "senderKey": self.sender_key, "plusFriendType": "NORMAL",
             "templateCode": code, "kakaoTemplateCode": code, "templateName": code, "templateMessageType": "BA",
             "templateEmphasizeType": "NONE", "templateContent": text,
             "status": self.template_status.get(code, "TSC03"),
             "statusName": {"TSC01": "요청", "TSC02": "검수중", "TSC03": "승인", "TSC04": "반려"}.get(
                 self.template_status.get(code, "TSC03"), ""),
             "securityFlag": False, "categoryCode": "004001", "createDate": "2026-01-05 10:00:00",
             "updateDate": "2026-01-06 10:00:00", "buttons": [], "quickReplies": [], "comments": []}
            for code, text in self.templates.items() if wanted in (None, code)
        ]
        return {"header": _header(0), "templateListResponse": {"templates": templates, "totalCount": len(templates)}}

    def handle_send(self, headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
        ctype = headers.get("content-type", "").replace(" ", "").lower()
        if ctype != CONTENT_TYPE.lower():
            raise _ApiError(-9996)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _ApiError(-3002) from exc
        if not isinstance(body, dict):
            raise _ApiError(-3002)
        sender_key = _string(body, "senderKey", required=True, max_len=40)
        template_code = _string(body, "templateCode", required=True, max_len=20)
        sgk = _string(body, "senderGroupingKey", required=False, max_len=100)
        recipients = body.get("recipientList")
        if not isinstance(recipients, list) or not recipients:
            raise _ApiError(-2001, "recipientList")
        if len(recipients) > 1000:
            raise _ApiError(-2005, "recipientList", 1000)
        if sender_key != self.sender_key:
            raise _ApiError(-2017)
        template = self.templates.get(template_code)
        if template is None:
            raise _ApiError(-3003)
        needed = set(_VAR.findall(template))
        for r in recipients:
            if not isinstance(r, dict):
                raise _ApiError(4)
            no = _string(r, "recipientNo", required=True, max_len=15)
            assert no is not None
            _string(r, "recipientGroupingKey", required=False, max_len=100)
            params = r.get("templateParameter") or {}
            if not isinstance(params, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in params.items()
            ):
                raise _ApiError(4)
            if not needed <= set(params):
                raise _ApiError(-3004)
            resend = r.get("resendParameter")
            if resend is not None:
                if not isinstance(resend, dict):
                    raise _ApiError(4)
                if resend.get("resendType") not in (None, "SMS", "LMS"):
                    raise _ApiError(4)
                if resend.get("isResend") and self.fallback_sender is None:
                    raise _ApiError(-2502)
                _string(resend, "resendTitle", required=False, max_len=40 * 4)
        idem = headers.get("x-nc-api-idempotency-key")
        now = self._clock()
        with self._lock:
            if idem is not None:
                seen = self._keys.get(idem)
                if seen is not None and now - seen < self.idempotency_window_seconds:
                    raise _ApiError(-1005)
            self._request_counter += 1
            request_id = f"{datetime.now(KST):%Y%m%d%H%M%S}{self._request_counter:06d}"
            results: list[dict[str, Any]] = []
            accepted = 0
            for seq, r in enumerate(recipients, start=1):
                no = r["recipientNo"]
                behaviour = self.behaviours.get(no, self.default_behaviour)
                rgk = r.get("recipientGroupingKey")
                if behaviour.reject or not no.isdigit() or len(no) < 8:
                    results.append(_send_result(seq, no, -5000, rgk))
                    continue
                if self._refusals_left.get(no, behaviour.refuse_times) > 0:
                    self._refusals_left[no] = self._refusals_left.get(no, behaviour.refuse_times) - 1
                    results.append(_send_result(seq, no, -9999, rgk))
                    continue
                params = r.get("templateParameter") or {}
                content = _VAR.sub(lambda m, p=params: p.get(m.group(1), m.group(0)), template)
                resend = r.get("resendParameter")
                self._messages.append(
                    StoredMessage(
                        request_id=request_id,
                        recipient_seq=seq,
                        recipient_no=no,
                        template_code=template_code,
                        content=content,
                        sender_grouping_key=sgk,
                        recipient_grouping_key=rgk,
                        resend=resend if resend and resend.get("isResend") else None,
                        request_date=datetime.now(KST),
                        behaviour=behaviour,
                    )
                )
                accepted += 1
                results.append(_send_result(seq, no, 0, rgk))
            if accepted and idem is not None:
                self._keys[idem] = now
        code = 0 if accepted else -1031
        return {
            "header": _header(code),
            "message": {"requestId": request_id, "senderGroupingKey": sgk, "sendResults": results},
        }

    def handle_list(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        q = {k: v[0] for k, v in query.items() if v}
        with self._lock:
            lagging = self._lagging_lists > 0
            self._lagging_lists -= int(lagging)
        request_id = q.get("requestId")
        start, end = q.get("startRequestDate"), q.get("endRequestDate")
        if not request_id and not (start and end):
            raise _ApiError(-2001, "requestId")
        try:
            page_num = int(q.get("pageNum", "1"))
            page_size = int(q.get("pageSize", "15"))
        except ValueError as exc:
            raise _ApiError(4) from exc
        if page_size > 1000 or page_size < 1 or page_num < 1:
            raise _ApiError(-2005, "pageSize", 1000)
        try:
            start_dt = datetime.strptime(start, _DATE_FMT).replace(tzinfo=KST) if start else None
            end_dt = datetime.strptime(end, _DATE_FMT).replace(tzinfo=KST) if end else None
        except ValueError as exc:
            raise _ApiError(4) from exc
        with self._lock:
            selected = [
                m
                for m in ([] if lagging else self._messages)
                if (not request_id or m.request_id == request_id)
                and (start_dt is None or m.request_date >= start_dt)
                and (end_dt is None or m.request_date < end_dt + timedelta(minutes=1))
                and _eq(q.get("senderGroupingKey"), m.sender_grouping_key)
                and _eq(q.get("recipientGroupingKey"), m.recipient_grouping_key)
                and _eq(q.get("recipientNo"), m.recipient_no)
                and _eq(q.get("templateCode"), m.template_code)
            ]
            page = selected[(page_num - 1) * page_size : page_num * page_size]
            rows = []
            for m in page:
                m.polls_seen += 1
                rows.append(self._row(m))
            if q.get("messageStatus"):
                rows = [r for r in rows if r["messageStatus"] == q["messageStatus"]]
        return {
            "header": _header(0),
            "messageSearchResultResponse": {"messages": rows, "totalCount": len(selected)},
        }

    def _row(self, m: StoredMessage) -> dict[str, Any]:
        final = m.polls_seen > self.results_after_polls
        b = m.behaviour
        if not final:
            status, code, resend = "READY", None, "RSC02" if m.resend else "RSC01"
        else:
            code = b.code
            status = "COMPLETED" if code == "1000" else "FAILED"
            no_fallback = code in ("1000", "3005") or not m.resend
            resend = "RSC01" if no_fallback else ("RSC04" if b.fallback_ok else "RSC05")
        return {
            "requestId": m.request_id,
            "recipientSeq": m.recipient_seq,
            "plusFriendId": "@alimcast",
            "senderKey": self.sender_key,
            "templateCode": m.template_code,
            "recipientNo": m.recipient_no,
            "content": m.content,
            "requestDate": m.request_date.strftime("%Y-%m-%d %H:%M:%S.0"),
            "createDate": m.request_date.strftime("%Y-%m-%d %H:%M:%S.0"),
            "receiveDate": datetime.now(KST).strftime("%Y-%m-%d %H:%M:%S.0") if final else None,
            "resendStatus": resend,
            "resendStatusName": resend,
            "messageStatus": status,
            "resultCode": code,
            "resultCodeName": code,
            "createUser": None,
            "senderGroupingKey": m.sender_grouping_key,
            "recipientGroupingKey": m.recipient_grouping_key,
        }


def _eq(wanted: str | None, actual: str | None) -> bool:
    return wanted is None or wanted == actual


def _header(code: int, message: str | None = None) -> dict[str, Any]:
    return {
        "resultCode": code,
        "resultMessage": message or _MESSAGES.get(code, "error"),
        "isSuccessful": code == 0,
    }


def _send_result(seq: int, no: str, code: int, rgk: str | None) -> dict[str, Any]:
    return {
        "recipientSeq": seq,
        "recipientNo": no,
        "resultCode": code,
        "resultMessage": _MESSAGES.get(code, "error"),
        "recipientGroupingKey": rgk,
    }


def _string(obj: Mapping[str, Any], name: str, *, required: bool, max_len: int) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        if required:
            raise _ApiError(-2001, name)
        return None
    if not isinstance(value, str):
        raise _ApiError(4)
    if len(value) > max_len:
        raise _ApiError(-2000, name, max_len)
    return value


class _Handler(BaseHTTPRequestHandler):
    owner: NhnTestServer
    protocol_version = "HTTP/1.1"
    #: TCP_NODELAY: the headers and the body are two writes, and with Nagle's algorithm the body waited for the
    #: client's delayed ACK (40 ms on Linux loopback), so every request took >= 40 ms however small (measured:
    #: 25 and 250 recipients alike). The shared rate's price is the latency (alerts/delivery/rate.py): that
    #: artefact alone cost 4% of the account's rate.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: tests read the recorded requests instead

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _reply(self, status: int, payload: Any, extra: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (read timeout): exactly the case the delay scenario provokes

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = self._headers()
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = raw
        rec = RecordedRequest("POST", split.path, parse_qs(split.query), headers, body)
        self.owner._record(rec)
        failure = self.owner._take_failure()
        if failure is not None:
            status, retry_after = failure
            rec.http_status = status
            extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            self._reply(status, {"error": "injected failure"}, extra)
            return
        stall = self.owner._take_stall()
        if stall:
            self.owner.stalled.set()
            time.sleep(stall)
        recipients = body.get("recipientList") if isinstance(body, dict) else None
        if isinstance(recipients, list) and not self.owner._admit(len(recipients)):
            rec.http_status = 429
            self._reply(429, {"error": "too many requests"}, {"Retry-After": "1"})
            return
        refusal = self.owner._take_refusal()
        try:
            if refusal is not None:
                payload = {"header": _header(*refusal)}
            else:
                self.owner._check_auth(split.path, headers)
                payload = self.owner.handle_send(headers, raw)
        except _ApiError as err:
            payload = {"header": _header(err.code, err.message)}
        rec.result_code = payload["header"]["resultCode"]
        delay = self.owner._take_delay() if rec.result_code in (0, -1031) else 0.0
        if delay:
            time.sleep(delay)
        self._reply(200, payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        split = urlsplit(self.path)
        headers = self._headers()
        query = parse_qs(split.query)
        rec = RecordedRequest("GET", split.path, query, headers, None)
        self.owner._record(rec)
        try:
            if _SENDER_PATH.match(split.path) or _TEMPLATES_PATH.match(split.path):
                payload = self.owner.handle_lookup(split.path, headers, query)
            else:
                self.owner._check_auth(split.path, headers)
                payload = self.owner.handle_list(query)
        except _ApiError as err:
            payload = {"header": _header(err.code, err.message)}
        rec.result_code = payload["header"]["resultCode"]
        self._reply(200, payload)
