"""Sorted, distinct id arrays: made from any ids, and joined without sorting the large one again.

Why one place: the audience of an alert, the geometry index's change log and the zone index's unions all keep
their people as sorted distinct int arrays, and each wrote the same sort-and-drop-repeats of its own.
"""

from __future__ import annotations

import numpy as np


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """``values`` sorted with repeats dropped (``np.unique`` without its extra passes), in their own dtype."""
    merged = np.sort(values)
    keep = np.empty(len(merged), dtype=bool)
    keep[:1] = True
    np.not_equal(merged[1:], merged[:-1], out=keep[1:])
    return merged[keep]


def sorted_union(base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The sorted distinct union of two sorted distinct int64 arrays, in one pass over ``base`` (no sort of it):
    ``new``'s ids not in ``base`` are inserted where they belong. A province alert's 28,000 people inside its
    outline took 70 ms to merge into its 1.1 million zone subscribers by one sort, all land's 460 ms; a few ms so.
    ``base`` not empty."""
    pos = np.searchsorted(base, new)
    fresh = base[np.minimum(pos, len(base) - 1)] != new
    new, pos = new[fresh], pos[fresh]
    if len(new) == 0:
        return base
    at = pos + np.arange(len(new))  # where each new id lands in the union
    out = np.empty(len(base) + len(new), dtype=np.int64)
    from_base = np.ones(len(out), dtype=bool)
    from_base[at] = False
    out[at] = new
    out[from_base] = base
    return out
