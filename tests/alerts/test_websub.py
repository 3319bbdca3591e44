"""WebSub end to end on loopback: a feed advertising a hub, the job subscribing at a loopback hub, the hub's
intent check and signed content taken by the serve side, forged content ignored, polling untouched."""

from __future__ import annotations

import hashlib
import hmac
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from alimcast_testkit import cap_xml
from fastapi import FastAPI
from live_asgi import serving
from sqlmodel import select

from alerts.config import Config, ConfigError, load_config
from alerts.db import session_scope
from alerts.models import AlertRecord
from alerts.pipeline import Pipeline, feed_spec
from alerts.web.routes.websub import websub_router
from alerts.websub import WebSubIntake, WebSubSettings, WebSubSubscriber
from feeds.syndication import websub_links
from feeds.xmlsafe import parse_xml

SENT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
TOPIC = "https://partner.example/cap/atom.xml"


class Hub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.status = 202
        super().__init__(("127.0.0.1", 0), HubHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hub"


class HubHandler(BaseHTTPRequestHandler):
    server: Hub  # type: ignore[assignment]

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        self.server.requests.append(dict(urllib.parse.parse_qsl(body)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def hub() -> Iterator[Hub]:
    server = Hub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def feed_document(hub_url: str, *identifiers: str) -> bytes:
    entries = "".join(
        f"<entry><id>urn:{i}</id><title>{i}</title><updated>2026-12-04T00:00:00Z</updated>"
        f"<content type='text/xml'>{cap_xml(i, sent=SENT, zones=['S1251100']).decode().split('?>', 1)[1]}"
        "</content></entry>" for i in identifiers)
    return (f"<?xml version='1.0' encoding='UTF-8'?><feed xmlns='http://www.w3.org/2005/Atom'><id>urn:f</id>"
            f"<title>partner</title><updated>2026-12-04T00:00:00Z</updated>"
            f"<link rel='hub' href='{hub_url}'/><link rel='self' href='{TOPIC}'/>{entries}</feed>").encode()


@pytest.fixture
def config(tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, hub: Hub) -> Config:
    monkeypatch.setenv("T_WEBSUB_SECRET", "websub-master-secret")
    feed = tmp_path / "partner.xml"
    feed.write_bytes(feed_document(hub.url, "P-1"))
    path = write_config(f"sqlite:///{tmp_path / 'a.db'}", [], extra=f'''
[websub]
callback_url = "https://alerts.example.org/websub"
secret = "env:T_WEBSUB_SECRET"
lease_seconds = 3600

[[feeds]]
name = "partner"
kind = "atom"
url = "{feed}"
interval_seconds = 300
websub = true
''')
    return load_config(path)


def test_links_are_read_from_atom_and_rss() -> None:
    atom = parse_xml(feed_document("https://hub.example/", "X"), origin="https://partner.example/feed")
    assert websub_links(atom, "https://partner.example/feed") == ("https://hub.example/", TOPIC)
    rss = parse_xml(b"<rss version='2.0' xmlns:atom='http://www.w3.org/2005/Atom'><channel><title>t</title>"
                    b"<atom:link rel='hub' href='https://hub.example/'/></channel></rss>", origin="x")
    assert websub_links(rss, "https://partner.example/rss") == ("https://hub.example/", "https://partner.example/rss")
    assert websub_links(rss, "/local/file.xml") == ("https://hub.example/", None)  # no topic: no subscription
    bare = parse_xml(b"<feed xmlns='http://www.w3.org/2005/Atom'><link rel='hub' href='ftp://x/'/></feed>", origin="x")
    assert websub_links(bare, "https://p/") == (None, None)


def test_the_job_subscribes_after_a_poll_and_renews_before_the_lease_ends(config: Config, hub: Hub) -> None:
    settings = WebSubSettings.from_config(config)
    assert settings is not None and settings.feeds == {"partner"}
    now = [1000.0]
    subscriber = WebSubSubscriber(settings, clock=lambda: now[0])
    pipeline = Pipeline(config)
    pipeline.after_poll.append(subscriber.after_poll)
    spec = feed_spec(config.feeds[0])
    try:
        pipeline.poll(spec, force=True)
        assert hub.requests == [{"hub.mode": "subscribe", "hub.topic": TOPIC,
                                 "hub.callback": "https://alerts.example.org/websub/partner",
                                 "hub.secret": settings.secret_for("partner"), "hub.lease_seconds": "3600"}]
        pipeline.poll(spec, force=True)
        assert len(hub.requests) == 1  # subscribed, lease running
        now[0] += 3600 * 0.8 + 1
        pipeline.poll(spec, force=True)
        assert len(hub.requests) == 2  # renewed before it ran out
        hub.status = 500
        now[0] += 3600
        pipeline.poll(spec, force=True)  # a broken hub costs nothing but the push: the poll stored its alerts
        assert len(hub.requests) == 3
        with session_scope(pipeline.engine) as session:
            assert [a.identifier for a in session.exec(select(AlertRecord))] == ["P-1"]
    finally:
        subscriber.close()
        pipeline.close()


@pytest.fixture
def serve(config: Config) -> Iterator[tuple[str, Pipeline, WebSubSettings]]:
    settings = WebSubSettings.from_config(config)
    assert settings is not None
    pipeline = Pipeline(config)
    app = FastAPI()
    app.include_router(websub_router(WebSubIntake(config, settings, pipeline.engine)))
    with serving(app) as url:
        yield url, pipeline, settings
    pipeline.close()


def test_the_hubs_intent_check_is_answered_for_our_feeds_only(serve: tuple[str, Pipeline, WebSubSettings]) -> None:
    url, _, _ = serve
    ok = httpx.get(f"{url}/websub/partner", params={"hub.mode": "subscribe", "hub.topic": TOPIC,
                                                   "hub.challenge": "c-123", "hub.lease_seconds": "3600"})
    assert ok.status_code == 200 and ok.text == "c-123"
    assert httpx.get(f"{url}/websub/other", params={"hub.mode": "subscribe", "hub.challenge": "x"}).status_code == 404
    assert httpx.get(f"{url}/websub/partner", params={"hub.mode": "subscribe"}).status_code == 404
    assert httpx.get(f"{url}/websub/partner", params={"hub.mode": "denied", "hub.reason": "no"}).status_code == 200


@pytest.mark.parametrize("method", ["sha256", "sha1", "sha512"])
def test_signed_content_is_stored_and_forged_content_ignored(serve: tuple[str, Pipeline, WebSubSettings],
                                                             hub: Hub, method: str) -> None:
    url, pipeline, settings = serve
    body = feed_document(hub.url, "P-2")
    digest = hmac.new(settings.secret_for("partner").encode(), body, getattr(hashlib, method)).hexdigest()
    forged = httpx.post(f"{url}/websub/partner", content=body.replace(b"P-2", b"P-9"),
                        headers={"X-Hub-Signature": f"{method}={digest}"})
    unsigned = httpx.post(f"{url}/websub/partner", content=feed_document(hub.url, "P-8"))
    assert forged.status_code == unsigned.status_code == 202  # a forger learns nothing
    good = httpx.post(f"{url}/websub/partner", content=body, headers={"X-Hub-Signature": f"{method}={digest}"})
    assert good.status_code == 202
    with session_scope(pipeline.engine) as session:
        assert [a.identifier for a in session.exec(select(AlertRecord))] == ["P-2"]


@pytest.mark.parametrize(("extra", "key", "reason"), [
    ("", "[websub]", "need a [websub] table"),
    ('[websub]\ncallback_url = "alerts.example.org"\nsecret = "env:T_WEBSUB_SECRET"\n', "[websub] callback_url",
     "public http(s) address"),
    ('[websub]\ncallback_url = "https://a.example/websub"\nsecret = "plain"\n', "[websub] secret",
     "secrets come from the environment"),
])
def test_websub_settings_are_one_line_errors(tmp_path: Path, write_config: Callable[..., Path],
                                             monkeypatch: pytest.MonkeyPatch, extra: str, key: str,
                                             reason: str) -> None:
    monkeypatch.setenv("T_WEBSUB_SECRET", "s")
    path = write_config(f"sqlite:///{tmp_path / 'a.db'}", [], extra=extra + '''
[[feeds]]
name = "partner"
kind = "atom"
url = "https://partner.example/cap/atom.xml"
interval_seconds = 300
websub = true
''')
    with pytest.raises(ConfigError) as err:
        WebSubSettings.from_config(load_config(path))
    assert err.value.key == key and reason in str(err.value)
