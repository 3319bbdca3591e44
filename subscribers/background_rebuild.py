"""One background rebuild at a time, for the live indexes (subscribers/live_zone_index.py, live_geoindex.py).

Why a class of its own: both indexes answer from a snapshot corrected by change logs and rebuild that snapshot
on a thread while the old one goes on answering; the rule "one rebuild at a time, and none for a snapshot already
replaced" and the wait used by tests and benchmarks are the same for both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundRebuild:
    """A daemon thread named ``name`` running a rebuild, started only when none is running."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self, build: Callable[[], None], *, replaced: Callable[[], bool],
              on_start: Callable[[], None] | None = None) -> None:
        """Run ``build`` on a thread of its own, unless one is running or ``replaced()`` says the snapshot the
        caller saw was replaced already (a rebuild that ended while it looked at the change log). ``on_start``
        runs under the same lock just before the thread starts."""
        with self._lock:
            if replaced() or (self._thread is not None and self._thread.is_alive()):
                return
            if on_start is not None:
                on_start()
            self._thread = threading.Thread(target=build, name=self.name, daemon=True)
            self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Wait for a rebuild in progress (if any) to end; False if it is still running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True
