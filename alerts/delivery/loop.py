"""The dispatch loop of ``alimcast run``: one thread that sends continuously, apart from the feed jobs.

Why a thread of its own: when the job that polls a feed also drained the outbox, a national fan-out at the
provider's pace kept that job running for minutes, and the scheduler skipped the feed's polls meanwhile
("maximum number of running instances reached"). Now the feed jobs poll, ingest and match only; this loop
sends one batch at a time, claiming the highest priority at every claim (so a tsunami warning queued during a
bulk send goes in the next request), and sleeps only when nothing is due, until a match wakes it
(``wake``) or ``idle_seconds`` pass (retries, expired leases of dead workers, quiet hours ending).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from alerts.delivery.dispatch import Dispatcher, DispatchReport

log = logging.getLogger("alimcast.dispatch")


class DispatchLoop:
    def __init__(self, dispatcher: Dispatcher, send_one: Callable[[], DispatchReport], wake: threading.Event, *,
                 idle_seconds: float = 1.0) -> None:
        """``send_one`` sends what is due (the pipeline's ``dispatch``: ``dispatch_due`` with logging, a batch
        claimed at a time, each at the highest priority then queued)."""
        self.dispatcher = dispatcher
        self.send_one = send_one
        self.wake = wake
        self.idle_seconds = idle_seconds
        self._thread = threading.Thread(target=self._run, name="dispatch-loop", daemon=True)
        self.sent = DispatchReport()

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop claiming; a wait for the rate ends at once. A request in flight is given ``timeout`` seconds to
        end; if it does not, it is left in flight: its batch keeps its key and lease, and a worker re-sends it
        under that key once the lease runs out (the provider refuses the key if the first send arrived).
        Returns whether the loop ended."""
        self.dispatcher.stop.set()
        self.dispatcher.window.wake()
        self.wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("stopping with a request still in flight: its batch stays safe under its key")
            return False
        return True

    def _run(self) -> None:
        stop = self.dispatcher.stop
        while not stop.is_set():
            self.wake.clear()
            try:
                step = self.send_one()
            except Exception:  # noqa: BLE001 - a database hiccup must not end sending for good
                log.exception("dispatch failed; trying again in %.0f s", self.idle_seconds)
                stop.wait(self.idle_seconds)
                continue
            self.sent.add(step)
            if step.stopped or (step.claimed == 0 and step.suppressed == 0):
                # nothing due (or the provider refused our configuration): wait for a match or the next look
                self.wake.wait(self.idle_seconds)
