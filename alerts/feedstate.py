"""The database implementation of feeds.state.FeedStateStore (one row per feed)."""

from __future__ import annotations

import contextlib
import dataclasses
import threading

from sqlalchemy.engine import Engine

from alerts.db import session_scope
from alerts.models import FeedStateRow
from feeds.state import FeedState

FIELDS = [f.name for f in dataclasses.fields(FeedState)]


class DbFeedStateStore:
    def __init__(self, engine: Engine, lock: threading.RLock | None = None) -> None:
        self.engine = engine
        #: The pipeline's writer lock: a save waits its turn there, not in SQLite's coarse busy sleeps
        #: (which a busy dispatcher's many short transactions could make last seconds).
        self.lock = lock

    def get(self, name: str) -> FeedState:
        with session_scope(self.engine) as session:
            row = session.get(FeedStateRow, name)
            if row is None:
                return FeedState(name=name)
            return FeedState(**{f: getattr(row, f) for f in FIELDS})

    def save(self, state: FeedState) -> None:
        with self.lock or contextlib.nullcontext(), session_scope(self.engine) as session:
            row = session.get(FeedStateRow, state.name) or FeedStateRow(name=state.name)
            for f in FIELDS:
                setattr(row, f, getattr(state, f))
            session.add(row)

    def all(self) -> list[FeedState]:
        from sqlmodel import select

        with session_scope(self.engine) as session:
            rows = session.exec(select(FeedStateRow).order_by(FeedStateRow.name))
            return [FeedState(**{f: getattr(r, f) for f in FIELDS}) for r in rows]
