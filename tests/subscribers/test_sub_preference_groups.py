"""The grouped decisions (subscribers.preference_groups) against the per-person path, on both engines."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlmodel import Session

from alerts.db import make_engine, upgrade
from subscribers import store
from subscribers.matching import recipients_for_ids
from subscribers.preference_groups import recipient_groups

NIGHT = datetime(2025, 7, 10, 14, 30, tzinfo=UTC)  # 23:30 in Korea: quiet hours hold some people
SEVERITIES = [None, "Minor", "Moderate", "Severe", "Extreme"]
CATEGORIES = [None, "Met", "Met,Safety", "Geo"]
HAZARDS = [None, "풍랑", "풍랑,태풍", "호우"]
QUIET = [None, "22:00-06:00", "23:00-05:00"]
LANGUAGES = [None, "en", "vi", "id"]


def _people(session: Session, rng: random.Random, count: int) -> list[int]:
    ids = []
    for i in range(count):
        person = store.add_subscriber(
            session, f"0107{i:07d}", ["S1251100"], min_severity=rng.choice(SEVERITIES),
            language=rng.choice(LANGUAGES), categories=rng.choice(CATEGORIES), hazards=rng.choice(HAZARDS),
            quiet_hours=rng.choice(QUIET))
        ids.append(person.id)
    session.flush()
    for i in rng.sample(range(count), count // 10):
        store.set_status(session, f"0107{i:07d}", "paused")
    session.commit()
    return ids


def test_groups_give_every_person_the_per_person_decision(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    rng = random.Random(20261204)
    with Session(engine) as session:
        ids = _people(session, rng, 300)
        for severity, urgency, categories, hazards in [("Moderate", "Expected", ["Met"], ["풍랑"]),
                                                       ("Extreme", "Immediate", ["Geo"], ["지진해일"]),
                                                       ("Severe", "Expected", ["Met"], ["호우"])]:
            asked = rng.sample(ids, 200) + [10**6]  # one id that does not exist
            rules = {"severity": severity, "urgency": urgency, "categories": categories, "hazards": hazards,
                     "at": NIGHT}
            for skipped in (False, True):
                one_by_one = {r.subscriber_id: (r.decision, r.language) for r in
                              recipients_for_ids(session, asked, include_skipped=skipped, **rules)}
                groups = recipient_groups(session, np.array(asked), include_skipped=skipped, **rules)
                grouped = {int(sid): (g.decision, g.language) for g in groups for sid in g.ids}
                assert grouped == one_by_one
                assert sum(len(g.ids) for g in groups) == len(grouped)  # nobody in two groups
                assert len({(g.decision, g.language) for g in groups}) == len(groups)
                assert all(np.all(g.ids[1:] > g.ids[:-1]) for g in groups)
    engine.dispose()


def test_no_ids_no_groups(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    assert recipient_groups(engine, [], severity="Severe", urgency="Expected", at=NIGHT) == []
    engine.dispose()


def test_disjoint_parts_are_grouped_as_the_same_ids_in_one_array(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An audience's IdParts (the zone index's int32 array and the outline's ids it lacks) are read part by part,
    a chunk at a time, and give the groups of the same ids as one array."""
    from subscribers import preference_groups
    from subscribers.id_parts import IdParts

    engine = make_engine(db_url)
    upgrade(engine)
    rng = random.Random(20261205)
    with Session(engine) as session:
        ids = sorted(_people(session, rng, 120))
        zone_ids = np.array(ids[::2], dtype=np.int32)
        outline = np.array(sorted(ids[1::3] + ids[::6] + [10**6]), dtype=np.int64)  # some in both; one unknown
        parts = IdParts.union([zone_ids, outline])
        assert len(parts.parts) == 2
        rules = {"severity": "Moderate", "urgency": "Expected", "categories": ["Met"], "hazards": ["풍랑"],
                 "at": NIGHT, "include_skipped": True}
        monkeypatch.setattr(preference_groups, "CHUNK", 7)  # several chunks per part
        by_parts = recipient_groups(session, parts, **rules)
        whole = recipient_groups(session, parts.merged(), **rules)
        assert [(g.decision, g.language, g.ids.tolist()) for g in by_parts] == \
               [(g.decision, g.language, g.ids.tolist()) for g in whole]
    engine.dispose()
