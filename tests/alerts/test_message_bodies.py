"""Message bodies stored once (migration 0017, alerts/message_bodies.py), on both engines: a grouped fan-out
stores one body per group and its rows read it; a row given a new body never changes the shared one; the
migration moves existing bodies (deduplicated) and its downgrade puts them back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alimcast_testkit import cap_xml
from sqlmodel import func, select

from alerts.config import load_config
from alerts.db import make_engine, session_scope, upgrade
from alerts.delivery.outbox_rows import due_rows
from alerts.message_bodies import digest, message_ids
from alerts.models import Delivery, DeliveryMessage
from alerts.pipeline import Pipeline, feed_spec
from subscribers.store import add_subscriber

EN = '[templates.alert.en]\ncode = "ALERT_EN"\ntext = """[#{hazard} #{level}] #{action}\nZones: #{zones}"""\n'
T0 = datetime.now(UTC).replace(microsecond=0)


def _fanned_out(db_url: str, tmp_path: Path, write_config: Callable[..., Path]) -> Pipeline:
    feed = tmp_path / "w.xml"
    pipeline = Pipeline(load_config(write_config(db_url, [("w", "cap", str(feed))], extra=EN)))
    with session_scope(pipeline.engine) as session:
        for i in range(30):
            add_subscriber(session, f"0108{i:07d}", ["S1251100"], language=("ko", "en", "vi")[i % 3])
    feed.write_bytes(cap_xml("B-1", sent=T0, zones=["S1251100"], expires=T0 + timedelta(days=1)))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    assert pipeline.match().queued == 30
    return pipeline


def test_a_group_fan_out_stores_each_body_once(db_url: str, tmp_path: Path,
                                               write_config: Callable[..., Path]) -> None:
    pipeline = _fanned_out(db_url, tmp_path, write_config)
    try:
        with session_scope(pipeline.engine) as session:
            bodies = session.exec(select(DeliveryMessage)).all()
            rows = session.exec(select(Delivery).order_by(Delivery.id)).all()
            # Korean (ko and vi: no Vietnamese template) and English: two bodies for 30 rows
            assert sorted(b.template_code for b in bodies) == ["ALERT_EN", "ALIMCAST_ALERT_01"]
            by_id = {b.id: b for b in bodies}
            for row in rows:
                body = by_id[row.message_id]
                assert (row.template_code, row.text, row.params, row.fallback_kind) == (
                    body.template_code, body.text, body.params, body.fallback_kind)
                assert body.digest == digest(body.template_code, body.params, body.text, body.fallback_kind)
            # the claim reads the same body through its join
            claimed = due_rows(session.connection(), datetime.now(UTC) + timedelta(minutes=5), 100, lock=False)
            assert {(r.id, r.template_code, r.text, r.fallback_kind) for r in claimed} == {
                (r.id, r.template_code, r.text, r.fallback_kind) for r in rows}
            assert all(r.params == by_id[m.message_id].params for r, m in zip(
                sorted(claimed, key=lambda r: r.id), rows, strict=True))
            # the same bodies asked for again: the stored ids, nothing new
            again = message_ids(session.connection(), [
                {"template_code": b.template_code, "params": b.params, "text": b.text,
                 "fallback_kind": b.fallback_kind} for b in bodies])
            assert again == [b.id for b in bodies]
            assert session.exec(select(func.count()).select_from(DeliveryMessage)).one() == 2
            # a body column still reads and filters on the class (a subquery of the row's body)
            english = session.exec(select(Delivery.id).where(Delivery.template_code == "ALERT_EN")).all()
            assert sorted(english) == sorted(r.id for r in rows if r.template_code == "ALERT_EN")
    finally:
        pipeline.close()


def test_a_new_body_on_one_row_leaves_the_shared_one_alone(db_url: str, tmp_path: Path,
                                                           write_config: Callable[..., Path]) -> None:
    pipeline = _fanned_out(db_url, tmp_path, write_config)
    try:
        with session_scope(pipeline.engine) as session:
            first, second = session.exec(select(Delivery).where(Delivery.template_code == "ALIMCAST_ALERT_01")
                                         .order_by(Delivery.id).limit(2)).all()
            shared, original = first.message_id, first.text
            assert second.message_id == shared
            first.text = "다른 본문"
            session.add(first)
        with session_scope(pipeline.engine) as session:
            first = session.get(Delivery, first.id)
            second = session.get(Delivery, second.id)
            assert first is not None and second is not None
            assert first.text == "다른 본문" and first.message_id != shared
            assert first.template_code == "ALIMCAST_ALERT_01"  # the other values kept
            assert second.text == original and second.message_id == shared
            first.text = original  # the same body as before: found by its digest, not stored twice
            session.add(first)
        with session_scope(pipeline.engine) as session:
            first = session.get(Delivery, first.id)
            assert first is not None and first.message_id == shared
            assert session.exec(select(func.count()).select_from(DeliveryMessage)).one() == 3
    finally:
        pipeline.close()


def test_migration_moves_the_bodies_and_downgrade_puts_them_back(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0016")
    when = "2026-03-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO alert_thread (id, state, opened_at) VALUES (1, 'active', :t)"), {"t": when})
        conn.execute(sa.text(
            "INSERT INTO alert (id, sender, identifier, sent, status, msg_type, scope, event, severity, urgency, "
            "thread_id, received_at, body) VALUES (1, 'kma', 'W1', :t, 'Actual', 'Alert', 'Public', '풍랑주의보', "
            "'Moderate', 'Expected', 1, :t, '{}')"), {"t": when})
        for i in range(1, 5):
            conn.execute(sa.text(
                "INSERT INTO subscriber (id, phone, name, language, status, min_severity, categories, hazards, "
                "consent_at, consent_source, consent_text, created_at, updated_at) VALUES (:i, :p, '', 'ko', "
                "'active', 'Unknown', '[]', '[]', :t, 'cli', '', :t, :t)"), {"i": i, "p": f"0101000000{i}", "t": when})
        bodies = [("T1", '{"a": "1"}', "같은 본문", "SMS"), ("T1", '{"a": "1"}', "같은 본문", "SMS"),
                  ("T1", '{"a": "2"}', "다른 본문", None), ("T2", '{}', "", None)]
        for i, (code, params, body, fallback) in enumerate(bodies, start=1):
            conn.execute(sa.text(
                "INSERT INTO delivery (id, alert_id, thread_id, subscriber_id, kind, priority, status, template_code, "
                "params, text, fallback_kind, attempts, created_at) VALUES (:i, 1, 1, :i, 'alert', 0, 'queued', :c, "
                f"{'CAST(:p AS jsonb)' if engine.dialect.name == 'postgresql' else ':p'}, :b, :f, 0, :t)"),
                {"i": i, "c": code, "p": params, "b": body, "f": fallback, "t": when})
    upgrade(engine, "0017")  # this migration's own work (0022 replaces the person's key on PostgreSQL)
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(DeliveryMessage)).one() == 3
        rows = session.exec(select(Delivery).order_by(Delivery.id)).all()
        assert [(r.template_code, r.params, r.text, r.fallback_kind) for r in rows] == [
            ("T1", {"a": "1"}, "같은 본문", "SMS"), ("T1", {"a": "1"}, "같은 본문", "SMS"),
            ("T1", {"a": "2"}, "다른 본문", None), ("T2", {}, "", None)]
        assert rows[0].message_id == rows[1].message_id != rows[2].message_id
        # the digest the migration stored is the application's: a new row with that body finds it
        assert message_ids(session.connection(), [{"template_code": "T1", "params": {"a": "2"},
                                                   "text": "다른 본문"}]) == [rows[2].message_id]
    postgres = engine.dialect.name == "postgresql"
    fks = ("SELECT count(*) FROM pg_constraint WHERE conrelid = 'delivery'::regclass AND contype = 'f'")
    if postgres:  # the person's foreign key kept, the alert's and the thread's dropped
        with engine.connect() as conn:
            assert conn.execute(sa.text(fks)).scalar_one() == 1
    from alembic import command

    from alerts.db import alembic_config
    command.downgrade(alembic_config(engine.url.render_as_string(hide_password=False)), "0016")
    with engine.connect() as conn:
        back = conn.execute(sa.text("SELECT template_code, text, fallback_kind FROM delivery ORDER BY id")).all()
        if postgres:
            assert conn.execute(sa.text(fks)).scalar_one() == 3
    assert [tuple(r) for r in back] == [("T1", "같은 본문", "SMS"), ("T1", "같은 본문", "SMS"),
                                        ("T1", "다른 본문", None), ("T2", "", None)]
    engine.dispose()
