"""A loopback HTTP server whose routes each test defines: real sockets, real HTTP, nothing mocked.

A uniquely named module (not conftest) so test files can import the helpers without clashing with
other folders' conftest modules."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    server: FeedServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        self.server.requests.append(Request(path, dict(self.headers.items())))
        route = self.server.routes.get(path)
        if route is None:
            self.reply(404, b"not found", "text/plain")
            return
        # The client may give up mid-answer (deadline tests): nothing is left to do then.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            route(self)

    def reply(self, status: int, body: bytes = b"", content_type: str = "application/xml",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if status != 304:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output quiet
        pass


@dataclass
class Request:
    path: str
    headers: dict[str, str]


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


@contextlib.contextmanager
def running_server() -> Iterator[FeedServer]:
    srv = FeedServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


# -- route builders shared by the test files ----------------------------------------------------


def static(body: bytes, content_type: str = "application/xml", status: int = 200,
           headers: dict[str, str] | None = None) -> Route:
    return lambda h: h.reply(status, body, content_type, headers)


@dataclass
class Versioned:
    """A document with ETag and Last-Modified that answers conditional requests with 304."""

    body: bytes
    etag: str = '"v1"'
    last_modified: str = "Mon, 05 Jan 2026 01:00:00 GMT"
    use_etag: bool = True
    served: list[int] = field(default_factory=list)

    def __call__(self, h: Handler) -> None:
        validators = {"Last-Modified": self.last_modified}
        if self.use_etag:
            validators["ETag"] = self.etag
        inm = h.headers.get("If-None-Match")
        ims = h.headers.get("If-Modified-Since")
        if (self.use_etag and inm == self.etag) or (inm is None and ims == self.last_modified):
            self.served.append(304)
            h.reply(304, headers=validators)
            return
        self.served.append(200)
        h.reply(200, self.body, "application/xml", validators)

    def change(self, body: bytes, etag: str, last_modified: str) -> None:
        self.body, self.etag, self.last_modified = body, etag, last_modified


def drip(total: int, every: float, chunk: bytes = b"x") -> Route:
    """Headers at once, then ``chunk`` every ``every`` seconds: each read is quick, the whole is slow."""

    def route(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(total * len(chunk)))
        h.end_headers()
        h.wfile.flush()
        for _ in range(total):
            time.sleep(every)
            h.wfile.write(chunk)
            h.wfile.flush()

    return route


def drip_headers(every: float, count: int = 200) -> Route:
    """A status line, then one header line every ``every`` seconds: the body never starts."""

    def route(h: Handler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        h.wfile.flush()
        for number in range(count):
            time.sleep(every)
            h.wfile.write(f"X-Slow-{number}: 1\r\n".encode())
            h.wfile.flush()

    return route


class Sequence:
    """Answers with the given routes in turn, then keeps repeating the last one."""

    def __init__(self, *routes: Route) -> None:
        self.routes = list(routes)
        self.calls = 0

    def __call__(self, h: Handler) -> None:
        route = self.routes[min(self.calls, len(self.routes) - 1)]
        self.calls += 1
        route(h)


CAP_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>test@alimcast.example</sender>
  <sent>2026-01-05T10:00:00+09:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <category>Met</category>
    <event>풍랑</event>
    <urgency>Expected</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <area><areaDesc>서해중부앞바다</areaDesc></area>
  </info>
</alert>
"""


def cap_doc(identifier: str) -> bytes:
    return CAP_TEMPLATE.format(identifier=identifier).encode()


def chunked(count: int, chunk: bytes) -> Route:
    """A chunked body with no Content-Length: a size cap must hold while streaming."""

    def route(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for _ in range(count):
            h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    return route
