"""Per-feed polling state: the validators for conditional GET and the health an operator looks at.

It lives in the project's own storage, never in APScheduler's job store: 3.x job stores cannot be
shared between processes, and a takeover scheduler must carry on with the same ETags and counters.
``feeds`` only defines the shape and a memory store; ``alerts`` implements the store on its database.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(slots=True)
class FeedState:
    name: str
    #: Validators from the last fetch whose content was fully used; sent back for a 304.
    etag: str | None = None
    last_modified: str | None = None
    last_success_at: datetime | None = None
    #: The most recent error line; kept after recovery as history (``consecutive_failures`` says health).
    last_error: str | None = None
    last_error_at: datetime | None = None
    #: Polls in a row that got nothing usable; 0 means healthy.
    consecutive_failures: int = 0
    #: HTTP status of the last answer (200, 304, 429, ...); ``None`` when no answer came.
    last_status: int | None = None
    #: Alerts parsed by the last poll that returned content (left as is by a 304).
    alerts_seen: int = 0
    #: Not before this time, except by an operator: set later than one interval by ``Retry-After``.
    next_poll_at: datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.consecutive_failures == 0


@runtime_checkable
class FeedStateStore(Protocol):
    """Where poll state is kept. ``get`` of an unknown feed returns a fresh ``FeedState(name)``."""

    def get(self, name: str) -> FeedState: ...

    def save(self, state: FeedState) -> None: ...


class MemoryFeedStateStore:
    """A process-local store for tests and one-shot ``feeds parse`` runs.

    It hands out copies so that, as with a database, a change counts only once it is saved.
    """

    def __init__(self) -> None:
        self._states: dict[str, FeedState] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> FeedState:
        with self._lock:
            state = self._states.get(name)
            return dataclasses.replace(state) if state is not None else FeedState(name=name)

    def save(self, state: FeedState) -> None:
        with self._lock:
            self._states[state.name] = dataclasses.replace(state)

    def all(self) -> list[FeedState]:
        with self._lock:
            return [dataclasses.replace(s) for s in self._states.values()]
