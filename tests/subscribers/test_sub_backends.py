"""Import, idempotency and matching on both engines, with the shipped migrations (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlmodel import Session

from alerts.db import make_engine, upgrade
from subscribers import store, zones
from subscribers.csv_import import import_csv
from subscribers.matching import ZoneIndex, match_zones, matching_ids_sql
from subscribers.models import Subscriber, Subscription


def test_import_and_match_on_each_backend(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    rng = random.Random(11)
    leaves = [z.code for z in zones.list_zones() if zones.is_leaf(z.code)]
    lines = ["phone,name,zones,min_severity,language,categories,quiet_hours"]
    for i in range(600):
        picks = " ".join(rng.sample(leaves, rng.randint(1, 3)))
        quiet = "22:00-06:00" if i % 5 == 0 else ""
        lines.append(f"0107{i:07d},사람{i},{picks},{rng.choice(['', 'Severe'])},ko,{'Met' if i % 7 else ''},{quiet}")
    lines.append("0107000000x,bad,S1251100,")
    path = tmp_path / "people.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = import_csv(engine, path, chunk_rows=128)
    assert (report.inserted, report.skipped) == (600, 1)
    assert len(report.errors) == 1 and report.errors[0].startswith("line 602: phone '010***0000x'")  # masked as typed
    with Session(engine) as s:
        counts = (s.execute(select(func.count()).select_from(Subscriber)).scalar_one(),
                  s.execute(select(func.count()).select_from(Subscription)).scalar_one())
        first = store.get_by_phone(s, "01070000000")
        assert first is not None and first.quiet_start_min == 1320 and first.categories == []
        assert first.consent_at.tzinfo is not None
    again = import_csv(engine, path, chunk_rows=128)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 600)
    with Session(engine) as s:
        assert (s.execute(select(func.count()).select_from(Subscriber)).scalar_one(),
                s.execute(select(func.count()).select_from(Subscription)).scalar_one()) == counts

    index = ZoneIndex.build(engine)
    for _ in range(50):
        alert = rng.sample(leaves, rng.randint(1, 5)) + ["S1250000"]
        assert np.array_equal(index.lookup(alert), matching_ids_sql(engine, alert))
    at = datetime(2025, 7, 10, 3, 0, tzinfo=UTC)  # 12:00 KST
    via_sql = match_zones(engine, ["S1000000"], severity="Moderate", urgency="Expected", categories=["Met"], at=at)
    via_index = match_zones(engine, ["S1000000"], severity="Moderate", urgency="Expected", categories=["Met"],
                            at=at, index=index)
    assert via_sql == via_index and via_sql
    assert len({r.subscriber_id for r in via_sql}) == len(via_sql)
    engine.dispose()
