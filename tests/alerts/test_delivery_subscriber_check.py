"""A delivery never names a missing person, on both engines: SQLite by its foreign key, PostgreSQL by the set-based
triggers of migration 0022 (which replaced the per-row key check). Rows for a missing person are refused, a person
with deliveries cannot be deleted, renumbered or truncated away, and an outbox write racing a delete of the same
person (two connections) ends with one of them refused, whichever goes first. Upgrade and downgrade on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from alerts.db import alembic_config, make_engine, upgrade

WHEN = "2026-03-01 00:00:00"
WAIT_S = 60.0  # generous: a loaded 2-core CI


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO alert_thread (id, state, opened_at) VALUES (1, 'active', :t)"), {"t": WHEN})
        conn.execute(sa.text(
            "INSERT INTO alert (id, sender, identifier, sent, status, msg_type, scope, event, severity, urgency, "
            "thread_id, received_at, body) VALUES (1, 'kma', 'W1', :t, 'Actual', 'Alert', 'Public', '풍랑주의보', "
            "'Moderate', 'Expected', 1, :t, '{}')"), {"t": WHEN})
        for i in (1, 2, 3):
            _person(conn, i)
    yield eng
    eng.dispose()


def _person(conn: Connection, i: int) -> None:
    conn.execute(sa.text(
        "INSERT INTO subscriber (id, phone, name, language, status, min_severity, categories, hazards, consent_at, "
        "consent_source, consent_text, created_at, updated_at) VALUES (:i, :p, '', 'ko', 'active', 'Unknown', '[]', "
        "'[]', :t, 'cli', '', :t, :t)"), {"i": i, "p": f"0101000000{i}", "t": WHEN})


def _deliver(conn: Connection, *people: int) -> int:
    """Outbox rows for these people in one statement (as the fan-out writes them)."""
    values = ", ".join(f"(1, 1, {p}, 'alert', 0, 'queued', 1, 0, '{WHEN}', 0)" for p in people)
    return int(conn.execute(sa.text(
        "INSERT INTO delivery (alert_id, thread_id, subscriber_id, kind, priority, status, message_id, attempts, "
        f"created_at, reminder_seq) VALUES {values}")).rowcount)


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def test_rows_for_a_missing_person_are_refused_and_nothing_of_the_statement_is_kept(engine: Engine) -> None:
    with engine.begin() as conn:
        assert _deliver(conn, 1, 2) == 2
    with pytest.raises(IntegrityError, match="(?i)foreign key"), engine.begin() as conn:
        _deliver(conn, 3, 99)
    assert _count(engine, "SELECT count(*) FROM delivery") == 2
    with pytest.raises(IntegrityError, match="(?i)foreign key"), engine.begin() as conn:
        conn.execute(sa.text("UPDATE delivery SET subscriber_id = 99 WHERE subscriber_id = 1"))
    with engine.begin() as conn:  # moved to a person who exists: allowed
        conn.execute(sa.text("UPDATE delivery SET subscriber_id = 3 WHERE subscriber_id = 1"))
    assert _count(engine, "SELECT count(*) FROM delivery WHERE subscriber_id = 3") == 1


def test_a_person_with_deliveries_is_never_deleted_or_renumbered(engine: Engine) -> None:
    with engine.begin() as conn:
        _deliver(conn, 1)
    with pytest.raises(IntegrityError, match="(?i)foreign key"), engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM subscriber WHERE id IN (1, 2)"))
    if engine.dialect.name == "postgresql":  # the triggers' other two guards (SQLite has no TRUNCATE)
        with pytest.raises(IntegrityError, match="(?i)foreign key"), engine.begin() as conn:
            conn.execute(sa.text("UPDATE subscriber SET id = 50 WHERE id = 1"))
        with pytest.raises(IntegrityError, match="(?i)truncate"), engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE subscriber CASCADE"))
    assert _count(engine, "SELECT count(*) FROM subscriber") == 3
    with engine.begin() as conn:  # nobody's deliveries name person 2: deleting them is allowed
        conn.execute(sa.text("DELETE FROM subscriber WHERE id = 2"))
    assert _count(engine, "SELECT count(*) FROM subscriber") == 2


def _blocked(engine: Engine, pid: int) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(sa.text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :p"),
                                 {"p": pid}).scalar())


Step = Callable[[Connection], object]


def _race(engine: Engine, first: Step, second: Step) -> BaseException | None:
    """``first`` runs in an open transaction; ``second`` starts in another while it is open, and must wait for it;
    then ``first`` commits. Returns what ``second`` raised (None when it committed)."""
    outcome: list[BaseException | None] = []
    pid: list[int] = []
    started = threading.Event()

    def run_second() -> None:
        try:
            with engine.begin() as conn:
                pid.append(int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()))
                started.set()
                second(conn)
            outcome.append(None)
        except DBAPIError as exc:
            outcome.append(exc)
        finally:
            started.set()

    with engine.begin() as conn:
        first(conn)
        thread = threading.Thread(target=run_second)
        thread.start()
        assert started.wait(WAIT_S) and pid
        waited = 0.0
        while not _blocked(engine, pid[0]):  # the second statement waits on the first transaction's lock
            assert thread.is_alive() and waited < WAIT_S, "the second transaction did not wait for the first"
            threading.Event().wait(0.02)
            waited += 0.02
    thread.join(WAIT_S)
    assert not thread.is_alive() and len(outcome) == 1
    return outcome[0]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_an_outbox_write_racing_a_delete_of_the_same_person_leaves_no_orphan(engine: Engine) -> None:
    # the write first: the delete waits for it to commit, then sees its row and is refused
    error = _race(engine, lambda c: _deliver(c, 1, 2),
                  lambda c: c.execute(sa.text("DELETE FROM subscriber WHERE id = 2")))
    assert error is not None and "foreign key" in str(error)
    # the delete first: the write waits for it to commit, then finds the person gone and is refused
    error = _race(engine, lambda c: c.execute(sa.text("DELETE FROM subscriber WHERE id = 3")), lambda c: _deliver(c, 3))
    assert error is not None and "foreign key" in str(error)
    assert _count(engine, "SELECT count(*) FROM delivery d WHERE NOT EXISTS "
                          "(SELECT 1 FROM subscriber s WHERE s.id = d.subscriber_id)") == 0
    assert _count(engine, "SELECT count(*) FROM delivery") == 2


def test_migration_0022_down_and_up(pg_url: str) -> None:
    from alembic import command

    engine = make_engine(pg_url)
    upgrade(engine)
    fks = ("SELECT count(*) FROM pg_constraint WHERE conrelid = 'delivery'::regclass AND contype = 'f' "
           "AND conname = 'delivery_subscriber_id_fkey'")
    triggers = ("SELECT count(*) FROM pg_trigger WHERE tgname IN ('delivery_subscriber_added', "
                "'delivery_subscriber_moved', 'subscriber_deliveries_deleted', 'subscriber_deliveries_renumbered', "
                "'subscriber_deliveries_truncated')")
    assert (_count(engine, fks), _count(engine, triggers)) == (0, 5)
    command.downgrade(alembic_config(pg_url), "0021")
    assert (_count(engine, fks), _count(engine, triggers)) == (1, 0)
    upgrade(engine)
    assert (_count(engine, fks), _count(engine, triggers)) == (0, 5)
    engine.dispose()
