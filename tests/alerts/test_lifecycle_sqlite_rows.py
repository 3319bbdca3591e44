"""The lifecycle's SQLite fast paths (rows handed to the driver) store exactly what SQLAlchemy's path stores.

Each write runs on two fresh databases holding the same alerts, once driver-direct and once through
SQLAlchemy; the stored text must be identical, and the ORM must read the rows back as they were given.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

import subscribers.all_models  # noqa: F401  (every table, so the migration's metadata is complete)
from alerts.db import make_engine, upgrade
from alerts.ingest import _insert_core, _values
from alerts.lifecycle import insert_references, set_record_threads
from alerts.models import AlertRecord, AlertReference, AlertThread
from feeds.model import Alert

NOW = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
SENTS = [
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=9))),
    datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-14))),
    datetime(999, 3, 4, 5, 6, 7, 8, tzinfo=UTC),
]


def _engine(path: Path) -> tuple[Engine, list[int]]:
    """A fresh database with a few alerts and two threads; returns the alert ids."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    alerts = [Alert(sender="kma@kma.go.kr", identifier=f"a-{n}", sent=sent) for n, sent in enumerate(SENTS)]
    with Session(engine) as session:
        ids = _insert_core(session.connection(), [_values(a.key(), a, None, "f", NOW) for a in alerts])
        session.add_all([AlertThread(key="k1", opened_at=NOW), AlertThread(key=None, opened_at=NOW)])
        session.commit()
    return engine, [ids[a.key()] for a in alerts]


def _text(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return list(connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id"))


def _both(tmp_path: Path, write: Callable[[Connection, list[int], bool], None], table: str) -> Engine:
    stored = []
    for direct in (True, False):
        engine, ids = _engine(tmp_path / f"{direct}.db")
        with Session(engine) as session:
            write(session.connection(), ids, direct)
            session.commit()
        stored.append(_text(engine, table))
    assert stored[0] == stored[1]
    assert stored[0]  # the write did write
    return engine


def test_set_record_threads_direct_matches_sqlalchemy(tmp_path: Path) -> None:
    def write(connection: Connection, ids: list[int], direct: bool) -> None:
        set_record_threads(connection, [(ids[0], 1), (ids[1], 2), (ids[3], 1)], direct=direct)

    engine = _both(tmp_path, write, "alert")
    with Session(engine) as session:
        threads = {r.identifier: r.thread_id for r in session.exec(select(AlertRecord))}
    assert threads == {"a-0": 1, "a-1": 2, "a-2": None, "a-3": 1}


@pytest.mark.parametrize("sent", SENTS)
def test_insert_references_direct_matches_sqlalchemy(tmp_path: Path, sent: datetime) -> None:
    rows = [(0, "kma@kma.go.kr", "orig-1", sent.astimezone(UTC)), (1, "nws@noaa.gov", "x,y", SENTS[0]),
            (0, "s", "orig-2", sent.astimezone(UTC) + timedelta(microseconds=1))]

    def write(connection: Connection, ids: list[int], direct: bool) -> None:
        insert_references(connection, [(ids[i], s, ident, t) for i, s, ident, t in rows], direct=direct)

    engine = _both(tmp_path, write, "alert_reference")
    with Session(engine) as session:
        read = [(r.ref_sender, r.ref_identifier, r.ref_sent) for r in
                session.exec(select(AlertReference).order_by(AlertReference.id))]
    assert read == [(s, ident, t) for _, s, ident, t in rows]
    assert all(t.tzinfo is UTC for _, _, t in read)
