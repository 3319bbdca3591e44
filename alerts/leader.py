"""Which process polls the feeds when several ``alimcast run`` share one PostgreSQL database.

APScheduler 3 cannot share a job store between processes, so two workers would each poll every feed.
Instead every worker dispatches (the outbox is claimed with SKIP LOCKED), and only the holder of a
PostgreSQL advisory lock, taken on a connection kept open for the purpose, polls. When that process
dies its connection closes, the lock is released, and the next worker to ask takes over. SQLite
deployments are one process: the lease is always held.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("alimcast.leader")

#: The advisory lock key: "alim" in ASCII.
LOCK_KEY = 0x616C696D
#: The transaction lock matching takes on PostgreSQL ("almm"), so two workers never fan out one alert twice.
MATCH_LOCK_KEY = 0x616C6D6D


class PollingLease:
    def __init__(self, engine: Engine, key: int = LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.shared = engine.dialect.name == "postgresql"

    def held(self) -> bool:
        """True when this process should poll; tries to take the lease when it has none."""
        if not self.shared:
            return True
        with self._lock:
            if self._conn is not None and self._alive():
                return True
            self._drop()
            conn = self.engine.connect()
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            conn.commit()
            if not got:
                conn.close()
                return False
            self._conn = conn
            log.info("this process now polls the feeds (advisory lock %#x)", self.key)
            return True

    def holding(self) -> bool:
        """Whether this process holds the lease now, without trying to take it (for the worker registry)."""
        return not self.shared or self._conn is not None

    def _alive(self) -> bool:
        assert self._conn is not None
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:  # noqa: BLE001 - a dead connection means the lease is gone
            log.warning("lost the polling lease (database connection closed)")
            return False

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                    self._conn.commit()
                except Exception:  # noqa: BLE001 - closing releases it anyway
                    pass
            self._drop()
