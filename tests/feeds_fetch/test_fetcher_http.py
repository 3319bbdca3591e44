"""Fetcher against a real loopback HTTP server: validators, limits, deadlines, errors, redirects."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from feedfetch_server import (
    FeedServer,
    Route,
    Sequence,
    Versioned,
    cap_doc,
    chunked,
    drip,
    drip_headers,
    static,
)

from feeds.fetch import Fetcher, FetchError, default_user_agent, looks_like_html, parse_retry_after


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(deadline_seconds=5, max_bytes=64 * 1024, contact="ops@alimcast.example",
                 trust_env=False) as f:
        yield f


def test_conditional_get_by_etag_gives_304(server: FeedServer, fetcher: Fetcher) -> None:
    doc = Versioned(cap_doc("A"))
    server.routes["/feed.xml"] = doc
    first = fetcher.fetch(server.url("/feed.xml"))
    assert (first.status, first.content, first.etag) == (200, cap_doc("A"), '"v1"')
    assert first.last_modified == doc.last_modified
    assert first.content_type == "application/xml"

    again = fetcher.fetch(server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.content is None and again.status == 304
    assert server.hits("/feed.xml")[1].headers["If-None-Match"] == '"v1"'
    assert server.hits("/feed.xml")[1].headers["If-Modified-Since"] == doc.last_modified

    doc.change(cap_doc("B"), '"v2"', "Mon, 05 Jan 2026 02:00:00 GMT")
    changed = fetcher.fetch(server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified)
    assert (changed.status, changed.content, changed.etag) == (200, cap_doc("B"), '"v2"')
    assert doc.served == [200, 304, 200]


def test_conditional_get_by_last_modified_only(server: FeedServer, fetcher: Fetcher) -> None:
    doc = Versioned(cap_doc("A"), use_etag=False)
    server.routes["/nws"] = doc
    first = fetcher.fetch(server.url("/nws"))
    assert first.etag is None and first.last_modified == doc.last_modified
    again = fetcher.fetch(server.url("/nws"), etag=None, last_modified=first.last_modified)
    assert again.not_modified
    assert "If-None-Match" not in server.hits("/nws")[1].headers


def test_user_agent_names_version_and_contact(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/ua"] = static(b"{}", "application/json")
    fetcher.fetch(server.url("/ua"))
    agent = server.hits("/ua")[0].headers["User-Agent"]
    assert agent.startswith("alimcast/") and agent.endswith("(+ops@alimcast.example)")
    assert agent == default_user_agent("ops@alimcast.example")
    with Fetcher(user_agent="custom-agent/1", trust_env=False) as custom:
        custom.fetch(server.url("/ua"))
    assert server.hits("/ua")[1].headers["User-Agent"] == "custom-agent/1"


@pytest.mark.parametrize(
    "route",
    [
        static(b"x" * (64 * 1024 + 1)),
        # No Content-Length: the cap must hold while streaming, not only from the header.
        chunked(70, b"y" * 1024),
    ],
    ids=["declared-length", "chunked"],
)
def test_size_cap(server: FeedServer, fetcher: Fetcher, route: Route) -> None:
    server.routes["/big"] = route
    with pytest.raises(FetchError, match=r"larger than 65536 bytes") as info:
        fetcher.fetch(server.url("/big"))
    assert not info.value.retryable


def test_body_exactly_at_cap_is_accepted(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/exact"] = static(b"z" * (64 * 1024))
    assert len(fetcher.fetch(server.url("/exact")).content or b"") == 64 * 1024


@pytest.mark.parametrize(
    ("name", "route"),
    [
        ("body dripped byte by byte", drip(total=100, every=0.05)),
        ("headers dripped line by line", drip_headers(every=0.05)),
        ("body stalled", drip(total=1, every=30)),
    ],
)
def test_overall_deadline(server: FeedServer, name: str, route: Route) -> None:
    server.routes["/slow"] = route
    with Fetcher(deadline_seconds=0.6, trust_env=False) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"deadline") as info:
            fetcher.fetch(server.url("/slow"))
        elapsed = time.monotonic() - started
    assert info.value.retryable
    assert 0.5 <= elapsed < 0.6 + 0.5, f"{name}: gave up after {elapsed:.2f} s"


def test_per_call_deadline_shortens_the_default(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/slow"] = drip(total=100, every=0.05)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"0.4 s deadline"):
        fetcher.fetch(server.url("/slow"), deadline_seconds=0.4)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [
        (429, {"Retry-After": "7"}, True, 7.0),
        (500, {}, True, None),
        (502, {}, True, None),
        (503, {"Retry-After": "120"}, True, 120.0),
        (404, {}, False, None),
        (403, {}, False, None),
        (410, {}, False, None),
    ],
)
def test_http_errors(server: FeedServer, fetcher: Fetcher, status: int, headers: dict[str, str],
                     retryable: bool, retry_after: float | None) -> None:
    server.routes["/err"] = static(b"error", "text/plain", status=status, headers=headers)
    with pytest.raises(FetchError) as info:
        fetcher.fetch(server.url("/err"))
    err = info.value
    assert (err.status, err.retryable, err.retry_after) == (status, retryable, retry_after)
    assert f"HTTP {status}" in str(err) and server.url("/err") in str(err)
    assert "\n" not in str(err)


def test_connection_refused_is_retryable(fetcher: Fetcher) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(FetchError, match="network error") as info:
        fetcher.fetch(f"http://127.0.0.1:{port}/feed.xml")
    assert info.value.retryable and info.value.status is None


@pytest.mark.parametrize(
    ("body", "content_type", "is_html"),
    [
        (b"<!DOCTYPE html><html><body>Moved</body></html>", "text/html; charset=utf-8", True),
        (b"<!doctype html>\n<title>login</title>", "application/xml", True),
        (b"\xef\xbb\xbf  <html lang=ko><head></head></html>", None, True),
        (b'<?xml version="1.0"?>\n<!-- portal -->\n<html xmlns="http://www.w3.org/1999/xhtml"/>', "text/xml",
         True),
        (b"<p>Service unavailable</p>", "text/html", False),  # a fragment; the header alone is not enough
        (b"Service unavailable", "text/html", True),
        (cap_doc("A"), "text/html", False),  # real CAP mislabelled by its server is still a feed
        (b'{"features": []}', "text/html", False),
        (b"#START7777\n# REG_UP", "text/plain", False),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"/>', "application/atom+xml", False),
    ],
)
def test_html_detection(body: bytes, content_type: str | None, is_html: bool) -> None:
    assert looks_like_html(body, content_type) is is_html


def test_html_page_is_refused_when_asked(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/moved"] = static(b"<!DOCTYPE html><html><body>We moved</body></html>", "text/html")
    with pytest.raises(FetchError, match="got an HTML page, not a feed"):
        fetcher.fetch(server.url("/moved"), reject_html=True)
    page = fetcher.fetch(server.url("/moved"))  # without the check the bytes come back as they are
    assert page.content is not None and page.content.startswith(b"<!DOCTYPE html>")


def test_redirects_are_followed_and_final_url_reported(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/old"] = static(b"", status=301, headers={"Location": "/mid"})
    server.routes["/mid"] = static(b"", status=302, headers={"Location": server.url("/feed.xml")})
    server.routes["/feed.xml"] = static(cap_doc("R"))
    result = fetcher.fetch(server.url("/old"))
    assert result.content == cap_doc("R") and result.final_url == server.url("/feed.xml")


def test_redirect_loop_is_bounded(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/loop"] = static(b"", status=302, headers={"Location": "/loop"})
    with pytest.raises(FetchError, match="too many redirects"):
        fetcher.fetch(server.url("/loop"))
    assert len(server.hits("/loop")) == 6  # the first request and max_redirects (5) more


def test_redirect_to_a_local_file_is_refused(server: FeedServer, fetcher: Fetcher) -> None:
    server.routes["/sneaky"] = static(b"", status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(FetchError, match="unsupported URL"):
        fetcher.fetch(server.url("/sneaky"))


def test_sequence_429_then_success_is_one_retryable_error_then_content(server: FeedServer,
                                                                       fetcher: Fetcher) -> None:
    server.routes["/busy"] = Sequence(static(b"slow down", "text/plain", 429, {"Retry-After": "1"}),
                                      static(cap_doc("OK")))
    with pytest.raises(FetchError) as info:
        fetcher.fetch(server.url("/busy"))
    assert info.value.retry_after == 1.0
    assert fetcher.fetch(server.url("/busy")).content == cap_doc("OK")


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 5, 1, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 05 Jan 2026 01:02:00 GMT", now=now) == 120.0
    assert parse_retry_after("Mon, 05 Jan 2026 00:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/feed.xml", "gopher://x/y"])
def test_unsupported_scheme(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(FetchError, match="unsupported URL scheme"):
        fetcher.fetch(url)
