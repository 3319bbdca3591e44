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


# The same 풍랑 row with its TM_EF garbled: the parser skips it with an error.
PUNGRANG_UNREADABLE = PUNGRANG.replace("209912150600", "2099121506", 1)


def run_steps(db_url: str, tmp_path: Path, write_config: Callable[..., Path],
              *steps: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    feed = tmp_path / "now.txt"
    pipeline = Pipeline(load_config(write_config(db_url, [("now", "kma-apihub-now", str(feed))])))
    with session_scope(pipeline.engine) as s:
        inner = add_subscriber(s, "01020000001", ["S1252010"]).id
    spec = feed_spec(pipeline.config.feeds[0])
    for rows in steps:
        write(feed, *rows)
        pipeline.poll(spec, force=True)
        pipeline.tick()
    with session_scope(pipeline.engine) as s:
        states = {t.key or "": t.state for t in s.exec(select(AlertThread))}
        kinds = [d.kind for d in s.exec(select(Delivery).where(Delivery.subscriber_id == inner).order_by(Delivery.id))]
    pipeline.close()
    return states, kinds


def test_an_unreadable_row_does_not_lift_its_warning(db_url: str, tmp_path: Path,
                                                     write_config: Callable[..., Path]) -> None:
    """A snapshot with a row it could not read is not complete: it proves nothing about that row."""
    states, kinds = run_steps(db_url, tmp_path, write_config, (PUNGRANG, GANGPUNG), (PUNGRANG_UNREADABLE, GANGPUNG),
                              (PUNGRANG, GANGPUNG))
    assert states["kma:S1252010:풍랑"] == "active" and kinds == ["alert"]


def test_a_warning_listed_again_after_vanishing_is_reopened_and_sent_again(
        db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    """The source dropped the row for one poll and brought it back: the 해제 was wrong, so the people told
    hear that the warning is still in force, and the thread is live again (a later 해제 will reach them)."""
    states, kinds = run_steps(db_url, tmp_path, write_config, (PUNGRANG, GANGPUNG), (GANGPUNG,),
                              (PUNGRANG, GANGPUNG), (PUNGRANG, GANGPUNG), (GANGPUNG,))
    assert kinds == ["alert", "cancel", "update", "cancel"]
    assert states["kma:S1252010:풍랑"] == "ended"  # lifted for real at the end
