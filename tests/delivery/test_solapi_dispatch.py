"""The real dispatcher with ``[provider] kind = "solapi"`` against the loopback Solapi server: Solapi has
no idempotency key, so these are the cases where only the adapter's look-up under the key stands between
a lost answer (or a crash) and a second message. Then ``alimcast alerts show`` reads what happened."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import TEMPLATES, cap_xml, config_text
from sqlmodel import select
from typer.testing import CliRunner

from alerts.cli.app import app
from alerts.config import load_config
from alerts.db import session_scope
from alerts.models import Delivery
from alerts.pipeline import Pipeline, feed_spec
from alerts.testing import SolapiBehaviour, SolapiTestServer
from subscribers.store import add_subscriber

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def server() -> Iterator[SolapiTestServer]:
    with SolapiTestServer(templates={code: text for code, text in TEMPLATES.values()}) as srv:
        yield srv


def make_pipeline(db_url: str, tmp_path: Path, srv: SolapiTestServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("T_SOLAPI_KEY", srv.api_key)
    monkeypatch.setenv("T_SOLAPI_SECRET", srv.api_secret)
    text = config_text(db_url, [("kma", "cap", str(tmp_path / "feed.xml"))], provider="solapi",
                       base_url=srv.base_url)
    solapi_keys = ('api_key = "env:T_SOLAPI_KEY"\napi_secret = "env:T_SOLAPI_SECRET"\n'
                   f'pf_id = "{srv.pf_id}"\nsender_no = "{srv.sender_no}"\n')
    text = text.replace('app_key = "env:T_APP_KEY"', solapi_keys + 'app_key = "env:T_APP_KEY"')
    text = text.replace("timeout_seconds = 5", "timeout_seconds = 1.5\nretry_attempts = 1\nretry_max_seconds = 2")
    cfg = tmp_path / "config.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


def queue(pipeline: Pipeline, tmp_path: Path, count: int) -> None:
    with session_scope(pipeline.engine) as s:
        for i in range(count):
            add_subscriber(s, f"0103{i:07d}", ["S1251100"])
    (tmp_path / "feed.xml").write_bytes(cap_xml("W1", sent=NOW, zones=["S1251100"]))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    pipeline.match()


def expire_leases(pipeline: Pipeline) -> None:
    with session_scope(pipeline.engine) as s:
        for row in s.exec(select(Delivery).where(Delivery.status == "sending")):
            row.lease_until = NOW - timedelta(seconds=1)
            s.add(row)


def test_a_lost_answer_is_settled_by_looking_up_the_key(db_url: str, tmp_path: Path, server: SolapiTestServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_pipeline(db_url, tmp_path, server, monkeypatch)
    pipeline = Pipeline(load_config(cfg))
    assert pipeline.dispatcher.provider.kind == "solapi"
    server.behaviours["01030000001"] = SolapiBehaviour("3104")  # not a KakaoTalk user: LMS fallback (a long text)
    queue(pipeline, tmp_path, 3)
    server.delay_next(1, 4.0)  # Solapi takes the batch; its answer comes after our client gave up
    first = pipeline.dispatch()
    assert first.accepted == 0 and first.requeued == 3
    expire_leases(pipeline)  # the backoff has passed
    deadline = time.monotonic() + 30
    while len(server.send_requests()) < 1 and time.monotonic() < deadline:  # Solapi has stored the batch
        time.sleep(0.05)
    pipeline.dispatch()
    assert [server.sends_to(f"0103{i:07d}") for i in range(3)] == [1, 1, 1]
    assert len(server.send_requests()) == 1
    pipeline.collect()
    with session_scope(pipeline.engine) as s:
        rows = list(s.exec(select(Delivery).order_by(Delivery.id)))
    assert [(r.status, r.channel) for r in rows] == [("delivered", "alimtalk"), ("fallback_sent", "lms"),
                                                      ("delivered", "alimtalk")]
    alert_id = rows[0].alert_id
    pipeline.close()
    result = CliRunner().invoke(app, ["alerts", "show", str(alert_id), "--json", "--config", str(cfg)])
    assert result.exit_code == 0, result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert (counts["matched"], counts["sent"], counts["delivered"], counts["fallback"]) == (3, 3, 2, {"lms": 1})


def test_a_crash_after_sending_is_not_sent_again(db_url: str, tmp_path: Path, server: SolapiTestServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker sent, then died before saving the outcome; a worker re-sends its batch under the same
    key within minutes (no look-up by the dispatcher): the adapter finds it and sends nothing."""
    pipeline = Pipeline(load_config(make_pipeline(db_url, tmp_path, server, monkeypatch)))
    queue(pipeline, tmp_path, 2)
    claim = pipeline.dispatcher._claim()
    messages = [pipeline.dispatcher._message(r, f"0103{i:07d}") for i, r in enumerate(claim.rows)]
    pipeline.dispatcher.provider.send(messages, idempotency_key=claim.key)  # ... and the worker died here
    expire_leases(pipeline)
    report = pipeline.dispatch()
    assert report.accepted == 2
    assert len(server.send_requests()) == 1 and [server.sends_to(f"0103{i:07d}") for i in range(2)] == [1, 1]
    pipeline.close()
