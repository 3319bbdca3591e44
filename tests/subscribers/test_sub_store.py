from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from subscribers import store
from subscribers.models import Subscriber, Subscription
from subscribers.phone import PhoneError
from subscribers.preferences import PreferenceError
from subscribers.zones import ZoneError


def _counts(session: Session) -> tuple[int, int]:
    people = session.execute(select(func.count()).select_from(Subscriber)).scalar_one()
    subs = session.execute(select(func.count()).select_from(Subscription)).scalar_one()
    return people, subs


def test_same_person_added_twice_is_one_row_with_merged_zones(session: Session) -> None:
    first = store.add_subscriber(session, "010-1234-5678", ["S1251100"], name="Kim")
    again = store.add_subscriber(session, "+82 10 1234 5678", ["S1251100", "서해중부먼바다"], min_severity="Severe")
    session.commit()
    assert first.id == again.id
    assert _counts(session) == (1, 3)
    assert store.zone_codes_of(session, first.id) == ["S1251100", "S1252010", "S1252020"]
    assert again.name == "Kim"  # not given the second time: kept
    assert again.min_severity == "Severe"
    # Re-adding exactly the same is a no-op.
    store.add_subscriber(session, "01012345678", ["S1252010"])
    session.commit()
    assert _counts(session) == (1, 3)


def test_group_zone_is_stored_as_leaves(session: Session) -> None:
    person = store.add_subscriber(session, "01011112222", ["S1251000"])
    assert store.zone_codes_of(session, person.id) == ["S1251100", "S1251200", "S1251300", "S1251400"]


@pytest.mark.parametrize(
    ("phone", "zones", "kwargs", "error"),
    [
        ("02-123-4567", ["S1251100"], {}, PhoneError),
        ("01012345678", ["S1251100", "고성군"], {}, ZoneError),
        ("01012345678", ["S1251100"], {"min_severity": "Huge"}, PreferenceError),
        ("01012345678", ["S1251100"], {"language": "fr"}, PreferenceError),
        ("01012345678", ["S1251100"], {"quiet_hours": "25:00-06:00"}, PreferenceError),
    ],
)
def test_bad_input_writes_nothing(session: Session, phone: str, zones: list[str], kwargs: dict[str, str],
                                  error: type[Exception]) -> None:
    with pytest.raises(error):
        store.add_subscriber(session, phone, zones, **kwargs)
    session.rollback()
    assert _counts(session) == (0, 0)


def test_remove_keeps_the_consent_record_and_readd_is_a_new_consent(session: Session) -> None:
    person = store.add_subscriber(session, "01012345678", ["S1251100"], consent_text="v1")
    session.commit()
    original_consent = person.consent_at
    store.remove(session, "010-1234-5678")
    session.commit()
    row = store.get_by_phone(session, "01012345678")
    assert row is not None and row.status == "unsubscribed" and row.unsubscribed_at is not None
    with pytest.raises(ValueError, match="unsubscribed"):
        store.set_status(session, "01012345678", "active")
    back = store.add_subscriber(session, "01012345678", ["L1013710"], consent_text="v2")
    session.commit()
    assert back.status == "active" and back.unsubscribed_at is None
    assert back.consent_text == "v2" and back.consent_at >= original_consent
    assert store.zone_codes_of(session, back.id) == ["L1013710"]  # the old choice was replaced


def test_pause_resume_and_preferences(session: Session) -> None:
    store.add_subscriber(session, "01012345678", ["S1251100"])
    assert store.set_status(session, "01012345678", "paused").status == "paused"
    assert store.set_status(session, "01012345678", "active").status == "active"
    p = store.set_preferences(session, "01012345678", categories="met geo", quiet_hours="22:30-06:00",
                              min_severity="moderate")
    assert (p.categories, p.quiet_start_min, p.quiet_end_min, p.min_severity) == (
        ["Met", "Geo"], 1350, 360, "Moderate")
    p = store.set_preferences(session, "01012345678", quiet_hours="", categories="")
    assert (p.categories, p.quiet_start_min) == ([], None)
    with pytest.raises(store.SubscriberNotFound, match=r"010-\*\*\*\*-9999"):
        store.set_status(session, "01000009999", "paused")


def test_export_writes_import_header_and_skips_unsubscribed(session: Session, tmp_path: Path) -> None:
    store.add_subscriber(session, "01011110000", ["S1251100", "S1252010"], name="A", quiet_hours="22:00-06:00")
    store.add_subscriber(session, "01022220000", ["L1013710"], name="B")
    store.remove(session, "01022220000")
    session.commit()
    out = tmp_path / "export.csv"
    assert store.export(session, out) == 1
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == store.CSV_HEADER
    assert rows[1] == ["01011110000", "A", "S1251100 S1252010", "Unknown", "ko", "", "22:00-06:00", ""]
