from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
from sqlalchemy.engine import Engine
from sqlmodel import Session

from subscribers import store, zones
from subscribers.matching import ZoneIndex, match_zones, matching_ids_sql, recipients_for_ids
from subscribers.preferences import KST, Action

NOON = datetime(2025, 7, 10, 12, 0, tzinfo=KST).astimezone(UTC)
NIGHT = datetime(2025, 7, 10, 23, 0, tzinfo=KST).astimezone(UTC)


def test_person_in_three_named_zones_is_one_recipient(session: Session) -> None:
    kim = store.add_subscriber(session, "01010000001", ["S1251100", "S1251200", "S1252010"], name="Kim")
    lee = store.add_subscriber(session, "01010000002", ["S1251300"], name="Lee")
    store.add_subscriber(session, "01010000003", ["S1231100"], name="Far away")
    session.commit()
    for index in (None, ZoneIndex.build(session)):
        recipients = match_zones(session, ["S1251100", "S1251200", "S1252010", "S1251300"], severity="Severe",
                                 urgency="Expected", categories=["Met"], at=NOON, index=index)
        assert [(r.subscriber_id, r.name) for r in recipients] == [(kim.id, "Kim"), (lee.id, "Lee")]
        assert all(r.decision.action is Action.SEND for r in recipients)


def test_group_alert_reaches_leaf_subscribers_but_leaf_alert_not_siblings(session: Session) -> None:
    leaf = store.add_subscriber(session, "01020000001", ["S1251100"])
    sibling = store.add_subscriber(session, "01020000002", ["S1251200"])
    group_fan = store.add_subscriber(session, "01020000003", ["서해"])  # stored as all West Sea leaves
    session.commit()

    def ids(codes: list[str]) -> list[int]:
        return [r.subscriber_id for r in match_zones(session, codes, severity="Severe", urgency="Expected",
                                                     at=NOON)]

    assert ids(["S1251000"]) == sorted([leaf.id, sibling.id, group_fan.id])
    assert ids(["S1251100"]) == sorted([leaf.id, group_fan.id])
    assert ids(["서해중부먼바다"]) == [group_fan.id]
    assert ids(["S1131100"]) == []
    assert ids(["S9999999", "S1251200"]) == sorted([sibling.id, group_fan.id])  # unknown code does not stop it


def test_preferences_are_applied(session: Session) -> None:
    store.add_subscriber(session, "01030000001", ["S1251100"], min_severity="Severe")
    quiet = store.add_subscriber(session, "01030000002", ["S1251100"], quiet_hours="22:00-06:00")
    paused = store.add_subscriber(session, "01030000003", ["S1251100"])
    store.set_status(session, paused.phone, "paused")
    session.commit()
    recipients = match_zones(session, ["S1251100"], severity="Moderate", urgency="Expected", at=NIGHT)
    assert [(r.subscriber_id, r.decision.action) for r in recipients] == [(quiet.id, Action.HOLD)]
    assert recipients[0].decision.until == datetime(2025, 7, 11, 6, 0, tzinfo=KST)
    everyone = match_zones(session, ["S1251100"], severity="Moderate", urgency="Expected", at=NIGHT,
                           include_skipped=True)
    assert [r.decision.action for r in everyone] == [Action.SKIP, Action.HOLD]  # paused is filtered in SQL
    extreme = match_zones(session, ["S1251100"], severity="Extreme", urgency="Expected", at=NIGHT)
    assert [r.decision.action for r in extreme] == [Action.SEND, Action.SEND]


def test_zone_index_agrees_with_sql_on_random_data(engine: Engine) -> None:
    rng = random.Random(20250710)
    leaves = [z.code for z in zones.list_zones() if zones.is_leaf(z.code)]
    groups = [z.code for z in zones.list_zones() if not zones.is_leaf(z.code)]
    with Session(engine) as session:
        for i in range(400):
            picks = rng.sample(leaves, rng.randint(1, 3)) + (rng.sample(groups, 1) if i % 17 == 0 else [])
            store.add_subscriber(session, f"0106{i:07d}", picks)
        for i in range(0, 400, 9):
            store.set_status(session, f"0106{i:07d}", "paused")
        session.commit()
    index = ZoneIndex.build(engine)
    assert index.subscription_count() > 400
    for _ in range(200):
        alert = rng.sample(leaves + groups, rng.randint(1, 4))
        from_index = index.lookup(alert)
        from_sql = matching_ids_sql(engine, alert)
        assert np.array_equal(from_index, from_sql), alert
        assert len(np.unique(from_index)) == len(from_index)
    assert len(index.lookup(["S1000000", "L1000000", "S2000000"])) == 400 - len(range(0, 400, 9))


def test_recipients_for_ids_dedupes_and_rereads_status(session: Session) -> None:
    a = store.add_subscriber(session, "01040000001", ["S1251100"], name="A")
    b = store.add_subscriber(session, "01040000002", ["L1013710"], name="B", min_severity="Extreme")
    c = store.add_subscriber(session, "01040000003", ["L1013710"], name="C")
    store.set_status(session, c.phone, "paused")
    session.commit()
    got = recipients_for_ids(session, [b.id, a.id, a.id, c.id, 99999], severity="Severe", urgency="Expected",
                             categories=["Met"], at=NOON, include_skipped=True)
    assert [(r.subscriber_id, r.decision.action) for r in got] == [
        (a.id, Action.SEND), (b.id, Action.SKIP), (c.id, Action.SKIP)]
    assert got[2].decision.reason == "paused"
    assert recipients_for_ids(session, [], severity="Severe", urgency="Expected", at=NOON) == []
