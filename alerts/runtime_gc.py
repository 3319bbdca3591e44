"""Garbage collection in a long-running ``alimcast run``: the start-up heap frozen, young collections rarer.

Why: CPython's cycle collector runs a *full* collection whenever the objects that survived into its oldest
generation grow by a quarter, and a full collection walks every container object the process holds. Most of
them are the long-lived start-up heap: the imported modules, SQLAlchemy's metadata and mappers, the config,
the subscriber indexes (about 170,000 objects on a small install, millions with a national index), none of
which ever becomes garbage. The dispatcher's per-batch objects (a thousand rows, messages, outcomes, results)
live for one request and die by reference counting, but while a batch is in flight they count as survivors
and set the full passes off. Measured with ``benchmarks/bench_dispatch.py`` (20,000 recipients, loopback
provider in a process of its own): a full collection of 0.14-0.19 s during dispatch and another during the
collection of results, the largest single cost of either.

What this module does, once after start-up (config loaded, indexes built):

* ``gc.freeze()`` of the start-up heap (CPython's docs, "gc — Garbage Collector interface": objects moved to a
  permanent generation that collections ignore; Instagram's write-up "Dismissing Python Garbage Collection at
  Instagram" measured the same walk of a long-lived heap). A full collection then walks only what was made
  since. A frozen object is still freed by reference counting when it dies; only a *cycle* among frozen
  objects that dies is never collected, a leak. So the heap is collected before it is frozen (nothing that
  is already garbage is frozen), and the continuous job settles it again every ``gc_refreeze_minutes``
  (unfreeze, full collection, freeze): a frozen cycle that died is reclaimed then, so memory stays bounded by
  what one period leaves, not by the uptime.
* The youngest generation's threshold raised from CPython's 700 to ``gc_young_threshold`` (10,000) allocations
  net of deallocations: a batch in flight holds a few thousand young objects, so at 700 they were collected
  and promoted (becoming survivors) many times per batch; at 10,000 they are freed by reference counting
  before a collection looks at them. A young collection still runs at every 10,000 net allocations, so cyclic
  garbage is bounded by that many objects.

Settings (``[runtime]`` in config.toml, all optional): ``gc_freeze`` (true), ``gc_young_threshold`` (10000;
0 keeps CPython's own), ``gc_refreeze_minutes`` (60; 0 never refreezes).
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("alimcast.runtime")

YOUNG_THRESHOLD = 10_000
#: ``gc.set_threshold`` takes a C int: a larger value was accepted here and raised OverflowError at start-up.
MAX_YOUNG_THRESHOLD = 2**31 - 1
REFREEZE_MINUTES = 60.0


@dataclass(frozen=True, slots=True)
class GcSettings:
    """How the process's garbage collector is set after start-up (see the module's docstring)."""

    freeze: bool = True
    young_threshold: int = YOUNG_THRESHOLD
    refreeze_minutes: float = REFREEZE_MINUTES

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> GcSettings:
        """``[runtime]`` of the config file (defaults when absent); a bad value raises ValueError naming it."""
        table = raw.get("runtime") or {}
        if not isinstance(table, Mapping):
            raise ValueError("[runtime]: must be a table")
        freeze = table.get("gc_freeze", True)
        if not isinstance(freeze, bool):
            raise ValueError(f"[runtime] gc_freeze: must be true or false, not {freeze!r}")
        young = table.get("gc_young_threshold", YOUNG_THRESHOLD)
        if isinstance(young, bool) or not isinstance(young, int) or not 0 <= young <= MAX_YOUNG_THRESHOLD:
            raise ValueError(f"[runtime] gc_young_threshold: must be a whole number from 0 to "
                             f"{MAX_YOUNG_THRESHOLD}, not {young!r}")
        minutes = table.get("gc_refreeze_minutes", REFREEZE_MINUTES)
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 <= minutes < math.inf:
            raise ValueError(f"[runtime] gc_refreeze_minutes: must be a number >= 0, not {minutes!r}")
        return cls(freeze=freeze, young_threshold=young, refreeze_minutes=float(minutes))


def settle_heap(settings: GcSettings) -> str:
    """Set the collector as ``settings`` say, now: the threshold, then (``freeze``) collect and freeze what is
    alive. Called again it first unfreezes, so what died since the last call is collected, not kept frozen.
    Returns a one-line description of what is in effect (logged by ``alimcast run``, printed by benchmarks)."""
    if settings.young_threshold:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(settings.young_threshold, middle, old)
    if settings.freeze:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    return describe()


def describe() -> str:
    """The collector's settings in effect, for a log line."""
    young, middle, old = gc.get_threshold()
    return (f"gc: enabled={gc.isenabled()} thresholds=({young}, {middle}, {old}) "
            f"frozen={gc.get_freeze_count():,} objects tracked={len(gc.get_objects()):,}")


class HeapKeeper:
    """The continuous job's collector: :meth:`settle` once after start-up, :meth:`refreeze_if_due` from a
    periodic job (it settles again once ``refreeze_minutes`` have passed since the last settle). A settle is
    one full collection of the whole heap: it pauses every thread (as CPython's own full collections do, which
    it replaces), so it runs once a period, not per batch."""

    def __init__(self, settings: GcSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.settled_at: float | None = None
        self.settles = 0
        #: The thresholds before the first settle (put back by :meth:`restore`).
        self._before: tuple[int, int, int] | None = None

    def settle(self) -> str:
        started = self.clock()
        if self._before is None:
            self._before = gc.get_threshold()
        line = settle_heap(self.settings)
        self.settled_at = self.clock()
        self.settles += 1
        log.info("%s (settled in %.2f s)", line, self.settled_at - started)
        return line

    def refreeze_if_due(self) -> bool:
        """Settle again when the period has passed (True when it did)."""
        if not self.settings.freeze or not self.settings.refreeze_minutes:
            return False
        if self.settled_at is not None and self.clock() - self.settled_at < self.settings.refreeze_minutes * 60:
            return False
        self.settle()
        return True

    def restore(self) -> None:
        """The collector as it was before the first settle (nothing frozen, the thresholds put back): the run
        is over, and a process that goes on (a test calling the CLI in-process, an embedding program) is left as
        it was found."""
        if self._before is None:
            return
        if self.settings.freeze:
            gc.unfreeze()
        gc.set_threshold(*self._before)
        self._before = None
