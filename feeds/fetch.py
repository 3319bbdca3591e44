"""Getting the bytes of one feed document, with limits that hold against slow or hostile servers.

Why not feedparser's or httpx's own defaults: feedparser has no timeout at all (feedparser#76) and a
poll that hangs blocks its scheduler job forever (feedparser#263); httpx's timeouts are per phase, so
a server that drips one byte a second never trips them. Every fetch here therefore has one overall
deadline, enforced three ways: per-phase timeouts capped at the time left, a check of the clock after
every body chunk, and a watchdog that shuts the socket down when the deadline passes (which wakes a
read that is blocked in the kernel). The same size cap applies to HTTP bodies and local files.

URL forms: ``http(s)://``, ``file://``, plain paths and ``bundled:NAME`` (a sample shipped in
``feeds/samples``, found with importlib.resources so it works from an installed package).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.resources
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx

DEFAULT_DEADLINE_SECONDS = 30.0
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
BUNDLED_PREFIX = "bundled:"

#: Statuses worth trying again: the server is busy or a proxy in front of it failed.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def _package_version() -> str:
    try:
        return importlib.metadata.version("alimcast")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def default_user_agent(contact: str | None = None) -> str:
    """``alimcast/<version> (+contact)``: public feed operators (NWS, NGA) ask for a way to reach us."""
    base = f"alimcast/{_package_version()}"
    return f"{base} (+{contact})" if contact else base


class FetchError(Exception):
    """One fetch failed; the message is a single line that names the URL and the cause.

    ``retryable`` says whether trying again soon can help (timeouts, refused connections, 429, 5xx);
    ``retry_after`` is the server's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class FetchResult:
    status: int
    #: ``None`` when the document has not changed since the validators we sent (304).
    content: bytes | None
    etag: str | None
    last_modified: str | None
    content_type: str | None
    #: Where the bytes really came from (after redirects); relative links resolve against it.
    final_url: str
    #: ``Cache-Control: max-age`` in seconds: the server says the document will not change sooner.
    max_age: float | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.I)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:[,=]|$)", re.I)


def parse_max_age(value: str | None) -> float | None:
    """Seconds from ``Cache-Control: max-age=N``; ``None`` when absent, unusable, or beside no-cache/no-store."""
    if not value or _NO_CACHE.search(value):
        return None
    match = _MAX_AGE.search(value)
    return float(match.group(1)) if match else None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, delta)


_FIRST_TAG = re.compile(rb"<\s*(!doctype\s+html|[a-z_][\w:.-]*)", re.IGNORECASE)
_PROLOG_NOISE = re.compile(rb"\A(?:\s|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)


def looks_like_html(content: bytes | None, content_type: str | None) -> bool:
    """True when a response is a web page rather than a feed (a moved feed URL often answers with one).

    The body decides first, because servers label real XML ``text/html`` and HTML ``text/xml`` alike;
    the header decides only when the body does not start with something feed-like.
    """
    if not content:
        return False
    head = content[:4096].lstrip(b"\xef\xbb\xbf")
    head = head[_PROLOG_NOISE.match(head).end():]  # type: ignore[union-attr]
    match = _FIRST_TAG.match(head)
    if match is not None:
        name = match.group(1).lower()
        return name.startswith(b"!doctype") or name == b"html" or name.endswith(b":html")
    if head[:1] in (b"{", b"[", b"#"):
        return False
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in ("text/html", "application/xhtml+xml")


def ensure_not_html(result: FetchResult) -> FetchResult:
    """Raise when a feed URL gave an HTML page; every feed kind we read is XML, JSON or plain text."""
    if looks_like_html(result.content, result.content_type):
        raise FetchError(
            f"{result.final_url}: got an HTML page, not a feed "
            f"(content-type {result.content_type or 'none'})",
            url=result.final_url,
            status=result.status,
        )
    return result


class _Watchdog:
    """Shuts down every socket a fetch opened once its deadline passes.

    ``socket.shutdown`` (unlike ``close``) wakes a ``recv`` blocked in another thread, so even a
    server that sends headers one byte at a time cannot hold a fetch past its deadline.
    """

    def __init__(self, seconds: float) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.fired = False
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                if self.fired:
                    self._shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class Fetcher:
    """Fetches feed documents; one instance (one connection pool) serves all feeds and threads.

    Connections are not kept alive between fetches: feeds are polled minutes apart, servers close
    idle connections long before that, and a fresh connection per fetch is what lets the watchdog
    see (and cut) every socket a fetch uses.
    """

    def __init__(
        self,
        *,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        user_agent: str | None = None,
        contact: str | None = None,
        connect_timeout: float = 10.0,
        trust_env: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.deadline_seconds = deadline_seconds
        self.max_bytes = max_bytes
        self.connect_timeout = connect_timeout
        self.user_agent = user_agent or default_user_agent(contact)
        self._client = httpx.Client(
            follow_redirects=True,
            max_redirects=max_redirects,
            headers={"User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate"},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
            trust_env=trust_env,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        deadline_seconds: float | None = None,
        reject_html: bool = False,
        accept: str | None = None,
    ) -> FetchResult:
        """Fetch one document; 304 (or an unchanged local file) gives ``content=None``.

        ``deadline_seconds`` shortens this fetch's overall deadline (the poller passes what is left
        of its own budget). Raises :class:`FetchError` for every failure a network or a file can cause.
        """
        seconds = self.deadline_seconds if deadline_seconds is None else min(deadline_seconds,
                                                                               self.deadline_seconds)
        url = url.strip()
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            result = self._fetch_http(url, etag, last_modified, seconds, accept)
        elif url.startswith(BUNDLED_PREFIX):
            result = self._fetch_bundled(url, etag)
        elif scheme == "file":
            result = self._fetch_file(Path(url2pathname(unquote(parts.path))), url, etag)
        elif scheme == "" or (len(scheme) == 1 and os.name == "nt"):
            result = self._fetch_file(Path(url).expanduser(), url, etag)
        else:
            raise FetchError(f"{url}: unsupported URL scheme {parts.scheme!r} "
                             "(use http(s)://, file://, a path or bundled:NAME)", url=url)
        if reject_html and result.content is not None:
            ensure_not_html(result)
        return result

    # -- HTTP ---------------------------------------------------------------------------------

    def _fetch_http(
        self, url: str, etag: str | None, last_modified: str | None, seconds: float, accept: str | None
    ) -> FetchResult:
        started = time.monotonic()
        deadline = started + seconds
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        if accept:
            headers["Accept"] = accept
        timeout = httpx.Timeout(seconds, connect=min(self.connect_timeout, seconds))
        watchdog = _Watchdog(seconds)
        try:
            with watchdog, self._client.stream(
                "GET", url, headers=headers, timeout=timeout, extensions={"trace": watchdog.trace}
            ) as response:
                final_url = str(response.url)
                if response.status_code == 304:
                    return FetchResult(
                        status=304,
                        content=None,
                        etag=response.headers.get("ETag", etag),
                        last_modified=response.headers.get("Last-Modified", last_modified),
                        content_type=response.headers.get("Content-Type"),
                        final_url=final_url,
                        max_age=parse_max_age(response.headers.get("Cache-Control")),
                    )
                if response.status_code >= 400:
                    raise self._status_error(response, url)
                if response.status_code >= 300:
                    raise FetchError(f"{url}: HTTP {response.status_code} redirect without a usable Location",
                                     url=url, status=response.status_code)
                content = self._read_body(response, url, deadline, seconds)
                return FetchResult(
                    status=response.status_code,
                    content=content,
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                    content_type=response.headers.get("Content-Type"),
                    final_url=final_url,
                    max_age=parse_max_age(response.headers.get("Cache-Control")),
                )
        except FetchError:
            raise
        except httpx.TooManyRedirects as exc:
            raise FetchError(f"{url}: too many redirects ({exc})", url=url) from exc
        except httpx.UnsupportedProtocol as exc:
            raise FetchError(f"{url}: redirected to an unsupported URL ({exc})", url=url) from exc
        except httpx.InvalidURL as exc:
            raise FetchError(f"{url}: invalid URL ({exc})", url=url) from exc
        except (httpx.HTTPError, OSError) as exc:
            if watchdog.fired or time.monotonic() >= deadline:
                raise self._deadline_error(url, seconds) from exc
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "network error"
            detail = str(exc) or type(exc).__name__
            raise FetchError(f"{url}: {kind}: {detail}", url=url, retryable=True) from exc

    def _read_body(self, response: httpx.Response, url: str, deadline: float, seconds: float) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._size_error(url)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise self._size_error(url)
            chunks.append(chunk)
            if time.monotonic() >= deadline:
                raise self._deadline_error(url, seconds)
        return b"".join(chunks)

    def _status_error(self, response: httpx.Response, url: str) -> FetchError:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        reason = response.reason_phrase or ""
        text = f"{url}: HTTP {status} {reason}".rstrip()
        if retry_after is not None:
            text += f" (Retry-After {retry_after:g} s)"
        retryable = status in RETRYABLE_STATUSES or status >= 500
        return FetchError(text, url=url, status=status, retryable=retryable, retry_after=retry_after)

    def _size_error(self, url: str) -> FetchError:
        return FetchError(f"{url}: response larger than {self.max_bytes} bytes", url=url)

    @staticmethod
    def _deadline_error(url: str, seconds: float) -> FetchError:
        return FetchError(f"{url}: took longer than the {seconds:g} s deadline", url=url, retryable=True)

    # -- local files --------------------------------------------------------------------------

    def _fetch_file(self, path: Path, url: str, etag: str | None) -> FetchResult:
        try:
            info = path.stat()
            if not path.is_file():
                raise FetchError(f"{url}: not a regular file", url=url)
            if info.st_size > self.max_bytes:
                raise self._size_error(url)
            # mtime+size stands in for an ETag: an unchanged file then reads as "not modified".
            file_etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
            modified = format_datetime(datetime.fromtimestamp(info.st_mtime, UTC), usegmt=True)
            final_url = str(path)
            if etag is not None and etag == file_etag:
                return FetchResult(304, None, file_etag, modified, None, final_url)
            with path.open("rb") as handle:
                content = handle.read(self.max_bytes + 1)
        except FetchError:
            raise
        except FileNotFoundError as exc:
            raise FetchError(f"{url}: no such file", url=url) from exc
        except OSError as exc:
            raise FetchError(f"{url}: cannot read: {exc.strerror or exc}", url=url) from exc
        if len(content) > self.max_bytes:
            raise self._size_error(url)
        return FetchResult(200, content, file_etag, modified, None, final_url)

    def _fetch_bundled(self, url: str, etag: str | None) -> FetchResult:
        name = url[len(BUNDLED_PREFIX):].strip()
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise FetchError(f"{url}: a bundled sample is named by a plain file name", url=url)
        resource = importlib.resources.files("feeds").joinpath("samples", name)
        try:
            with resource.open("rb") as handle:
                content = handle.read(self.max_bytes + 1)
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise FetchError(f"{url}: no bundled sample named {name!r}", url=url) from exc
        except OSError as exc:
            raise FetchError(f"{url}: cannot read bundled sample: {exc}", url=url) from exc
        if len(content) > self.max_bytes:
            raise self._size_error(url)
        digest = f'"{hashlib.sha256(content).hexdigest()[:32]}"'
        if etag is not None and etag == digest:
            return FetchResult(304, None, digest, None, None, url)
        return FetchResult(200, content, digest, None, None, url)
