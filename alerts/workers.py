"""The worker registry: which ``alimcast run`` processes are alive, what each holds, and which one polls.

Several workers on one PostgreSQL database share the outbox and the account's rate; an operator in a storm
needs to see them at a glance (``alimcast workers status``). Each process writes its own row in ``worker``
and refreshes it every ``HEARTBEAT_SECONDS`` from a thread of its own; a row whose heartbeat is older than
``STALE_AFTER`` belongs to a process that died (kill -9, lost host) and is shown as such. Heartbeats are
best-effort: a database restart only skips some, and the next one writes the row again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alerts.models import Delivery, WorkerRow
from subscribers.sqltypes import utcnow

log = logging.getLogger("alimcast.workers")

HEARTBEAT_SECONDS = 2.0
#: A worker whose heartbeat is older than this is shown dead.
STALE_AFTER = timedelta(seconds=10)
#: Rows of workers gone longer than this are deleted by the next worker to start.
FORGET_AFTER = timedelta(days=1)


def worker_id(started: datetime) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{started.strftime('%Y%m%dT%H%M%S')}"


class Heartbeat:
    """One process's row in ``worker``, refreshed every ``HEARTBEAT_SECONDS`` until :meth:`stop`.

    ``polls`` and ``in_flight``/``sent`` are read at every beat: whether this process holds the polling
    lease, how many recipients it has in flight, how many it has had accepted."""

    def __init__(self, engine: Engine, *, polls: Callable[[], bool], in_flight: Callable[[], int],
                 sent: Callable[[], int], interval: float = HEARTBEAT_SECONDS) -> None:
        self.engine = engine
        self.started = utcnow()
        self.id = worker_id(self.started)
        self.polls = polls
        self.in_flight = in_flight
        self.sent = sent
        self.interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> bool:
        """Write this process's row now; False (logged) when the database could not be reached."""
        now = utcnow()
        try:
            with Session(self.engine) as session:
                if self._thread.is_alive() is False and not self._done.is_set():
                    session.exec(delete(WorkerRow).where(col(WorkerRow.heartbeat_at) < now - FORGET_AFTER))
                row = session.get(WorkerRow, self.id) or WorkerRow(
                    id=self.id, host=socket.gethostname(), pid=os.getpid(), started_at=self.started,
                    heartbeat_at=now)
                row.heartbeat_at = now
                row.polls = bool(self.polls())
                row.holds = int(self.in_flight())
                row.sent = int(self.sent())
                row.stopped_at = now if self._done.is_set() else None
                session.add(row)
                session.commit()
            return True
        except Exception:  # noqa: BLE001 - a restarting database: the next beat writes it again
            log.warning("worker heartbeat not written (database unavailable?)", exc_info=log.isEnabledFor(10))
            return False

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.beat()  # marks the row stopped

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.beat()


@dataclass(slots=True)
class WorkerStatus:
    id: str
    host: str
    pid: int
    started_at: str
    heartbeat_at: str
    heartbeat_age_seconds: float
    state: str
    polls: bool
    in_flight: int
    sent: int

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(slots=True)
class FleetStatus:
    workers: list[WorkerStatus]
    #: The outbox's rows in flight (``sending``) and queued, over all workers.
    sending: int
    queued: int

    @property
    def poller(self) -> str | None:
        live = [w.id for w in self.workers if w.polls and w.state == "alive"]
        return live[0] if live else None

    def as_json(self) -> dict[str, object]:
        return {"workers": [w.as_json() for w in self.workers], "poller": self.poller,
                "outbox": {"sending": self.sending, "queued": self.queued}}


def fleet_status(engine: Engine, *, now: datetime | None = None, include_stopped: bool = True) -> FleetStatus:
    now = now or utcnow()
    with Session(engine) as session:
        rows = list(session.exec(select(WorkerRow).order_by(col(WorkerRow.started_at))))
        counts = dict(session.exec(select(Delivery.status, func.count()).where(
            col(Delivery.status).in_(("sending", "queued"))).group_by(Delivery.status)).all())
    workers: list[WorkerStatus] = []
    for row in rows:
        age = (now - row.heartbeat_at).total_seconds()
        state = "stopped" if row.stopped_at is not None else ("dead" if age > STALE_AFTER.total_seconds()
                                                               else "alive")
        if state == "stopped" and not include_stopped:
            continue
        workers.append(WorkerStatus(id=row.id, host=row.host, pid=row.pid, started_at=row.started_at.isoformat(),
                                    heartbeat_at=row.heartbeat_at.isoformat(), heartbeat_age_seconds=round(age, 1),
                                    state=state, polls=row.polls and state == "alive", in_flight=row.holds,
                                    sent=row.sent))
    return FleetStatus(workers, int(counts.get("sending", 0)), int(counts.get("queued", 0)))
