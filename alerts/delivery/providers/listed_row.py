"""A provider's listed message as a delivery result's ``raw``: read through, masked, never copied.

Why: a result poll lists a thousand messages a page, and every result carried a copy of its message (a dict of
about fifteen entries, its phone number masked, its text dropped) made eagerly, though the dispatcher never
reads ``raw`` (only logs, tests and operators' tools do). The copies were a thousand more young dicts per page
(beside the thousand the answer's JSON already holds), and the masking ran for every row. This view holds the
provider's row as it was parsed and masks on reading; what it shows is what the copy held: the row without its
hidden keys, its number masked, and the classification.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any


class ListedRow(Mapping[str, Any]):
    """``row`` without ``hidden`` keys, ``masked`` keys read through ``mask`` (present even when the row lacks
    them, as the copy set them), then ``extra`` (which wins over the row)."""

    __slots__ = ("_row", "_hidden", "_masked", "_mask", "_extra")

    def __init__(self, row: Mapping[str, Any], *, hidden: frozenset[str], masked: frozenset[str],
                 mask: Callable[[Any], Any], extra: Mapping[str, Any]) -> None:
        self._row = row
        self._hidden = hidden
        self._masked = masked
        self._mask = mask
        self._extra = extra

    def __getitem__(self, key: str) -> Any:
        if key in self._extra:
            return self._extra[key]
        if key in self._masked:
            return self._mask(self._row.get(key))
        if key in self._hidden:
            raise KeyError(key)
        return self._row[key]

    def __iter__(self) -> Iterator[str]:
        for key in self._row:
            if key not in self._hidden and key not in self._extra:
                yield key
        for key in self._masked:
            if key not in self._row and key not in self._extra:
                yield key
        yield from self._extra

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(dict(self))
