"""Push ingest over real HTTP: uvicorn on a free loopback port, the real parsers, real SQLite.

Each partner authenticates per feed (bearer token, HMAC of the body, or the alert's own XML signature);
refused pushes get a one-line reason and store nothing; a replay is a duplicate; the running job's watcher
matches and sends a pushed warning at once.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from alimcast_testkit import cap_xml
from fastapi import FastAPI
from live_asgi import serving
from sqlmodel import select

from alerts.config import Config, ConfigError, load_config
from alerts.db import session_scope
from alerts.models import AlertRecord, Delivery
from alerts.new_alert_watch import NewAlertWatcher
from alerts.pipeline import Pipeline
from alerts.push import PushIntake
from alerts.web.routes.push import push_router
from subscribers.store import add_subscriber

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "feeds_cap"))
from cap_signing import Signer  # noqa: E402

TOKEN, HMAC_KEY = "t0ken-for-the-vts", "hmac-key-of-the-port"
SENT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


def tsunami(identifier: str = "VTS-1") -> bytes:
    return cap_xml(identifier, sent=SENT, zones=["S1251100"], event="지진해일경보", severity="Extreme",
                   urgency="Immediate", expires=SENT + timedelta(hours=6), sender="vts@busan.example")


@pytest.fixture
def config(tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("T_PUSH_TOKEN", TOKEN)
    monkeypatch.setenv("T_PUSH_HMAC", HMAC_KEY)
    partner = Signer(tmp_path, "partner")
    path = write_config(f"sqlite:///{tmp_path / 'a.db'}", [], extra=f'''
[[feeds]]
name = "vts"
kind = "cap"
url = "push:"
interval_seconds = 60
push = {{ auth = "token", secret = "env:T_PUSH_TOKEN" }}

[[feeds]]
name = "port"
kind = "cap"
url = "push:"
interval_seconds = 60
push = {{ auth = "hmac", secret = "env:T_PUSH_HMAC", max_bytes = 20000 }}

[[feeds]]
name = "partner"
kind = "cap"
url = "push:"
interval_seconds = 60
options = {{ signature = "require", trusted_certs = ["{partner.path.name}"] }}
push = {{ auth = "signature" }}
''')
    cfg = load_config(path)
    cfg.raw["_partner"] = partner  # the test signs with it
    return cfg


@pytest.fixture
def pipeline(config: Config) -> Iterator[Pipeline]:
    p = Pipeline(config)
    yield p
    p.close()


@pytest.fixture
def base_url(config: Config, pipeline: Pipeline) -> Iterator[str]:
    app = FastAPI()
    app.include_router(push_router(PushIntake(config, pipeline.engine)))
    with serving(app) as url:
        yield url


def stored(pipeline: Pipeline) -> list[str]:
    with session_scope(pipeline.engine) as session:
        return [a.identifier for a in session.exec(select(AlertRecord).order_by(AlertRecord.id))]


def test_a_token_push_is_stored_once_and_a_replay_is_a_duplicate(base_url: str, pipeline: Pipeline) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"}
    first = httpx.post(f"{base_url}/push/vts", content=tsunami(), headers=auth)
    assert first.status_code == 202 and first.json() == {"feed": "vts", "new": 1, "duplicates": 0, "errors": []}
    again = httpx.post(f"{base_url}/push/vts", content=tsunami(), headers=auth)
    assert again.status_code == 202 and (again.json()["new"], again.json()["duplicates"]) == (0, 1)
    assert stored(pipeline) == ["VTS-1"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_a_push_without_the_token_is_refused_and_nothing_is_stored(
        base_url: str, pipeline: Pipeline, headers: dict[str, str]) -> None:
    answer = httpx.post(f"{base_url}/push/vts", content=tsunami(), headers=headers)
    assert answer.status_code == 401 and answer.json() == {"error": "feed vts: missing or wrong bearer token"}
    assert stored(pipeline) == []


def test_hmac_of_the_body(base_url: str, pipeline: Pipeline) -> None:
    body = tsunami("PORT-1")
    good = "sha256=" + hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()
    assert httpx.post(f"{base_url}/push/port", content=body, headers={"X-Alimcast-Signature": good}).status_code == 202
    changed = body.replace(b"Extreme", b"Minor")  # altered on the way: the HMAC no longer fits
    refused = httpx.post(f"{base_url}/push/port", content=changed, headers={"X-Alimcast-Signature": good})
    assert refused.status_code == 401 and "X-Alimcast-Signature".lower() in refused.json()["error"]
    assert stored(pipeline) == ["PORT-1"]


def test_a_signed_alert_is_its_own_authentication(base_url: str, pipeline: Pipeline, config: Config) -> None:
    partner: Signer = config.raw["_partner"]
    assert httpx.post(f"{base_url}/push/partner", content=partner.sign(tsunami("P-1"))).status_code == 202
    unsigned = httpx.post(f"{base_url}/push/partner", content=tsunami("P-2"))
    assert unsigned.status_code == 422
    assert unsigned.json()["error"] == ("push to partner: alert P-2: unsigned alert refused "
                                        "(the feed requires XML signatures)")
    assert stored(pipeline) == ["P-1"]


def test_bad_pushes_get_one_line_reasons(base_url: str, pipeline: Pipeline) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    unknown = httpx.post(f"{base_url}/push/nope", content=tsunami(), headers=auth)
    assert unknown.status_code == 404 and unknown.json() == {"error": "no push feed named 'nope'"}
    broken = httpx.post(f"{base_url}/push/vts", content=b"<alert><identifier>x</ident", headers=auth)
    assert broken.status_code == 422 and broken.json()["error"].startswith("push to vts: not well-formed XML")
    xxe = httpx.post(f"{base_url}/push/vts", headers=auth,
                     content=b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><alert>&x;</alert>')
    assert xxe.status_code == 422 and "DTD/entity declarations are not accepted" in xxe.json()["error"]
    big = b"<alert>" + b" " * 20_001 + b"</alert>"
    too_big = httpx.post(f"{base_url}/push/port", content=big, headers={"X-Alimcast-Signature": "sha256=00"})
    assert too_big.status_code == 413
    assert too_big.json() == {"error": "feed port: the push is over the 20000 byte limit"}
    assert all("\n" not in r.json()["error"] for r in (unknown, broken, xxe, too_big))
    assert stored(pipeline) == []


def test_the_running_jobs_watcher_matches_and_sends_a_pushed_warning(base_url: str, pipeline: Pipeline) -> None:
    with session_scope(pipeline.engine) as session:
        add_subscriber(session, phone="010-5555-0101", zones=["S1251100"], name="skipper")
    sent: list[str] = []
    watcher = NewAlertWatcher(pipeline.engine, lambda: (pipeline.match(), sent.append("x"), pipeline.dispatch()))
    assert watcher.check()  # the first look always matches: anything stored while the job was down
    assert not watcher.check()  # nothing new since
    response = httpx.post(f"{base_url}/push/vts", content=tsunami(), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 202
    assert watcher.check() and len(sent) == 2
    with session_scope(pipeline.engine) as session:
        (delivery,) = session.exec(select(Delivery)).all()
        assert delivery.status in ("accepted", "delivered") and "지진해일" in delivery.text


@pytest.mark.parametrize(("push", "kind", "reason"), [
    ('{ auth = "password" }', "cap", "must be one of token, hmac, signature"),
    ('{ auth = "token" }', "cap", "secrets come from the environment"),
    ('{ auth = "token", secret = "env:T_NOT_SET_ANYWHERE" }', "cap", "is not set"),
    ('{ auth = "signature" }', "cap", 'needs kind = "cap" and options.signature = "require"'),
    ('{ auth = "token", secret = "env:T_PUSH_TOKEN" }', "nws", "pushes are taken for kind cap or incident-json"),
])
def test_push_options_are_checked_at_config_load(tmp_path: Path, write_config: Callable[..., Path],
                                                 monkeypatch: pytest.MonkeyPatch, push: str, kind: str,
                                                 reason: str) -> None:
    monkeypatch.setenv("T_PUSH_TOKEN", TOKEN)
    path = write_config(f"sqlite:///{tmp_path / 'a.db'}", [], extra=f'''
[[feeds]]
name = "vts"
kind = "{kind}"
url = "push:"
interval_seconds = 60
push = {push}
''')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key.startswith("[[feeds]] vts push") and reason in str(err.value)


def test_the_console_app_takes_pushes_without_a_login_or_csrf_token(config: Config, pipeline: Pipeline) -> None:
    """``alimcast serve``'s own app: /push/ is a machine endpoint (its token is the authentication)."""
    from alerts.web.app import create_app

    with serving(create_app(config, engine=pipeline.engine)) as url:
        answer = httpx.post(f"{url}/push/vts", content=tsunami(), headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 202 and answer.json()["new"] == 1
        assert httpx.post(f"{url}/push/vts", content=tsunami("VTS-2")).status_code == 401
        assert httpx.get(f"{url}/", follow_redirects=False).status_code in (303, 401)  # the console still asks
    assert stored(pipeline) == ["VTS-1"]
