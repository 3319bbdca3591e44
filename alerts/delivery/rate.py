"""A token bucket owned by the single sender: the exact and simple form for one provider account.

A warning is throttled, never dropped: ``acquire`` waits for tokens instead of refusing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate_per_second: float, capacity: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate = rate_per_second
        self.capacity = capacity if capacity is not None else max(1.0, rate_per_second)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self, amount: float = 1.0) -> float:
        """Take ``amount`` tokens, waiting as long as needed; returns the seconds waited."""
        waited = 0.0
        remaining = amount
        with self._lock:
            while remaining > 0:
                self._refill()
                chunk = min(remaining, self.capacity)
                if self._tokens >= chunk:
                    self._tokens -= chunk
                    remaining -= chunk
                    continue
                pause = (chunk - self._tokens) / self.rate
                self._sleep(pause)
                waited += pause
        return waited
