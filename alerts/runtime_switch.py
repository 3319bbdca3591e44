"""The interpreter's thread switch interval in ``alimcast run``: 1 ms instead of CPython's 5 ms.

Why: ``alimcast run`` is one process of many threads that each spend most of their time outside Python (a
SQLite statement, a socket read): the dispatcher storing a page of results, the thread fetching the next page
ahead of it, the request threads, a feed's poll, the geometry index rebuilding in the background. Every time a
thread comes back from such a call it must take the interpreter lock again, and when another thread is running
Python it gets the lock only when that thread is asked to drop it, after the *switch interval* (CPython's
``sys.setswitchinterval``, 5 ms by default). This is the GIL's convoy effect (CPython issue 7946): a thread
that makes many short calls waits up to 5 ms after each one. Measured with ``benchmarks/bench_dispatch.py``,
the loopback provider in this process (its parsing and answering take the lock too): collecting 20,000
results made about 100 such calls (a grouped read, its rows, an UPDATE, the ledger INSERT and a commit per page
of 1,000) and took 0.56 s against 0.33 s for a bare httpx loop (0.60x); with a 1 ms interval it took 0.45 s
(0.82x), and dispatch went from 0.77x to 0.82x. The same wait sits between a poll that sees a tsunami warning
and the match that queues it.

The cost is more switches between threads that all want to run Python; at 1 ms that is a thousand a second at
most, each a few microseconds. The setting is process-wide, so ``alimcast run`` sets it once after start-up and
puts CPython's back when it ends (a test or an embedding program calling the CLI in-process is left as found).

Setting (``[runtime]`` in config.toml, optional): ``switch_interval_ms`` (1.0; 0 keeps CPython's own).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("alimcast.runtime")

SWITCH_INTERVAL_MS = 1.0
#: Larger than any sensible interval and far below what ``sys.setswitchinterval`` overflows at.
MAX_SWITCH_INTERVAL_MS = 1000.0
#: A microsecond: a smaller value would only make threads switch all the time (and one that underflows to zero
#: in seconds is refused by ``sys.setswitchinterval``).
MIN_SWITCH_INTERVAL_MS = 0.001


@dataclass(slots=True)
class SwitchInterval:
    """The switch interval ``alimcast run`` runs with (``ms``; 0 leaves the interpreter's own)."""

    ms: float = SWITCH_INTERVAL_MS
    #: The interval before :meth:`apply` (put back by :meth:`restore`).
    _before: float | None = None

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> SwitchInterval:
        """``[runtime] switch_interval_ms`` of the config file (the default when absent); a bad value raises
        ValueError naming it."""
        table = raw.get("runtime") or {}
        if not isinstance(table, Mapping):
            raise ValueError("[runtime]: must be a table")
        ms = table.get("switch_interval_ms", SWITCH_INTERVAL_MS)
        if isinstance(ms, bool) or not isinstance(ms, int | float) or math.isnan(ms) \
                or not (ms == 0 or MIN_SWITCH_INTERVAL_MS <= ms <= MAX_SWITCH_INTERVAL_MS):
            raise ValueError(f"[runtime] switch_interval_ms: must be 0 or a number from {MIN_SWITCH_INTERVAL_MS:g} "
                             f"to {MAX_SWITCH_INTERVAL_MS:g}, not {ms!r}")
        return cls(ms=float(ms))

    def apply(self) -> str:
        """Set the interval now (nothing with ``ms = 0``); returns a one-line description for the log."""
        if self.ms and self._before is None:
            self._before = sys.getswitchinterval()
            sys.setswitchinterval(self.ms / 1000)
        line = f"thread switch interval {sys.getswitchinterval() * 1000:g} ms"
        log.info("%s", line)
        return line

    def restore(self) -> None:
        """The interval as it was before :meth:`apply` (nothing when it was not applied)."""
        if self._before is not None:
            sys.setswitchinterval(self._before)
            self._before = None
