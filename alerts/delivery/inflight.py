"""The threads behind a dispatcher's requests in flight: the threads that send, and the one that renews leases.

Why threads kept between batches, not a thread (or two) started per batch: profiled with the loopback provider
in a process of its own, starting the request's thread and its lease's renewal thread for every batch of 1,000
cost the dispatcher milliseconds per batch (each start waits until the new thread has run, which on a busy
process means waiting for the GIL), a tenth of the whole work of a batch. Both kinds of thread are daemons
(a stopping process is never held up by a request in flight: its key keeps it safe) and end once idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("alimcast.dispatch")

#: A thread with nothing to do for this long (seconds) ends; the next request starts a new one.
IDLE_EXIT = 5.0
#: How long the end of a request waits for a renewal of its lease under way.
EXIT_WAIT = 5.0


class SendThreads:
    """Runs each job on a waiting thread at once, or on a new one when none waits: as many jobs run at the
    same time as are given (a request in flight never waits behind another one)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Condition()
        self._jobs: deque[Callable[[], None]] = deque()
        #: Threads waiting for a job (each job given finds one of these, or a new thread).
        self._waiting = 0

    def run(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.append(job)
            if self._waiting >= len(self._jobs):
                self._lock.notify()
                return
        threading.Thread(target=self._work, name=self.name, daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._waiting += 1
                    try:
                        woken = self._lock.wait(IDLE_EXIT)
                    finally:
                        self._waiting -= 1
                    if not woken and not self._jobs:
                        return
                job = self._jobs.popleft()
            try:
                job()  # a request hands its errors to the dispatcher's _finish
            except Exception:  # noqa: BLE001 - a job's own bug: logged, and the thread serves the next one
                log.exception("a dispatch thread's job failed")
            # not kept while waiting for the next job: a finished request's closure holds its whole batch (a
            # thousand messages and outcomes), which stayed alive up to IDLE_EXIT after the round ended
            del job


class LeaseRenewals:
    """The leases of the batches in flight, renewed by one thread every ``interval()`` seconds, so a short
    lease never runs out under a live sender (a slow provider, retries) but does soon after its death.

    When :meth:`holding` ends, a renewal of that key still running is waited for (at most ``EXIT_WAIT``, as the
    thread per batch was joined before) and none comes after it: a batch whose outcome was unknown gets a
    longer lease of its own next, which a late renewal would cut short. Starting to hold never waits for the
    database (the request waits for it)."""

    def __init__(self, renew: Callable[[str], object], interval: Callable[[], float]) -> None:
        self.renew = renew
        self.interval = interval
        #: Guards the keys and the thread (held only for a moment).
        self._lock = threading.Lock()
        #: Held by the thread while it renews.
        self._renewing = threading.Lock()
        self._keys: Counter[str] = Counter()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, key: str) -> Iterator[None]:
        with self._lock:
            self._keys[key] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lease-renewal", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._keys[key] -= 1
                if self._keys[key] <= 0:
                    del self._keys[key]
            if self._renewing.acquire(timeout=EXIT_WAIT):  # a renewal under way ends first
                self._renewing.release()

    def _run(self) -> None:
        idle = 0.0
        while True:
            time.sleep(self.interval())
            with self._lock:
                keys = list(self._keys)
                if not keys:
                    idle += self.interval()
                    if idle >= IDLE_EXIT:
                        self._thread = None  # the next batch starts another
                        return
                    continue
                idle = 0.0
            with self._renewing:
                for key in keys:
                    with self._lock:
                        if key not in self._keys:
                            continue  # its request ended meanwhile
                    try:
                        self.renew(key)
                    except Exception:  # noqa: BLE001 - the next renewal may work; the key keeps it safe meanwhile
                        log.warning("could not renew the lease of batch %s", key, exc_info=True)
