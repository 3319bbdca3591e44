"""Write one chunk while the next is parsed: a single writer thread that owns the database connection.

Why: a million-row import spends about half its time in Python (reading and validating lines) and half in
the database (SQLite's B-trees, or the PostgreSQL server). Both drivers let other Python threads run while a
statement executes (sqlite3 around each step, psycopg while it waits on the server), so parsing chunk N+1
beside the writing of chunk N overlaps the two halves on a machine with more than one core.

Order is kept: chunks are written one at a time, in the order they were handed over, by the one thread that
opened the connection (a connection is never shared between threads). An error in the writer stops the
import at the next hand-over, raised in the caller's thread, exactly as when written inline.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Generic, TypeVar

W = TypeVar("W")
T = TypeVar("T")

_STOP = object()


class ChunkPipeline(Generic[W, T]):
    """``flush(writer, item)`` for every submitted item, in order; ``threaded=False`` runs it inline."""

    def __init__(self, open_writer: Callable[[], AbstractContextManager[W]], flush: Callable[[W, T], None], *,
                 threaded: bool) -> None:
        self._open = open_writer
        self._flush = flush
        self._threaded = threaded
        self._error: BaseException | None = None
        # one chunk waiting while one is written: memory stays bounded by three chunks
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        self._inline: AbstractContextManager[W] | None = None
        self._writer: W | None = None

    def __enter__(self) -> ChunkPipeline[W, T]:
        if self._threaded:
            self._thread = threading.Thread(target=self._run, name="csv-import-writer", daemon=True)
            self._thread.start()
        else:
            self._inline = self._open()
            self._writer = self._inline.__enter__()
        return self

    def submit(self, item: T) -> None:
        if not self._threaded:
            self._flush(self._writer, item)  # type: ignore[arg-type]
            return
        self._raise_error()
        self._queue.put(item)

    def close(self) -> None:
        """Wait until everything submitted is written; raise the writer's error, if any."""
        if self._threaded:
            self._stop()
            self._raise_error()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._threaded:
            self._stop()  # the caller's own error (if any) goes on; the writer is stopped either way
            if error is None:
                self._raise_error()
        elif self._inline is not None:
            self._inline.__exit__(kind, error, tb)

    def _stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        try:
            with self._open() as writer:
                while (item := self._queue.get()) is not _STOP:
                    self._flush(writer, item)
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
            while self._queue.get() is not _STOP:  # let the caller's hand-overs through until it stops
                pass


__all__ = ["ChunkPipeline"]
