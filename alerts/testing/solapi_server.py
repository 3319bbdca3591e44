"""A loopback HTTP server that speaks Solapi's Messages API v4 (``send-many/detail`` + ``list``).

Why it exists: the Solapi adapter's claims (a signed request, no double send after a lost answer
although Solapi has no idempotency key, results and fallback read right) can only be proven against
something that checks requests the way Solapi documents and can misbehave on purpose.

Documented behaviour reproduced (Solapi docs ``api-reference/messages``, ``shared/reference/alimtalk.md``):
``Authorization: HMAC-SHA256 apiKey, date, salt, signature`` with the signature checked, a date more
than 15 minutes off and a reused signature refused with HTTP 403; up to 10,000 messages per call;
ATA messages with ``kakaoOptions`` (``pfId``, ``templateId``, ``variables`` keyed ``#{name}``,
``disableSms``); ``customFields`` stored with each message; ``failedMessageList`` / ``groupInfo`` /
``messageList`` (with ``showMessageList``) in the answer; ``GET /messages/v4/list`` with
``criteria``/``cond``/``value`` (``eq`` on ``groupId``, ``to``, ``messageId``, ``statusCode``,
``type``, ``from``), ``startDate``/``endDate``, ``limit`` and ``startKey``/``nextKey`` paging; a
``messageList`` object keyed by message id; ``replacement`` true when the SMS/LMS fallback carried it.

Choices where the docs are silent (so tests do not over-trust them): errors are HTTP 4xx with
``{"errorCode", "errorMessage"}``; the per-message refusal codes 1020 (bad number), 1062 (sender not
registered), 1043 (template mismatch), 1030 (balance); refused messages are stored in their group with
their code; a fallen-back message has its ``type`` rewritten to SMS/LMS (by EUC-KR length, 90 bytes)
and status 4000 when the fallback arrived; dates are ISO-8601 UTC.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_VAR = re.compile(r"#\{([^}]+)\}")
_AUTH = re.compile(r"^HMAC-SHA256\s+(?P<params>.+)$")
MAX_MESSAGES = 10_000
SKEW = timedelta(minutes=15)


@dataclass(slots=True)
class SolapiBehaviour:
    """What happens to one recipient. ``code``: the AlimTalk result (``4000`` delivered, ``3104`` not a
    KakaoTalk user, ``3107`` inactive/blocked, ``3103`` template mismatch). ``fallback_ok``: whether a
    requested SMS/LMS fallback arrives. ``refuse``: a code to refuse the message with at send time
    (``1020`` bad number, ``1030`` balance, ...)."""

    code: str = "4000"
    fallback_ok: bool = True
    refuse: str | None = None


@dataclass(slots=True)
class SolapiRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    http_status: int = 200
    received_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class SolapiMessage:
    message_id: str
    group_id: str
    to: str
    sender: str
    text: str
    subject: str | None
    template_id: str
    fallback: bool
    custom_fields: dict[str, str]
    status_code: str
    created: datetime
    behaviour: SolapiBehaviour
    polls_seen: int = 0


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class SolapiTestServer:
    """Context manager: ``with SolapiTestServer(templates={...}) as srv: srv.base_url``.

    Scenarios: ``behaviours`` per number; :meth:`fail_next` answers HTTP errors before processing
    (nothing taken); :meth:`delay_next` takes a send, then waits before answering (the client times out
    although the messages went out); :meth:`drop_next` takes a send and closes the connection without an
    answer; ``results_after_polls`` keeps results pending for that many list polls of each message;
    ``clock_offset`` shifts the server's clock (skew tests).
    """

    def __init__(
        self,
        *,
        api_key: str = "NCSTESTKEY",
        api_secret: str = "test-api-secret",
        pf_id: str = "KA01PF0000000000000000000000test",
        sender_no: str = "0212345678",
        templates: Mapping[str, str] | None = None,
        behaviours: Mapping[str, SolapiBehaviour | str] | None = None,
        default_behaviour: SolapiBehaviour | None = None,
        results_after_polls: int = 0,
        clock_offset: timedelta = timedelta(0),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.pf_id = pf_id
        self.sender_no = sender_no
        self.templates = dict(templates or {})
        self.behaviours: dict[str, SolapiBehaviour] = {
            no: (b if isinstance(b, SolapiBehaviour) else SolapiBehaviour(code=b))
            for no, b in (behaviours or {}).items()
        }
        self.default_behaviour = default_behaviour or SolapiBehaviour()
        self.results_after_polls = results_after_polls
        self.clock_offset = clock_offset
        self._now = now
        self._lock = threading.Lock()
        self._requests: list[SolapiRequest] = []
        self._messages: list[SolapiMessage] = []
        self._signatures: set[str] = set()
        self._failures: list[tuple[int, float | None]] = []
        self._delays: list[float] = []
        self._drops = 0
        self._list_failures = 0
        self._counter = 0
        self._httpd: ThreadingHTTPServer | None = None

    # ---- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> SolapiTestServer:
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
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         name="solapi-test-server", daemon=True).start()

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
        """Answer the next ``count`` sends with HTTP ``status`` before processing (nothing taken)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def fail_lists_next(self, count: int, *, status: int = 503) -> None:
        """Answer the next ``count`` message-list queries with HTTP ``status``."""
        with self._lock:
            self._list_failures += count

    def delay_next(self, count: int, seconds: float) -> None:
        with self._lock:
            self._delays.extend([seconds] * count)

    def drop_next(self, count: int = 1) -> None:
        with self._lock:
            self._drops += count

    # ---- inspection -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[SolapiRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[SolapiMessage]:
        """Every message taken for sending (refused ones excluded)."""
        with self._lock:
            return [m for m in self._messages if not m.status_code.startswith("1")]

    def send_requests(self) -> list[SolapiRequest]:
        return [r for r in self.requests if r.method == "POST"]

    def sends_to(self, number: str) -> int:
        """How many taken messages went to ``number``: the double-send detector."""
        return sum(1 for m in self.messages if m.to == number)

    # ---- handling ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._now() + self.clock_offset

    def check_auth(self, header: str | None) -> None:
        m = _AUTH.match(header or "")
        if m is None:
            raise _HttpError(401, "InvalidAuthorizationHeader", "Authorization header missing or malformed")
        parts = dict(p.strip().split("=", 1) for p in m.group("params").split(",") if "=" in p)
        if parts.get("apiKey") != self.api_key:
            raise _HttpError(403, "InvalidApiKey", "Invalid API Key")
        date, salt, signature = parts.get("date", ""), parts.get("salt", ""), parts.get("signature", "")
        try:
            when = datetime.fromisoformat(date.replace("Z", "+00:00"))
        except ValueError:
            raise _HttpError(403, "InvalidDate", "date must be ISO-8601") from None
        if when.tzinfo is None or abs(self.now() - when) > SKEW:
            raise _HttpError(403, "InvalidDate", "request date differs from server time by more than 15 minutes")
        expected = hmac.new(self.api_secret.encode(), (date + salt).encode(), hashlib.sha256).hexdigest()
        if not salt or not hmac.compare_digest(expected, signature):
            raise _HttpError(403, "SignatureDoesNotMatch", "signature does not match")
        with self._lock:
            if signature in self._signatures:
                raise _HttpError(403, "SignatureDuplicated", "signature already used")
            self._signatures.add(signature)

    def handle_send(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            raise _HttpError(400, "ValidationError", "messages must be a non-empty array")
        messages = body["messages"]
        if len(messages) > MAX_MESSAGES:
            raise _HttpError(400, "ValidationError", f"at most {MAX_MESSAGES} messages per request")
        now = self.now()
        with self._lock:
            self._counter += 1
            group_id = f"G4V{now:%Y%m%d%H%M%S}{self._counter:010d}"
            taken, failed, listed = 0, [], []
            for i, msg in enumerate(messages):
                if not isinstance(msg, dict):
                    raise _HttpError(400, "ValidationError", "each message must be an object")
                stored = self._store(msg, group_id, f"M4V{now:%Y%m%d%H%M%S}{self._counter:06d}{i:05d}", now)
                entry = {"messageId": stored.message_id, "statusCode": stored.status_code,
                         "customFields": stored.custom_fields, "to": stored.to, "from": stored.sender,
                         "type": "ATA", "country": "82", "accountId": "12925149",
                         "statusMessage": _STATUS_MESSAGES.get(stored.status_code, "error")}
                if stored.status_code.startswith("1"):
                    failed.append(entry)
                else:
                    taken += 1
                    listed.append({k: entry[k] for k in ("messageId", "statusCode", "customFields", "statusMessage")})
        answer: dict[str, Any] = {
            "failedMessageList": failed,
            "groupInfo": {"groupId": group_id, "status": "SENDING" if taken else "FAILED",
                          "count": {"total": len(messages), "registeredSuccess": taken,
                                    "registeredFailed": len(failed)}},
        }
        if body.get("showMessageList"):
            answer["messageList"] = listed
        return answer

    def _store(self, msg: Mapping[str, Any], group_id: str, message_id: str, now: datetime) -> SolapiMessage:
        to = str(msg.get("to") or "")
        kakao = msg.get("kakaoOptions") or {}
        template = self.templates.get(str(kakao.get("templateId")))
        variables = kakao.get("variables") or {}
        behaviour = self.behaviours.get(to, self.default_behaviour)
        code = "2000"
        if not to.isdigit() or len(to) < 9:
            code = "1020"
        elif str(msg.get("from")) != self.sender_no:
            code = "1062"
        elif not self._template_ok(msg, kakao, template, variables):
            code = "1043"
        elif behaviour.refuse:
            code = behaviour.refuse
        custom = msg.get("customFields") or {}
        stored = SolapiMessage(
            message_id=message_id, group_id=group_id, to=to, sender=str(msg.get("from")), text=str(msg.get("text")),
            subject=msg.get("subject"), template_id=str(kakao.get("templateId")),
            fallback=not kakao.get("disableSms", False),
            custom_fields={str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {},
            status_code=code, created=now, behaviour=behaviour,
        )
        self._messages.append(stored)
        return stored

    def _template_ok(self, msg: Mapping[str, Any], kakao: Mapping[str, Any], template: str | None,
                     variables: Mapping[str, Any]) -> bool:
        if msg.get("type") != "ATA" or kakao.get("pfId") != self.pf_id or template is None:
            return False
        return {f"#{{{v}}}" for v in _VAR.findall(template)} <= set(variables)

    def handle_list(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        q = {k: v[0] for k, v in query.items() if v}
        criteria = [c for c in q.get("criteria", "").split(",") if c]
        conds = [c for c in q.get("cond", "").split(",") if c]
        values = q.get("value", "").split(",") if criteria else []
        if not (len(criteria) == len(conds) == len(values)) or any(c != "eq" for c in conds):
            raise _HttpError(400, "ValidationError", "criteria, cond and value must match (eq only here)")
        try:
            limit = int(q.get("limit", "20"))
            start = datetime.fromisoformat(q["startDate"].replace("Z", "+00:00")) if "startDate" in q else None
            end = datetime.fromisoformat(q["endDate"].replace("Z", "+00:00")) if "endDate" in q else None
        except ValueError:
            raise _HttpError(400, "ValidationError", "bad limit or date") from None
        if not 1 <= limit <= 500:
            raise _HttpError(400, "ValidationError", "limit must be 1..500")
        with self._lock:
            selected = [m for m in self._messages if self._matches(m, criteria, values, start, end)]
            start_key = q.get("startKey")
            if start_key:
                ids = [m.message_id for m in selected]
                selected = selected[ids.index(start_key):] if start_key in ids else []
            page, rest = selected[:limit], selected[limit:]
            rows = {}
            for m in page:
                m.polls_seen += 1
                rows[m.message_id] = self._row(m)
        return {"startKey": start_key, "limit": limit, "nextKey": rest[0].message_id if rest else None,
                "messageList": rows}

    def _matches(self, m: SolapiMessage, criteria: list[str], values: list[str], start: datetime | None,
                 end: datetime | None) -> bool:
        if not all(self._field(m, c) == v for c, v in zip(criteria, values, strict=True)):
            return False
        return (start is None or m.created >= start) and (end is None or m.created <= end)

    @staticmethod
    def _field(m: SolapiMessage, name: str) -> str:
        return {"groupId": m.group_id, "to": m.to, "messageId": m.message_id, "statusCode": m.status_code,
                "from": m.sender, "type": "ATA"}.get(name, "\0")

    def _row(self, m: SolapiMessage) -> dict[str, Any]:
        status, kind, replacement, reason = m.status_code, "ATA", False, None
        if not status.startswith("1"):
            if m.polls_seen <= self.results_after_polls:
                status = "3000" if m.polls_seen > 1 else "2000"
            else:
                b = m.behaviour
                status = b.code
                if b.code != "4000" and m.fallback:
                    replacement = True
                    kind = "LMS" if len(m.text.encode("cp949", "replace")) > 90 else "SMS"
                    status, reason = ("4000", None) if b.fallback_ok else (b.code, "fallback failed")
        return {
            "_id": m.message_id, "messageId": m.message_id, "groupId": m.group_id, "accountId": "12925149",
            "type": kind, "to": m.to, "from": m.sender, "text": m.text, "subject": m.subject, "country": "82",
            "kakaoOptions": {"pfId": self.pf_id, "templateId": m.template_id, "disableSms": not m.fallback},
            "statusCode": status, "statusMessage": _STATUS_MESSAGES.get(status, "error"), "reason": reason,
            "replacement": replacement, "customFields": dict(m.custom_fields),
            "dateCreated": m.created.isoformat(), "dateUpdated": self.now().isoformat(),
        }


_STATUS_MESSAGES = {
    "2000": "정상 접수(이통사로 접수 예정)", "3000": "이통사로 접수 중", "4000": "수신완료",
    "1020": "수신번호 형식 오류", "1030": "잔액 부족", "1043": "알림톡 템플릿 불일치", "1062": "발신번호 미등록",
    "3103": "템플릿 불일치", "3104": "카카오톡 미사용자", "3107": "72시간 이내 미접속 또는 차단",
}


class _Handler(BaseHTTPRequestHandler):
    owner: SolapiTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _reply(self, status: int, payload: Any, extra: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: the lost-answer scenario

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        rec = SolapiRequest(method, split.path, parse_qs(split.query), headers, body)
        owner = self.owner
        with owner._lock:
            owner._requests.append(rec)
            failure = owner._failures.pop(0) if owner._failures and method == "POST" else None
            if method == "GET" and owner._list_failures > 0:
                owner._list_failures -= 1
                failure = (503, None)
        if failure is not None:
            rec.http_status, retry_after = failure
            extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            self._reply(rec.http_status, {"errorCode": "Injected", "errorMessage": "injected failure"}, extra)
            return
        try:
            owner.check_auth(headers.get("authorization"))
            if method == "POST" and split.path == "/messages/v4/send-many/detail":
                if body is None:
                    raise _HttpError(400, "ValidationError", "body must be JSON")
                payload = owner.handle_send(body)
            elif method == "GET" and split.path == "/messages/v4/list":
                payload = owner.handle_list(rec.query)
            else:
                raise _HttpError(404, "NotFound", f"{method} {split.path}")
        except _HttpError as err:
            rec.http_status = err.status
            self._reply(err.status, {"errorCode": err.code, "errorMessage": err.message})
            return
        if method == "POST":
            with owner._lock:
                drop = owner._drops > 0
                owner._drops -= int(drop)
                delay = owner._delays.pop(0) if owner._delays and not drop else 0.0
            if drop:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            if delay:
                time.sleep(delay)
        self._reply(200, payload)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self._handle("POST")

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._handle("GET")
