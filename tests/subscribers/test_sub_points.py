"""Fixed-point subscriptions (a port, a sea farm): validated, idempotent, and usable without zones."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from subscribers.models import Subscription
from subscribers.store import add_subscriber


def points(session: Session, sid: int) -> list[tuple[float | None, float | None, float | None]]:
    rows = session.exec(select(Subscription).where(Subscription.subscriber_id == sid, Subscription.kind == "point"))
    return sorted((r.lat, r.lon, r.radius_km) for r in rows)


def test_point_only_subscriber_and_idempotent_readd(session: Session) -> None:
    person = add_subscriber(session, "010-2222-3333", [], points=[(37.45, 126.6, 3.0)])
    again = add_subscriber(session, "01022223333", [], points=[(37.45, 126.6, 5.0), (34.9, 127.7, 1.0)])
    assert person.id == again.id
    assert points(session, person.id or 0) == [(34.9, 127.7, 1.0), (37.45, 126.6, 5.0)]


@pytest.mark.parametrize(("point", "message"), [
    ((91.0, 126.0, 1.0), "latitude"), ((37.0, 181.0, 1.0), "longitude"), ((37.0, 126.0, -1.0), "radius"),
    ((37.0, 126.0, 900.0), "radius"),
])
def test_bad_points_are_refused_before_writing(session: Session, point: tuple[float, float, float],
                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add_subscriber(session, "010-2222-4444", [], points=[point])
    assert session.exec(select(Subscription)).all() == []


def test_nothing_to_follow_is_an_error(session: Session) -> None:
    with pytest.raises(ValueError, match="at least one zone or point"):
        add_subscriber(session, "010-2222-5555", [])


@pytest.mark.parametrize(("wanted", "alert", "severity", "sent"), [
    ((), ["풍랑"], "Moderate", True),
    (("태풍",), ["풍랑"], "Moderate", False),
    (("태풍", "풍랑"), ["풍랑"], "Moderate", True),
    (("gale warning",), ["Gale Warning"], "Severe", True),  # case does not matter
    (("태풍",), ["풍랑"], "Extreme", True),  # an Extreme warning overrides topic filters
    (("태풍",), [], "Moderate", True),  # an alert that names no hazard is not filtered out
])
def test_hazard_rule(wanted: tuple[str, ...], alert: list[str], severity: str, sent: bool) -> None:
    from datetime import UTC, datetime

    from subscribers.preferences import Action, Preferences, decide

    decision = decide(Preferences(hazards=wanted), severity=severity, urgency="Expected", hazards=alert,
                      at=datetime(2026, 11, 27, 3, 0, tzinfo=UTC))
    assert (decision.action is Action.SEND) is sent


def test_csv_hazards_column_imports_updates_and_exports(tmp_path, session: Session) -> None:  # type: ignore[no-untyped-def]
    from subscribers.csv_import import import_csv
    from subscribers.models import Subscriber
    from subscribers.store import export

    first = tmp_path / "a.csv"
    first.write_text("phone,name,zones,min_severity,hazards\n010-4000-0001,A,S1251100,,풍랑 태풍\n"
                     "010-4000-0002,B,S1251100,,\n", encoding="utf-8")
    assert import_csv(session, first).inserted == 2
    second = tmp_path / "b.csv"
    second.write_text("phone,name,zones,min_severity,hazards\n010-4000-0001,A,S1251100,,태풍\n", encoding="utf-8")
    assert import_csv(session, second).updated == 1
    # A file without the column leaves the stored choice alone.
    third = tmp_path / "c.csv"
    third.write_text("phone,name,zones,min_severity\n010-4000-0001,A,S1251100,\n", encoding="utf-8")
    import_csv(session, third)
    session.expire_all()
    people = {p.phone: p.hazards for p in session.exec(select(Subscriber))}
    assert people == {"01040000001": ["태풍"], "01040000002": []}
    out = tmp_path / "out.csv"
    export(session, out)
    assert "01040000001,A,S1251100,Unknown,ko,,,태풍" in out.read_text(encoding="utf-8")
