"""``alimcast alerts list`` / ``alerts show`` through the real CLI on a real SQLite file (and a real
PostgreSQL database) holding deliveries in every state."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import config_text
from sqlmodel import Session, select
from typer.testing import CliRunner

from alerts import delivery_stats
from alerts.cli.app import app
from alerts.cli.common import open_context
from alerts.db import session_scope
from alerts.models import AlertRecord, AlertThread, Delivery
from alerts.public.acks import record_ack
from subscribers.store import add_subscriber

runner = CliRunner()
RECEIVED = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)

#: status, channel, result_code, reason, seconds after arrival it was sent (None: never sent), how many
ROWS = [
    ("queued", None, None, None, None, 2),
    ("sending", None, None, None, None, 1),
    ("accepted", None, "2000", None, 3.0, 3),
    ("delivered", "alimtalk", "1000", None, 1.5, 5),
    ("fallback_sent", "sms", "3019", None, 2.0, 2),
    ("fallback_sent", "lms", "3018", None, 2.5, 1),
    ("failed", None, "3008", "bad phone number", 4.0, 2),
    ("failed", None, "-5000", "invalid recipient number", None, 1),
    ("uncertain", None, "3005", None, 6.0, 1),
    ("suppressed", None, None, "expired before it was sent", None, 2),
]


def _write(path: Path, db_url: str) -> tuple[Path, int, int]:
    config = path / "config.toml"
    config.write_text(config_text(db_url, []), encoding="utf-8")
    ctx = open_context(config)
    with session_scope(ctx.engine) as s:
        subs = [add_subscriber(s, f"0105{i:07d}", ["S1251100"]) for i in range(sum(r[-1] for r in ROWS))]
        s.flush()
        thread = AlertThread(state="active", feed="kma")
        s.add(thread)
        s.flush()
        first = _alert(s, thread.id, "Alert", "풍랑주의보", RECEIVED, "one")
        update = _alert(s, thread.id, "Update", "풍랑경보", RECEIVED + timedelta(hours=1), "two")
        thread.current_alert_id = update.id
        s.add(thread)
        i = 0
        for status, channel, code, reason, after, n in ROWS:
            for _ in range(n):
                sent = RECEIVED + timedelta(seconds=after) if after is not None else None
                s.add(Delivery(alert_id=first.id, thread_id=thread.id, subscriber_id=subs[i].id, status=status,
                               channel=channel, result_code=code, result_message=reason if status == "failed" else None,
                               last_error=reason if status == "suppressed" else None, sent_at=sent,
                               template_code="WX", text="x"))
                i += 1
        for sub in subs[:4]:
            s.add(Delivery(alert_id=update.id, thread_id=thread.id, subscriber_id=sub.id, kind="update",
                           status="delivered", channel="alimtalk", template_code="WX", text="x",
                           sent_at=RECEIVED + timedelta(hours=1, seconds=1)))
        first_id, update_id = first.id, update.id
    assert first_id is not None and update_id is not None
    return config, first_id, update_id


def _alert(s: Session, thread_id: int | None, msg_type: str, event: str, received: datetime, ident: str) -> AlertRecord:
    a = AlertRecord(sender="kma", identifier=ident, sent=received, status="Actual", msg_type=msg_type, scope="Public",
                    event=event, severity="Severe", urgency="Expected", thread_id=thread_id, received_at=received,
                    headline=f"{event} 발표")
    s.add(a)
    s.flush()
    return a


@pytest.fixture
def stored(tmp_path: Path, db_url: str) -> tuple[Path, int, int]:
    """The same rows on SQLite and on PostgreSQL (the counts are SQL: both must agree)."""
    return _write(tmp_path, db_url)


def invoke(*args: str, columns: int = 80) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    return result.exit_code, result.stdout, result.stderr


def test_show_json_counts_every_state(stored: tuple[Path, int, int]) -> None:
    config, first, update = stored
    code, out, err = invoke("alerts", "show", str(first), "--json", "--config", str(config))
    assert code == 0, err
    data = json.loads(out)
    c = data["counts"]
    assert (c["matched"], c["queued"], c["sending"], c["awaiting_result"], c["delivered"]) == (20, 2, 1, 3, 5)
    assert c["fallback"] == {"sms": 2, "lms": 1} and c["fell_back"] == 3
    assert (c["failed"], c["uncertain"], c["suppressed"]) == (3, 1, 2)
    assert c["sent"] == 3 + 5 + 3 + 2 + 1  # every row with sent_at, a later failure included
    assert c["acknowledged"] == 0  # nobody confirmed yet (the acknowledgement store is always there)
    assert data["failed_by_reason"] == [
        {"code": "3008", "reason": "bad phone number", "count": 2},
        {"code": "-5000", "reason": "invalid recipient number", "count": 1},
    ]
    assert data["suppressed_by_reason"] == [{"code": None, "reason": "expired before it was sent", "count": 2}]
    assert data["timing"]["first_send_seconds"] == 1.5 and data["timing"]["last_send_seconds"] == 6.0
    versions = [(v["alert_id"], v["msg_type"], v["matched"], v["current"]) for v in data["versions"]]
    assert versions == [(first, "Alert", 20, False), (update, "Update", 4, True)]


def test_show_table(stored: tuple[Path, int, int]) -> None:
    config, first, _ = stored
    code, out, err = invoke("alerts", "show", str(first), "--config", str(config))
    assert code == 0, err
    for text in ("matched", "20", "fell back (SMS/LMS)", "LMS 1, SMS 2", "bad phone number",
                 "acknowledged (the whole warning)", "1.5 s", "6.0 s", "풍랑경보", "current"):
        assert text in out, text


def test_show_unknown_alert_is_one_line(stored: tuple[Path, int, int]) -> None:
    config, *_ = stored
    code, out, err = invoke("alerts", "show", "999", "--config", str(config))
    assert code == 1 and err.strip() == "error: alert 999: no such alert (see `alimcast alerts list`)"


def test_list(stored: tuple[Path, int, int]) -> None:
    config, first, update = stored
    code, out, err = invoke("alerts", "list", "--json", "--config", str(config))
    assert code == 0, err
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [update, first]  # newest first
    assert rows[1]["counts"]["matched"] == 20 and rows[0]["counts"]["delivered"] == 4
    assert rows[0]["thread_state"] == "active"
    code, out, _ = invoke("alerts", "list", "--config", str(config), columns=100)
    assert code == 0 and "풍랑주의보" in out and "Update" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith(str(first)))
    # matched queued sent delivered fell-back failed acked
    assert line.split()[-7:] == ["20", "3", "14", "5", "3", "3", "0"]


def test_acknowledgements_come_from_the_ack_store(stored: tuple[Path, int, int]) -> None:
    """Two people confirm the warning (as the public /a/ page records it): ``alerts show`` and ``alerts list``
    count them for every version of that warning."""
    config, first, update = stored
    ctx = open_context(config)
    with session_scope(ctx.engine) as s:
        rows = s.exec(select(Delivery).where(Delivery.alert_id == first).order_by(Delivery.id).limit(2)).all()
        for d in rows:
            assert record_ack(s, d.thread_id, d.subscriber_id, first, now=RECEIVED + timedelta(minutes=5)).new
    code, out, err = invoke("alerts", "show", str(first), "--json", "--config", str(config))
    assert code == 0, err
    assert json.loads(out)["counts"]["acknowledged"] == 2
    code, out, _ = invoke("alerts", "show", str(update), "--config", str(config), columns=120)
    assert re.search(r"acknowledged \(the whole warning\)\s+2\b", out), out
    code, out, _ = invoke("alerts", "list", "--json", "--config", str(config))
    assert [r["counts"]["acknowledged"] for r in json.loads(out)] == [2, 2]
    code, out, _ = invoke("alerts", "list", "--config", str(config), columns=100)
    line = next(ln for ln in out.splitlines() if ln.strip().startswith(str(first)))
    assert line.split()[-1] == "2"


def test_watch_follows_the_fan_out_to_the_end(stored: tuple[Path, int, int]) -> None:
    """--watch keeps reading until nothing is queued or sending, while another process works the outbox."""
    config, first, _ = stored
    ctx = open_context(config)
    watching = threading.Event()
    real_counts = delivery_stats.status_counts

    def counts_and_signal(session, ids):  # type: ignore[no-untyped-def]
        watching.set()
        return real_counts(session, ids)

    def worker() -> None:
        assert watching.wait(30)
        with session_scope(ctx.engine) as s:
            for d in s.exec(select(Delivery).where(Delivery.alert_id == first,
                                                   Delivery.status.in_(("queued", "sending")))):  # type: ignore[attr-defined]
                d.status, d.sent_at = "accepted", RECEIVED + timedelta(seconds=9)
                s.add(d)

    mp = pytest.MonkeyPatch()
    mp.setattr("alerts.cli.alerts.status_counts", counts_and_signal)
    thread = threading.Thread(target=worker)
    thread.start()
    try:
        code, out, err = invoke("alerts", "show", str(first), "--watch", "--interval", "0.05", "--json",
                                "--config", str(config))
    finally:
        mp.undo()
        thread.join(30)
    assert code == 0, err
    data = json.loads(out)
    assert (data["counts"]["queued"], data["counts"]["sending"], data["counts"]["awaiting_result"]) == (0, 0, 6)
    assert data["timing"]["last_send_seconds"] == 9.0
    assert "20/20" in err  # the bar ended full
