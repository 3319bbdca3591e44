"""The provider's per-second limit, kept exactly: a sliding window over our own requests.

A warning is throttled, never dropped: :meth:`SendWindow.acquire` waits for room instead of refusing.

Why not a token bucket: a bucket of capacity ``r`` that is full lets ``r`` recipients go at once and then
refills at ``r``/s, so some rolling second can hold up to ``2r`` (a full bucket plus its refill); and a
process that starts with a full bucket assumes the previous process was idle. Both were measured as 429s.

The rule. The provider counts a request when it *arrives*, at some unknown instant between the moment we
start it and the moment its response ends. A request of ``n`` recipients may start at time ``t`` only if::

    n + sum(recipients of every earlier request still in flight, or answered after t - 1 s) <= rate

where a request is "answered" when its answer *began* to arrive (the status line: the provider answers only
after the request arrived); the time we then spend reading and parsing the answer's body is not counted.

Proof that no rolling second at the provider holds more than ``rate``: take any window ``[w, w + 1)`` and
the set ``S`` of requests arriving in it; let ``B`` be the one of them that started last, at ``t_B``. For any
other ``A`` in ``S``: ``A`` started before ``t_B``, and its response ended at ``e_A >= a_A >= w`` (it arrived
before it was answered), while ``t_B <= a_B < w + 1`` (``B`` arrived after it started). So
``e_A + 1 >= w + 1 > t_B``: at ``t_B``, ``A`` was still in flight or had ended less than a second before, and
was counted. ``B`` started only because the counted total, ``B`` included, was at most ``rate``; so
``S`` holds at most ``rate``. The proof needs nothing about the provider's latency or clock.

Corollaries the dispatcher relies on: one request never carries more than one second of the rate (else it
could never start); the burst is at most one second of the rate; and :meth:`SendWindow.seed` lets a starting
process count what was sent in the last second by anyone (read from the outbox) instead of assuming idleness.

Its price: each recipient holds its place for its request's latency plus one second, so sequential
requests reach ``rate / (1 + latency)``; smaller batches keep the latency (and the price) small. "Latency"
is only what must be counted: the request is built and encoded before its place is taken, and its place
stops counting as in flight when the answer begins to arrive, not when we have read and parsed it
(:class:`~alerts.delivery.providers.base.PreparedSend`). Why not count from the start plus a bound on the
latency: no bound holds on a loaded machine or network (a sender paused after taking its place, a request
queued at the provider), and the test suite shows counting from the start exceeding the rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class Ticket:
    """One request's place in the window: ``ended`` is None while it may still arrive at the provider."""

    recipients: int
    ended: float | None = None


class SendWindow:
    """Thread-safe: several sending threads of one process share one window (one provider account)."""

    def __init__(self, rate_per_second: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate = rate_per_second
        # Recipients are whole: at rate >= 1 at most floor(rate) in a second; below 1/s, one per 1/rate s.
        self.capacity = max(1, math.floor(rate_per_second))
        self.span = 1.0 if rate_per_second >= 1 else 1.0 / rate_per_second
        self._clock = clock
        self._tickets: list[Ticket] = []
        self._cond = threading.Condition()

    # -- accounting ---------------------------------------------------------------------------------
    def _used(self, now: float, lead: float = 0.0) -> tuple[int, float | None]:
        """Recipients counted at ``now + lead`` (as far as known at ``now``: what is in flight still counts), and
        when the earliest ended ticket counted then stops counting."""
        self._tickets = [t for t in self._tickets if t.ended is None or t.ended + self.span > now]
        counted = [t for t in self._tickets if t.ended is None or t.ended + self.span > now + lead]
        used = sum(t.recipients for t in counted)
        ends = [t.ended + self.span for t in counted if t.ended is not None]
        return used, (min(ends) if ends else None)

    def now(self) -> float:
        """The window's clock (monotonic seconds), for :meth:`seed`."""
        return self._clock()

    def used(self) -> int:
        with self._cond:
            return self._used(self._clock())[0]

    def seed(self, recipients: int, ended_at: float) -> None:
        """Count ``recipients`` sent by someone else (a previous process) whose request ended at ``ended_at``
        (on this window's clock; ``ended_at`` in the future counts them as in flight until then)."""
        if recipients > 0:
            with self._cond:
                self._tickets.append(Ticket(recipients, ended_at))

    # -- the request's life ------------------------------------------------------------------------
    def acquire(self, recipients: int, stop: threading.Event | None = None) -> Ticket | None:
        """Wait until a request of ``recipients`` may start and take its place (in flight).

        Returns None, having taken nothing, when ``stop`` is set meanwhile (checked at least every 0.2 s)."""
        if recipients > self.capacity:
            raise ValueError(f"a request of {recipients} recipients exceeds one second of the rate "
                             f"({self.capacity})")
        with self._cond:
            while True:
                if stop is not None and stop.is_set():
                    return None
                now = self._clock()
                used, next_free = self._used(now)
                if used + recipients <= self.capacity:
                    ticket = Ticket(recipients)
                    self._tickets.append(ticket)
                    return ticket
                # an ended ticket frees room at a known time; an in-flight one notifies when it ends
                pause = 0.2 if next_free is None else min(0.2, max(0.0, next_free - now))
                self._cond.wait(pause or 0.001)

    def wait_for_room(self, recipients: int, stop: threading.Event | None = None, *, lead: float = 0.0) -> bool:
        """Wait until a request of ``recipients`` could start within ``lead`` seconds, taking nothing (the caller
        prepares its request and then acquires it, so its preparation does not hold a place; with ``lead`` about
        the preparation's length, the place is not left empty meanwhile either). False when ``stop`` is set.
        Only a hint: :meth:`acquire` alone enforces the rule."""
        recipients = min(recipients, self.capacity)
        with self._cond:
            while True:
                if stop is not None and stop.is_set():
                    return False
                now = self._clock()
                used, next_free = self._used(now, lead)
                if used + recipients <= self.capacity:
                    return True
                pause = 0.2 if next_free is None else min(0.2, max(0.0, next_free - lead - now))
                self._cond.wait(pause or 0.001)

    def room_within(self, recipients: int, lead: float) -> bool:
        """Whether a request of ``recipients`` could start within ``lead`` seconds, as far as known now (what is
        in flight still counts): a look, without waiting or taking anything."""
        recipients = min(recipients, self.capacity)
        with self._cond:
            return self._used(self._clock(), lead)[0] + recipients <= self.capacity

    def finish(self, ticket: Ticket, *, ago: float = 0.0) -> None:
        """The request was answered (or it failed): it counts for one more second from its answer, which began
        to arrive ``ago`` seconds before now (0: now). Only a moment at or after the request's arrival at the
        provider may be given: the provider's answer (its status line) is one, our parsing of its body after
        it needs not be counted (:class:`~alerts.delivery.providers.base.PreparedSend`)."""
        with self._cond:
            if ticket.ended is None:
                ticket.ended = self._clock() - max(0.0, ago)
            self._cond.notify_all()

    def cancel(self, ticket: Ticket) -> None:
        """No request was made under this ticket: give its place back at once."""
        with self._cond:
            if ticket in self._tickets:
                self._tickets.remove(ticket)
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiting threads re-check their ``stop`` event now."""
        with self._cond:
            self._cond.notify_all()

    def in_flight(self) -> int:
        """Recipients of this process's requests not answered yet (for the worker registry)."""
        with self._cond:
            return sum(t.recipients for t in self._tickets if t.ended is None)
