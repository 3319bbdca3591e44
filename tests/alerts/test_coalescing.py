"""Storms (issue 7 §7): one person's new warnings within ``group_wait`` go as ONE provider message listing
them; Extreme/Immediate never waits; a grouped message never carries a warning that ended; every warning it
carried counts as told, so its follow-ups reach the person. Against the loopback NHN server, with the
dispatcher's clock moved past the window (no sleeps), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import TEMPLATES, cap_xml, config_text
from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.delivery.dispatch import Dispatcher
from alerts.models import Delivery
from alerts.pipeline import Pipeline, feed_spec
from alerts.testing.nhn_server import NhnTestServer
from subscribers.sqltypes import utcnow
from subscribers.store import add_subscriber

GROUP = ("ALIMCAST_GROUP_01", "[특보 #{count}건]\n#{warnings}\n- #{sender}")
ZONES = ["S1251100", "S1251200", "S1251300", "S1251400", "S1252010"]
SKIPPER = "01030000001"  # subscribed to all five zones
NEIGHBOUR = "01030000002"  # one zone only


@pytest.fixture
def server() -> Iterator[NhnTestServer]:
    templates = {code: text for code, text in [*TEMPLATES.values(), GROUP]}
    with NhnTestServer(templates=templates) as srv:
        yield srv


@pytest.fixture
def pipeline(db_url: str, tmp_path: Path, server: NhnTestServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    p = make(db_url, tmp_path, server, monkeypatch)
    yield p
    p.close()


def make(db_url: str, tmp_path: Path, server: NhnTestServer, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    monkeypatch.setenv("T_APP_KEY", server.app_key)
    monkeypatch.setenv("T_SECRET_KEY", server.secret_key)
    monkeypatch.setenv("T_SENDER_KEY", server.sender_key)
    extra = (f'[coalesce]\ngroup_wait_seconds = 30\nmax_alerts = 4\n'
             f'[templates.group]\ncode = "{GROUP[0]}"\ntext = """{GROUP[1]}"""\n')
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(db_url, [("kma", "cap", str(tmp_path / "feed.xml"))], provider="nhn",
                               base_url=server.base_url, extra=extra), encoding="utf-8")
    config = load_config(cfg)
    config.provider.settings["retry_attempts"] = 1
    p = Pipeline(config)
    with session_scope(p.engine) as s:
        add_subscriber(s, SKIPPER, ZONES)
        add_subscriber(s, NEIGHBOUR, ["S1251100"])
    return p


def publish(p: Pipeline, tmp_path: Path, body: bytes) -> None:
    (tmp_path / "feed.xml").write_bytes(body)
    p.poll(feed_spec(p.config.feeds[0]), force=True)
    p.match()


def dispatch_at(p: Pipeline, when: datetime) -> None:
    """Send what is due at ``when`` (the window is measured on the rows, so moving the clock is enough)."""
    d = Dispatcher(p.engine, p.config, p.provider, clock=lambda: when)
    d.dispatch_due()
    d.collect_results()


def rows(p: Pipeline) -> list[Delivery]:
    with session_scope(p.engine) as s:
        return list(s.exec(select(Delivery).order_by(Delivery.id)))


def warning(n: int, t0: datetime, **kw: object) -> bytes:
    kw.setdefault("expires", t0 + timedelta(hours=6))
    return cap_xml(f"W{n}", sent=t0 + timedelta(seconds=n), zones=[ZONES[n]], **kw)  # type: ignore[arg-type]


def test_five_warnings_in_the_window_go_as_messages_of_at_most_max(pipeline: Pipeline, tmp_path: Path,
                                                                  server: NhnTestServer) -> None:
    t0 = utcnow().replace(microsecond=0)
    for n in range(5):
        publish(pipeline, tmp_path, warning(n, t0))
    dispatch_at(pipeline, utcnow())
    assert server.messages == []  # everything waits for company (none is urgent)
    dispatch_at(pipeline, utcnow() + timedelta(seconds=31))
    to_skipper = [m for m in server.messages if m.recipient_no == SKIPPER]
    # max_alerts = 4: one grouped message of four, and the fifth on its own
    assert sorted(m.template_code for m in to_skipper) == ["ALIMCAST_ALERT_01", GROUP[0]]
    grouped = next(m for m in to_skipper if m.template_code == GROUP[0])
    assert grouped.content.startswith("[특보 4건]") and grouped.content.count("- 풍랑 주의보") == 4
    # the neighbour's one warning was held too, and went alone
    assert [m.template_code for m in server.messages if m.recipient_no == NEIGHBOUR] == ["ALIMCAST_ALERT_01"]
    mine = [r for r in rows(pipeline) if r.subscriber_id == 1]
    assert len(mine) == 5  # one outbox row per (alert, person)
    head = next(r for r in mine if r.template_code == GROUP[0])
    assert head.status == "delivered"
    assert sorted(r.status for r in mine if r.carried_by == head.id) == ["carried"] * 3

    # follow-ups reach the person for every warning the grouped message carried
    carried = next(r for r in mine if r.carried_by == head.id)
    ident = f"W{carried.alert_id - 1}"
    n = int(ident[1:])
    publish(pipeline, tmp_path, cap_xml(f"C{n}", sent=t0 + timedelta(minutes=5), zones=[ZONES[n]],
                                        msg_type="Cancel", references=[(ident, t0 + timedelta(seconds=n))]))
    dispatch_at(pipeline, utcnow())
    lifts = [r for r in rows(pipeline) if r.kind == "cancel"]
    assert [(r.subscriber_id, r.status) for r in lifts if r.subscriber_id == 1] == [(1, "delivered")]


def test_extreme_or_immediate_never_waits(pipeline: Pipeline, tmp_path: Path, server: NhnTestServer) -> None:
    t0 = utcnow().replace(microsecond=0)
    publish(pipeline, tmp_path, warning(0, t0))
    publish(pipeline, tmp_path, warning(1, t0, event="지진해일경보", severity="Extreme", urgency="Immediate"))
    publish(pipeline, tmp_path, warning(2, t0, urgency="Immediate"))
    dispatch_at(pipeline, utcnow())
    sent = sorted(m.content.splitlines()[0] for m in server.messages if m.recipient_no == SKIPPER)
    assert sent == ["[지진해일 경보] 발표", "[풍랑 주의보] 발표"]  # both urgent ones at once, alone
    dispatch_at(pipeline, utcnow() + timedelta(seconds=31))
    assert len([m for m in server.messages if m.recipient_no == SKIPPER]) == 3


def test_a_grouped_message_never_carries_an_ended_warning(pipeline: Pipeline, tmp_path: Path,
                                                          server: NhnTestServer) -> None:
    t0 = utcnow().replace(microsecond=0)
    for n in range(3):
        # W2 expires inside the window: it must not be listed once it has ended
        publish(pipeline, tmp_path, warning(n, t0, expires=utcnow() + timedelta(seconds=20)) if n == 2
                else warning(n, t0))
    # W0 (the group's head) is lifted before the group goes: W1 takes over the message
    publish(pipeline, tmp_path, cap_xml("C0", sent=t0 + timedelta(minutes=1), zones=[ZONES[0]], msg_type="Cancel",
                                        references=[("W0", t0)]))
    dispatch_at(pipeline, utcnow() + timedelta(seconds=31))
    to_skipper = [m for m in server.messages if m.recipient_no == SKIPPER]
    assert len(to_skipper) == 1, [m.content for m in to_skipper]
    (only,) = to_skipper
    # one warning left: it goes as its own message, naming its own zone only
    assert only.template_code == "ALIMCAST_ALERT_01" and "[풍랑 주의보] 발표" in only.content
    mine = {r.alert_id: r for r in rows(pipeline) if r.subscriber_id == 1}
    statuses = sorted(r.status for r in mine.values())
    assert statuses == ["delivered", "suppressed", "suppressed"], statuses
    # nobody had been told about W0: its 해제 went to nobody
    assert not [r for r in rows(pipeline) if r.kind == "cancel" and r.subscriber_id == 1]


def test_without_coalesce_config_nothing_waits(db_url: str, tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(db_url, [("kma", "cap", str(tmp_path / "feed.xml"))]), encoding="utf-8")
    p = Pipeline(load_config(cfg))
    with session_scope(p.engine) as s:
        add_subscriber(s, SKIPPER, ZONES)
    t0 = datetime.now(UTC).replace(microsecond=0)
    for n in range(3):
        publish(p, tmp_path, warning(n, t0))
    p.dispatch()
    assert len(rows(p)) == 3 and {r.status for r in rows(p)} <= {"accepted", "delivered"}
    assert all(r.carried_by is None and r.grouped_until is None for r in rows(p))
    p.close()


def test_a_new_version_joins_the_same_message(pipeline: Pipeline, tmp_path: Path, server: NhnTestServer) -> None:
    """W0 heads a group with W1; W0 is raised to 경보 (an Update) before the group goes: one message, listing
    the new level and W1, never the old level."""
    t0 = utcnow().replace(microsecond=0)
    publish(pipeline, tmp_path, warning(0, t0))
    publish(pipeline, tmp_path, warning(1, t0))
    publish(pipeline, tmp_path, cap_xml("U0", sent=t0 + timedelta(minutes=1), zones=[ZONES[0]], msg_type="Update",
                                        event="풍랑경보", severity="Severe", expires=t0 + timedelta(hours=6),
                                        references=[("W0", t0)]))
    dispatch_at(pipeline, utcnow() + timedelta(seconds=31))
    to_skipper = [m for m in server.messages if m.recipient_no == SKIPPER]
    assert len(to_skipper) == 1, [m.content for m in to_skipper]
    text = to_skipper[0].content
    assert text.startswith("[특보 2건]") and "풍랑 경보" in text and text.count("풍랑 주의보") == 1, text


def test_postgres_a_head_being_claimed_is_not_joined(pg_url: str, tmp_path: Path, server: NhnTestServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A warning joins only a message nobody has taken for sending: while a dispatcher holds the head's row
    lock, the next warning opens its own group (so ``carried`` always means listed in what went)."""
    p = make(pg_url, tmp_path, server, monkeypatch)
    with p.engine.connect() as c:  # a regression must fail (lock timeout), not hang waiting on itself
        c.exec_driver_sql(f'ALTER DATABASE "{p.engine.url.database}" SET lock_timeout = \'10s\'')
        c.commit()
    p.engine.dispose()
    try:
        t0 = utcnow().replace(microsecond=0)
        publish(p, tmp_path, warning(0, t0))
        (head,) = [r for r in rows(p) if r.subscriber_id == 1]
        with p.engine.connect() as other:
            tx = other.begin()
            other.exec_driver_sql("SELECT id FROM delivery WHERE id = %s FOR UPDATE", (head.id,))
            publish(p, tmp_path, warning(1, t0))
            tx.rollback()
        mine = [r for r in rows(p) if r.subscriber_id == 1]
        assert [(r.status, r.carried_by) for r in mine] == [("queued", None), ("queued", None)]
        publish(p, tmp_path, warning(2, t0))  # the lock is gone: joins the first group
        assert [r.carried_by for r in rows(p) if r.subscriber_id == 1] == [None, None, head.id]
    finally:
        p.close()
