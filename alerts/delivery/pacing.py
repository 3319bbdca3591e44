"""Batches spread over the second: an urgent warning finds room within a fraction of a second, not a whole one.

Why (measured with ``benchmarks/bench_send_rate.py``, a bulk send at 1,000/s, batches of 250): the window
(:mod:`alerts.delivery.rate`) let the four batches of a second start together, as soon as the four of the
second before stopped counting; those four then stopped counting together a second later, and so on. The window
was full for about 0.9 s of every second and free for a few milliseconds. A tsunami warning matched just after
such a burst waited about 0.9 s for room (0.97 and 0.99 s in two of five trials), one matched just before it went
at once (0.04 s): a median of luck, no margin.

The rule: the requests of this dispatcher keep to a schedule of one share of a second (``n / rate`` for a request
of ``n``) apart, and a request that started late lets the next catch up, but never closer than ``PACE`` of a share
after it (:meth:`Pacer.started`). The window alone still decides whether a request may start (its rule, counted on the
provider's side, is untouched); pacing only delays, so it can never make us exceed the rate. At the window's own
pace (a batch every ``n / rate`` seconds plus that share of the latency) pacing does not hold anything back, so a
long fan-out loses nothing; it only keeps the batches of one second from bunching up, and, once spread, they stay
spread (each takes the place the batch a second before it frees): with eight batches a second (``BATCH_SECONDS``
in alerts/delivery/dispatch.py) the window stays full for about an eighth of a second at a time. Disturbances
may shift them, but never closer than ``PACE`` of a share: at worst (0.8) the window stays full for about 0.3 s
(one second minus seven paces), not 0.95 s.

Why a schedule with catch-up, not a plain minimum gap: with a gap of exactly a share, a batch whose start ran
late (a match holding the database, a garbage collection, a thread woken late) would push every following batch
back, which costs rate; with a plain gap of ``PACE`` of a share, the first second's batches would be spread
unevenly (0.2, 0.2, 0.2 and 0.4 s apart) and the window would keep that pattern for good. The schedule spreads
them evenly, and a late start is made up by the next batches, down to ``PACE`` of a share apart.

Pacing is per dispatcher (per process): several workers sharing one account through PostgreSQL
(:mod:`alerts.delivery.shared_rate`) each spread their own batches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: A request starts at least this fraction of its own share of a second (``n / rate``) after the previous one.
PACE = 0.8


class Pacer:
    """When this dispatcher's next request may start (thread-safe: the request threads report their starts)."""

    def __init__(self, rate_per_second: float, *, fraction: float = PACE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate = rate_per_second
        self.fraction = fraction
        self._clock = clock
        self._lock = threading.Lock()
        #: On ``clock``: the earliest start of the next request.
        self._next = float("-inf")

    def started(self, recipients: int) -> None:
        """A request of ``recipients`` took its place in the window now.

        The next may start a whole share (``recipients / rate``) after the time this one was allowed: started on
        time, the batches are a share apart (the spread the window then keeps); started late by ``d`` (its room
        came late, its preparation overran), the next one catches up, down to ``PACE`` of a share after this one.
        After a pause longer than a share (idle, or held by the window for long), the schedule starts afresh."""
        share = recipients / self.rate
        with self._lock:
            now = self._clock()
            if now - self._next > share:
                self._next = now + share
            else:
                self._next = max(self._next + share, now + self.fraction * share)

    def delay(self, lead: float = 0.0) -> float:
        """Seconds until a request could start within ``lead`` seconds (0 when it already could)."""
        with self._lock:
            return max(0.0, self._next - lead - self._clock())

    def wait(self, stop: threading.Event | None = None, *, lead: float = 0.0) -> bool:
        """Wait until a request could start within ``lead`` seconds; False (at once) when ``stop`` is set."""
        while True:
            if stop is not None and stop.is_set():
                return False
            pause = self.delay(lead)
            if pause <= 0:
                return True
            if stop is None:
                time.sleep(pause)
            else:
                stop.wait(pause)
