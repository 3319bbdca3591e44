"""A result's ``raw`` as a view of the provider's listed row (alerts/delivery/providers/listed_row.py): it shows
what the eager copy showed (the row without its text, the number masked, the classification added), and the
phone number never appears in it, however it is read."""

from __future__ import annotations

from types import MappingProxyType

from alerts.delivery.providers.listed_row import ListedRow
from alerts.delivery.providers.nhn import mask_phone


def view(row: dict[str, object]) -> ListedRow:
    return ListedRow(row, hidden=frozenset({"content"}), masked=frozenset({"recipientNo"}), mask=mask_phone,
                     extra=MappingProxyType({"category": "delivered", "operatorAlert": False}))


def test_view_equals_the_copy_it_replaces() -> None:
    row = {"recipientSeq": 3, "recipientNo": "01012345678", "content": "본문", "resultCode": "1000",
           "category": "from the provider"}
    copy = dict(row)
    copy.pop("content")
    copy.update(recipientNo="010-****-5678", category="delivered", operatorAlert=False)
    raw = view(row)
    assert dict(raw) == copy and raw == copy and len(raw) == len(copy)
    assert "content" not in raw and raw.get("content") is None
    assert "01012345678" not in repr(raw) and "01012345678" not in str(list(raw.values()))


def test_a_row_without_a_number_shows_it_masked_as_absent() -> None:
    raw = view({"recipientSeq": 1})
    assert raw["recipientNo"] == "<none>" and list(raw) == ["recipientSeq", "recipientNo", "category",
                                                           "operatorAlert"]
