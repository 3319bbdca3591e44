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
        #: On ``clock``: the earliest start of the next request (the schedule, or ``PACE`` of a share after the
        #: last start when that is later).
        self._next = float("-inf")
        #: On ``clock``: the schedule's time for the next request; None until the first request of a round.
        self._due: float | None = None

    def afresh(self) -> None:
        """The dispatcher had nothing to send: its next request begins a new schedule (the earliest start
        :meth:`delay` gives is kept)."""
        with self._lock:
            self._due = None

    def started(self, recipients: int) -> None:
        """A request of ``recipients`` took its place in the window now.

        The schedule moves on by a share (``recipients / rate``) per request. Started on time, the next may
        start a whole share after this one (the spread the window then keeps); started late (its room came late,
        its preparation overran), the next ones catch up with the schedule, down to ``PACE`` of a share apart.
        The first request after :meth:`afresh` begins a new schedule at its own start: a fresh fan-out's batches
        are a whole share apart, not ``PACE`` of one (that uneven spread would be kept for good).

        Why the schedule is kept apart from the earliest start, and why only a round with nothing to send starts
        it afresh: the window lets each place be taken again a second after its last request, so a batch that
        starts late shifts its place for good. Measured at 2,000/s (a scratch probe of the window over a 60 s
        fan-out), when a late start began the schedule afresh (or moved it to ``PACE`` of a share after the
        late start): stalls of about 0.1 s (an answer the dispatcher waited for, held by the loopback provider's
        garbage collection), a few a minute, each left the next seven batches' places empty for 80 ms, 0.35% of
        the rate in all. Caught up, each place after the stalled one shifts by a fifth of a share less than
        the one before."""
        share = recipients / self.rate
        with self._lock:
            now = self._clock()
            self._due = (now if self._due is None else self._due) + share
            self._next = max(self._due, now + self.fraction * share)

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
