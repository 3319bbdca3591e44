"""A "what is active now" feed (KMA API Hub): a warning that vanishes from it has ended, and those who
were told get the 해제 follow-up — exactly once, and only them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.models import AlertThread, Delivery
from alerts.pipeline import Pipeline, feed_spec
from subscribers.store import add_subscriber

HEADER = "#START7777\n# REG_UP  REG_UP_KO----  REG_ID    REG_KO----  TM_FC  TM_EF  WRN  LVL  CMD  ED_TM\n"
PUNGRANG = "S1250000, 서해중부전해상, S1252010, 서해중부안쪽먼바다, 209912150400, 209912150600, 풍랑, 주의, 발표, ,=\n"
GANGPUNG = "S1250000, 서해중부전해상, S1251100, 인천·경기북부앞바다, 209912150400, 209912150600, 강풍, 주의, 발표, ,=\n"


def write(path: Path, *rows: str) -> None:
    path.write_bytes((HEADER + "".join(rows) + "#7777END\n").encode("euc-kr"))


def test_vanished_warning_is_lifted_once(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    feed = tmp_path / "now.txt"
    pipeline = Pipeline(load_config(write_config(db_url, [("now", "kma-apihub-now", str(feed))])))
    with session_scope(pipeline.engine) as s:
        inner = add_subscriber(s, "01020000001", ["S1252010"]).id
        coast = add_subscriber(s, "01020000002", ["S1251100"]).id
    spec = feed_spec(pipeline.config.feeds[0])

    def step(*rows: str) -> None:
        write(feed, *rows)
        pipeline.poll(spec, force=True)
        pipeline.tick()

    step(PUNGRANG, GANGPUNG)
    step(PUNGRANG, GANGPUNG)  # unchanged: nothing new
    step(GANGPUNG)  # 풍랑 in 서해중부안쪽먼바다 vanished: lifted
    step(GANGPUNG)
    with session_scope(pipeline.engine) as s:
        states = {t.key: t.state for t in s.exec(select(AlertThread))}
        assert states == {"kma:S1252010:풍랑": "ended", "kma:S1251100:강풍": "active"}
        kinds: dict[int, list[str]] = {}
        for d in s.exec(select(Delivery).order_by(Delivery.id)):
            kinds.setdefault(d.subscriber_id, []).append(d.kind)
    assert kinds == {inner: ["alert", "cancel"], coast: ["alert"]}
    pipeline.close()


def test_failed_poll_ends_nothing(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    """An error page is not an empty snapshot: it must not lift every warning."""
    feed = tmp_path / "now.txt"
    pipeline = Pipeline(load_config(write_config(db_url, [("now", "kma-apihub-now", str(feed))])))
    with session_scope(pipeline.engine) as s:
        add_subscriber(s, "01020000001", ["S1252010"])
    spec = feed_spec(pipeline.config.feeds[0])
    write(feed, PUNGRANG)
    pipeline.poll(spec, force=True)
    pipeline.tick()
    feed.write_bytes(b"<html><body>502 Bad Gateway</body></html>")
    outcome = pipeline.poll(spec, force=True)
    pipeline.tick()
    assert outcome.errors
    with session_scope(pipeline.engine) as s:
        assert [t.state for t in s.exec(select(AlertThread))] == ["active"]
        assert [d.kind for d in s.exec(select(Delivery))] == ["alert"]
    pipeline.close()
