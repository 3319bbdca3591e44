"""Everyone an alert reaches as a few disjoint sorted id arrays, not one merged array.

Why: a province's zone alert reaches a million zone subscribers (the zone index's own read-only array) and a few
tens of thousands more inside its stored outline. Merging them into one array copies the million (2.7 ms at
10,000,000 people for 전남, 23-45 ms for all land, most of the match), and the consumer then only reads them a
chunk at a time. Kept apart (the large array as the index gave it, the others' ids not in it as a second), the
merge is a binary search of the few in the many, or a difference of bitmaps when the zone index's answer can tell
(``subscribers.zone_answer``); whoever needs one array still gets it (:meth:`IdParts.merged`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from subscribers.sorted_ids import merge_disjoint, missing_from, sorted_distinct

#: A sorted distinct array, and what gives the ids of other sorted distinct ids it does not hold.
Known = tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True, slots=True)
class IdParts:
    """Sorted, distinct id arrays with no id in two of them (any int dtype; possibly read-only: never written)."""

    parts: tuple[np.ndarray, ...]

    @classmethod
    def union(cls, arrays: list[np.ndarray], *, known: Known | None = None) -> IdParts:
        """The union of sorted distinct arrays: the largest as it is, the others' ids it lacks as one more part.

        ``known``: an array of ``arrays`` and what finds the ids it lacks faster than a binary search in it (a zone
        index answer's ``lacking``), used when that array is the largest."""
        base, rest = _largest_and_rest(arrays)
        if base is None:
            return cls(())
        if rest is None:
            return cls((base,))
        fresh = known[1](rest) if known is not None and known[0] is base else missing_from(base, rest)
        return cls((base, fresh) if len(fresh) else (base,))

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """Each part's ids ``size`` at a time (sorted within a chunk; chunks disjoint, not in order across parts)."""
        for part in self.parts:
            for start in range(0, len(part), size):
                yield part[start:start + size]

    def only(self, wanted: np.ndarray) -> IdParts:
        """Just the ids also in ``wanted`` (any ids)."""
        kept = (p[np.isin(p, wanted)] for p in self.parts)
        return IdParts(tuple(p for p in kept if len(p)))

    def merged(self) -> np.ndarray:
        """All the ids as one sorted int64 array (the largest part is copied once)."""
        base, rest = _largest_and_rest(list(self.parts))
        if base is None:
            return np.empty(0, dtype=np.int64)
        if rest is None:
            return base.astype(np.int64, copy=False)
        return merge_disjoint(base, rest.astype(np.int64, copy=False))


def _largest_and_rest(arrays: list[np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The largest of some sorted distinct arrays as it is, and the others' ids as one sorted distinct array (a
    lone other as it is; several merged as sorted runs); None for what there is not. Empty arrays are ignored."""
    ordered = sorted((a for a in arrays if len(a)), key=len)
    if not ordered:
        return None, None
    base = ordered.pop()
    if not ordered:
        return base, None
    if len(ordered) == 1:
        return base, ordered[0]
    return base, sorted_distinct(np.concatenate([a.astype(np.int64, copy=False) for a in ordered]), runs=True)
