"""A big warning's first batch goes before its whole outbox is written (issue 7 §5), and that never costs a
person their message or gives them two: the first rows are committed while the warning is not yet marked
matched, so a crash right after them leaves it to be matched again, and those rows are kept, not superseded.
Real SQLite and PostgreSQL; the last test runs the pipeline with its dispatch loop against the loopback NHN."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import TEMPLATES, cap_xml, config_text
from sqlalchemy import create_engine, func, text
from sqlmodel import Session, select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.delivery.loop import DispatchLoop
from alerts.fanout import FirstBatch, fan_out_pending
from alerts.models import AlertRecord, Delivery
from alerts.pipeline import Pipeline, feed_spec, zone_name
from alerts.testing.nhn_server import NhnTestServer
from subscribers.store import add_subscriber

PEOPLE = 40
FIRST = 7
GROUP = ("ALIMCAST_GROUP_01", "[특보 #{count}건]\n#{warnings}\n- #{sender}")


class Crash(Exception):
    """Stands in for kill -9 right after the first batch's commit (the rest of the transaction is lost)."""


@pytest.fixture
def server() -> Iterator[NhnTestServer]:
    with NhnTestServer(templates={code: text for code, text in [*TEMPLATES.values(), GROUP]}) as srv:
        yield srv


def make(db_url: str, tmp_path: Path, server: NhnTestServer, monkeypatch: pytest.MonkeyPatch, *,
         coalesce: bool = False) -> Pipeline:
    for name, value in (("T_APP_KEY", server.app_key), ("T_SECRET_KEY", server.secret_key),
                        ("T_SENDER_KEY", server.sender_key)):
        monkeypatch.setenv(name, value)
    extra = (f'[coalesce]\ngroup_wait_seconds = 30\n[templates.group]\ncode = "{GROUP[0]}"\n'
             f'text = """{GROUP[1]}"""\n') if coalesce else ""
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(db_url, [("kma", "cap", str(tmp_path / "feed.xml"))], provider="nhn",
                               base_url=server.base_url, extra=extra), encoding="utf-8")
    pipeline = Pipeline(load_config(cfg))
    with session_scope(pipeline.engine) as session:
        for i in range(PEOPLE):
            add_subscriber(session, f"0109{i:07d}", ["S1251100"])
    sent = datetime.now(UTC).replace(microsecond=0)
    (tmp_path / "feed.xml").write_bytes(cap_xml("FIRST-1", sent=sent, zones=["S1251100"],
                                                expires=sent + timedelta(hours=6)))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    return pipeline


def fan_out(pipeline: Pipeline, early: FirstBatch | None) -> int:
    with pipeline.lock, session_scope(pipeline.engine) as session:
        return fan_out_pending(session, pipeline.config, pipeline.audience, now=datetime.now(UTC),
                               zone_name=zone_name, early=early).queued


def test_first_batch_is_committed_before_the_rest(db_url: str, tmp_path: Path, server: NhnTestServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make(db_url, tmp_path, server, monkeypatch)
    seen: list[tuple[list[int], object]] = []
    outside = create_engine(pipeline.engine.url)  # another connection: sees only what was committed

    def hand_over(session: Session) -> None:
        session.commit()
        with outside.connect() as conn:
            ids = conn.execute(text("SELECT subscriber_id FROM delivery ORDER BY id")).scalars().all()
            seen.append((list(ids), conn.execute(text("SELECT matched_at FROM alert")).scalar_one()))

    assert fan_out(pipeline, FirstBatch(FIRST, hand_over)) == PEOPLE
    [(first_ids, matched_at)] = seen
    assert len(first_ids) == FIRST and matched_at is None  # not marked matched until the rest is written
    with session_scope(pipeline.engine) as session:
        rows = session.exec(select(Delivery).order_by(Delivery.id)).all()
        assert [r.subscriber_id for r in rows][:FIRST] == first_ids == sorted(r.subscriber_id for r in rows)[:FIRST]
        assert len({r.subscriber_id for r in rows}) == PEOPLE and {r.status for r in rows} == {"queued"}
        assert session.exec(select(AlertRecord)).one().matched_at is not None
    outside.dispose()
    pipeline.close()


@pytest.mark.parametrize("sent_before_restart", [True, False])
def test_crash_after_the_first_batch_loses_and_doubles_nobody(db_url: str, tmp_path: Path, server: NhnTestServer,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              sent_before_restart: bool) -> None:
    pipeline = make(db_url, tmp_path, server, monkeypatch)

    def crash(session: Session) -> None:
        session.commit()
        raise Crash

    with pytest.raises(Crash):
        fan_out(pipeline, FirstBatch(FIRST, crash))
    with session_scope(pipeline.engine) as session:
        assert session.exec(select(func.count()).select_from(Delivery)).one() == FIRST
        assert session.exec(select(AlertRecord)).one().matched_at is None  # to be matched again
    if sent_before_restart:
        pipeline.dispatch()  # the first batch went out before the restart
    # matched again: the first batch's rows (sent, or still queued) are kept, not superseded by their own version
    assert fan_out(pipeline, None) == PEOPLE - FIRST
    pipeline.dispatch()
    with session_scope(pipeline.engine) as session:
        statuses = session.exec(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    assert dict(statuses) == {"accepted": PEOPLE}
    assert all(server.sends_to(f"0109{i:07d}") == 1 for i in range(PEOPLE))
    pipeline.close()


def test_a_warning_that_may_wait_for_company_is_written_whole(tmp_path: Path, server: NhnTestServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make(f"sqlite:///{tmp_path / 'a.db'}", tmp_path, server, monkeypatch, coalesce=True)
    called: list[bool] = []
    assert fan_out(pipeline, FirstBatch(FIRST, lambda session: called.append(True))) == PEOPLE
    assert called == []  # held for group_wait as a whole: nothing to hand over early
    pipeline.close()


def test_running_job_sends_everyone_once(db_url: str, tmp_path: Path, server: NhnTestServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline as ``alimcast run`` has it: the dispatch loop claims the first batch while the match is
    still writing; everyone gets the warning once."""
    pipeline = make(db_url, tmp_path, server, monkeypatch)
    pipeline.config.provider.settings["batch_size"] = FIRST
    pipeline.dispatcher.batch_size = FIRST
    loop = DispatchLoop(pipeline.dispatcher, pipeline.dispatch, pipeline.wake, idle_seconds=0.2)
    pipeline.dispatch_loop_running = True
    loop.start()
    try:
        assert pipeline.match().queued == PEOPLE
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while len(server.messages) < PEOPLE and datetime.now(UTC) < deadline:
            loop.wake.wait(0.05)
    finally:
        assert loop.stop(timeout=30)
    assert len(server.messages) == PEOPLE
    assert all(server.sends_to(f"0109{i:07d}") == 1 for i in range(PEOPLE))
    pipeline.close()
