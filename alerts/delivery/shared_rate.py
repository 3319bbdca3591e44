"""One provider account, one rate, however many workers: the send window kept in PostgreSQL.

Each ``alimcast run`` kept its own :class:`~alerts.delivery.rate.SendWindow`, so three workers on one account
attempted up to three times its rate and the provider refused the excess with 429. The rule stays exactly
the one proved in :mod:`alerts.delivery.rate` (a request of ``n`` may start only if ``n`` plus everything in
flight or answered less than a second ago is at most the rate); only the set of requests it is counted over
is now every worker's, in the table ``send_reservation``:

* a request's place is taken in a short transaction under a transaction-scoped advisory lock (so two workers
  never both see the same room), and counts until ``counts_until``;
* while in flight, ``counts_until`` is kept ahead of the database clock by the request's longest single
  attempt plus a second (renewed every ``RENEW_EVERY`` by one thread per process), so a worker that dies
  mid-request keeps counting until its request can no longer arrive, and a database outage (no renewal)
  cannot make a live request stop counting before it could have ended;
* once answered, ``counts_until`` is the answer's time plus one second (the window's span).

Every time is the database's ``clock_timestamp()``: workers on several hosts need no synchronised clocks.
Fair shares come for free: whoever asks when there is room takes it. A worker waiting for room sleeps until
the moment room is known to free (an answered request's ``counts_until``: exact, no polling interval lost)
and, while every place counted is still in flight, looks again every ``POLL_SECONDS``: a request in flight
frees its place a second after its answer at the earliest, so learning of its answer that late costs no
rate, and idle workers do not spend the CPU the senders need (measured: eight workers polling every 50 ms
on two cores).

SQLite deployments are one process: they keep the in-process window (:func:`window_for`).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine

from alerts.config import Config
from alerts.delivery.rate import SendWindow

log = logging.getLogger("alimcast.rate")

#: The advisory lock taken (per transaction) around a reservation: "alrt".
RATE_LOCK_KEY = 0x616C7274
#: How often a worker renews the places of its requests in flight.
RENEW_EVERY = 1.0
#: Longest wait between two looks at the table while waiting for room when every place counted is in flight
#: (their room frees a second after their answers at the earliest).
POLL_SECONDS = 0.2
#: Longest wait between two looks when the moment room frees is known (a place given back early, a request
#: cancelled before it was made, is noticed within this).
KNOWN_POLL_SECONDS = 0.5
#: Rows that stopped counting longer ago than this are deleted (a little history for ``workers status``).
KEEP_SECONDS = 60
#: A database error while taking a place is retried for this long before the dispatcher is told.
OUTAGE_SECONDS = 30.0


@dataclass(slots=True, eq=False)
class SharedTicket:
    """One request's row in ``send_reservation``; ``ended`` is None while it may still arrive."""

    recipients: int
    id: int
    ended: float | None = None


class SharedSendWindow:
    """The :class:`SendWindow` interface over the table ``send_reservation`` (PostgreSQL)."""

    def __init__(self, engine: Engine, rate_per_second: float, *, attempt_seconds: float = 10.0,
                 worker: str | None = None) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.engine = engine
        self.rate = rate_per_second
        self.capacity = max(1, math.floor(rate_per_second))
        self.span = 1.0 if rate_per_second >= 1 else 1.0 / rate_per_second
        #: An in-flight place counts at least this far ahead of the last renewal: one attempt can last
        #: ``attempt_seconds`` (the HTTP timeout), then its answer counts ``span`` more.
        self.hold = max(attempt_seconds, 2 * RENEW_EVERY) + self.span
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self._flying: dict[int, SharedTicket] = {}
        #: Ended tickets whose end could not be written yet (database down): retried by the renewer.
        self._unwritten: dict[int, SharedTicket] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._renewer: threading.Thread | None = None
        self._pruned = 0.0
        #: Threads waiting in :meth:`acquire` (the renewal thread stays alive for them).
        self._acquiring = 0

    # -- the SendWindow interface ---------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic()

    def seed(self, recipients: int, ended_at: float) -> None:
        """Nothing to seed: the table already holds what every worker sent in the last second."""

    def used(self) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(text("SELECT coalesce(sum(recipients), 0) FROM send_reservation "
                                         "WHERE counts_until > clock_timestamp()")).scalar_one())

    def acquire(self, recipients: int, stop: threading.Event | None = None) -> SharedTicket | None:
        """Wait until a request of ``recipients`` may start and take its place; None when ``stop`` is set."""
        if recipients > self.capacity:
            raise ValueError(f"a request of {recipients} recipients exceeds one second of the rate "
                             f"({self.capacity})")
        # the renewal thread is started before the place is taken: starting a thread waits for it to run, and
        # that wait must not fall between the place and the request (it would count as time in flight)
        with self._lock:
            self._acquiring += 1
        try:
            self._ensure_renewer()
            return self._wait(recipients, stop, take=True)
        finally:
            with self._lock:
                self._acquiring -= 1

    def wait_for_room(self, recipients: int, stop: threading.Event | None = None, *, lead: float = 0.0) -> bool:
        """As :meth:`SendWindow.wait_for_room`: room within ``lead`` seconds; a hint, :meth:`acquire` enforces."""
        return self._wait(min(recipients, self.capacity), stop, take=False, lead=lead) is not None

    def room_within(self, recipients: int, lead: float) -> bool:
        """As :meth:`SendWindow.room_within`: one look at the table. A database error says yes (the caller then
        only skips a wait)."""
        try:
            return self._try(min(recipients, self.capacity), False, lead)[0] is not None
        except Exception:  # noqa: BLE001 - a hint only; the next wait for room handles the outage
            return True

    def finish(self, ticket: SharedTicket, *, ago: float = 0.0) -> None:  # type: ignore[override]
        """The request's answer came ``ago`` seconds ago (or it failed): it counts one more second from then
        (see :meth:`SendWindow.finish`). Never raises: an end that cannot be written keeps counting as in
        flight (renewed) until it can."""
        if ticket.ended is not None:
            return
        ticket.ended = time.monotonic() - max(0.0, ago)
        with self._lock:
            self._flying.pop(ticket.id, None)
            self._unwritten[ticket.id] = ticket
        self._write_ends()
        self._wake.set()  # a thread of this process waiting for room learns when this place frees
        self._prune()

    def cancel(self, ticket: SharedTicket) -> None:  # type: ignore[override]
        with self._lock:
            self._flying.pop(ticket.id, None)
        try:
            with self.engine.begin() as conn:
                conn.execute(text("DELETE FROM send_reservation WHERE id = :id"), {"id": ticket.id})
        except Exception:  # noqa: BLE001 - it then counts until it expires: safe, only slower
            log.warning("could not give back send place %s", ticket.id, exc_info=True)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def in_flight(self) -> int:
        """Recipients of this process's requests not answered yet (for the worker registry)."""
        with self._lock:
            return sum(t.recipients for t in self._flying.values())

    # -- the table ------------------------------------------------------------------------------
    def _wait(self, recipients: int, stop: threading.Event | None, *, take: bool,
              lead: float = 0.0) -> SharedTicket | bool | None:
        failing_since: float | None = None
        while True:
            if stop is not None and stop.is_set():
                return None
            try:
                got, pause = self._try(recipients, take, 0.0 if take else lead)
                failing_since = None
            except Exception:  # noqa: BLE001 - a restarting database: wait for it, within reason
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > OUTAGE_SECONDS:
                    raise
                log.warning("send window: database unavailable; trying again", exc_info=log.isEnabledFor(10))
                got, pause = None, 0.5
            if got is not None:
                return got
            self._wake.clear()
            if stop is not None and stop.is_set():
                return None
            self._wake.wait(pause)

    def _try(self, recipients: int, take: bool, lead: float = 0.0) -> tuple[SharedTicket | bool | None, float]:
        """One look (and, with ``take``, one reservation) in one short transaction. ``lead`` (a look only):
        counted ``lead`` seconds from now, as far as known now (a request in flight is renewed ahead)."""
        with self.engine.begin() as conn:
            if take:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RATE_LOCK_KEY})
            used, next_free = conn.execute(text(
                "SELECT coalesce(sum(recipients), 0), "
                "       extract(epoch FROM min(counts_until) FILTER (WHERE ended_at IS NOT NULL) "
                "                           - clock_timestamp()) "
                "FROM send_reservation WHERE counts_until > clock_timestamp() AND (ended_at IS NULL "
                "      OR counts_until > clock_timestamp() + make_interval(secs => :lead))"),
                {"lead": lead}).one()
            if int(used) + recipients > self.capacity:
                wait = None if next_free is None else float(next_free) - lead
                pause = POLL_SECONDS if wait is None else min(KNOWN_POLL_SECONDS, max(0.001, wait))
                return None, pause
            if not take:
                return True, 0.0
            ticket_id = conn.execute(text(
                "INSERT INTO send_reservation (worker, recipients, started_at, counts_until) "
                "VALUES (:w, :n, clock_timestamp(), clock_timestamp() + make_interval(secs => :hold)) "
                "RETURNING id"), {"w": self.worker, "n": recipients, "hold": self.hold}).scalar_one()
        ticket = SharedTicket(recipients, int(ticket_id))
        with self._lock:
            self._flying[ticket.id] = ticket
        self._ensure_renewer()  # usually running already (started before the place was taken): no wait here
        return ticket, 0.0

    def _prune(self) -> None:
        """At most once a second, after an answer: not under the lock every worker's reservation waits for, and
        not between a place taken and its request (which would count the prune's round trip as in flight)."""
        if time.monotonic() - self._pruned < 1.0:
            return
        self._pruned = time.monotonic()
        try:
            with self.engine.begin() as conn:
                conn.execute(text("DELETE FROM send_reservation WHERE counts_until < clock_timestamp() "
                                  "- make_interval(secs => :keep)"), {"keep": KEEP_SECONDS})
        except Exception:  # noqa: BLE001 - old rows only: the next prune takes them
            log.warning("could not prune old send places", exc_info=log.isEnabledFor(10))

    def _write_ends(self) -> None:
        with self._lock:
            ended = list(self._unwritten.values())
        if not ended:
            return
        try:
            with self.engine.begin() as conn:
                for ticket in ended:
                    # the end as the database sees it now, less how long ago it happened here
                    ago = max(0.0, time.monotonic() - (ticket.ended or 0.0))
                    conn.execute(text(
                        "UPDATE send_reservation SET ended_at = clock_timestamp() - make_interval(secs => :ago), "
                        "counts_until = clock_timestamp() - make_interval(secs => :ago) "
                        "               + make_interval(secs => :span) "
                        "WHERE id = :id"), {"id": ticket.id, "ago": ago, "span": self.span})
        except Exception:  # noqa: BLE001 - retried by the renewer; meanwhile it counts as in flight
            log.warning("could not record the end of %d send(s) yet", len(ended), exc_info=log.isEnabledFor(10))
            return
        with self._lock:
            for ticket in ended:
                self._unwritten.pop(ticket.id, None)

    def _ensure_renewer(self) -> None:
        with self._lock:
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_forever, name="send-window-renewal",
                                                 daemon=True)
                self._renewer.start()

    def _renew_forever(self) -> None:
        """Runs while this process has places in flight (or ends not yet written) or is waiting to take one,
        then ends."""
        while True:
            time.sleep(RENEW_EVERY)
            with self._lock:
                ids = list(self._flying) + list(self._unwritten)
                if not ids and not self._acquiring:
                    self._renewer = None
                    return
            if not ids:
                continue
            try:
                with self.engine.begin() as conn:
                    conn.execute(text("UPDATE send_reservation SET counts_until = greatest(counts_until, "
                                      "clock_timestamp() + make_interval(secs => :hold)) "
                                      "WHERE id = ANY(:ids) AND ended_at IS NULL"), {"ids": ids, "hold": self.hold})
            except Exception:  # noqa: BLE001 - the last renewal still covers one attempt; try again
                log.warning("could not renew %d send place(s)", len(ids), exc_info=log.isEnabledFor(10))
                continue
            self._write_ends()


def window_for(engine: Engine, rate_per_second: float, *, attempt_seconds: float = 10.0,
               worker: str | None = None) -> SendWindow | SharedSendWindow:
    """The window for one dispatcher: shared through the database on PostgreSQL (several workers may share
    the account), in-process on SQLite (one process)."""
    if engine.dialect.name == "postgresql":
        return SharedSendWindow(engine, rate_per_second, attempt_seconds=attempt_seconds, worker=worker)
    return SendWindow(rate_per_second)


def provider_timeout(config: Config) -> float:
    """The longest single attempt of a request: the provider adapter's HTTP timeout (NHN's default 10 s)."""
    try:
        return float(config.provider.settings.get("timeout_seconds", 10.0))
    except (TypeError, ValueError):
        return 10.0
