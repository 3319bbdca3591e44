"""Ingest's SQLite fast path (rows handed to the driver) stores exactly what SQLAlchemy's own path stores.

The two paths write the same rows into two fresh databases; the stored text must be identical column by
column, and the ORM must read back the identity, times (aware, UTC) and body the alerts were built with.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

import subscribers.all_models  # noqa: F401  (every table, so the migration's metadata is complete)
from alerts.db import make_engine, sqlite_datetime, upgrade
from alerts.ingest import _insert_core, _insert_sqlite, _values, ingest
from alerts.models import AlertRecord
from feeds.model import KMA_ZONE, Alert, Area, Circle, Info, Reference

KST = timezone(timedelta(hours=9))
NOW = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)

DATETIMES = [
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 9, 0, 0, 123456, tzinfo=KST),
    datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-14))),
    datetime(999, 3, 4, 5, 6, 7, 8, tzinfo=UTC),
    datetime(2026, 6, 1, 0, 30, tzinfo=timezone(timedelta(hours=5, minutes=45))),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
]


def _engine(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    return engine


def _alerts() -> list[Alert]:
    sent = datetime(2026, 1, 2, 9, 30, 0, 500, tzinfo=KST)
    original = Alert(
        sender="kma@kma.go.kr", identifier="kma-1", sent=sent, source="test",
        infos=[Info(event="풍랑주의보", category=["Met"], urgency="Expected", severity="Severe",
                    certainty="Likely", language="ko-KR", headline="S1251100 풍랑주의보 \"따옴표\"",
                    description="물결이 2~4m로 매우 높게 일겠습니다.\n줄바꿈",
                    expires=sent + timedelta(hours=12, microseconds=7),
                    parameters={"waveHeight": ["4"]},
                    areas=[Area(desc="zone", geocodes={KMA_ZONE: ["S1251100", "S1251200"]},
                                polygons=[[(33.1, 126.25), (33.5, 126.75), (33.9, 126.0), (33.1, 126.25)]],
                                circles=[Circle(33.2, 126.3, 12.5)], altitude=1e-7, ceiling=12345.678)])],
    )
    update = Alert(
        sender="kma@kma.go.kr", identifier="kma-2", sent=sent + timedelta(hours=1), msg_type="Update",
        references=[Reference(original.sender, original.identifier, original.sent)],
        infos=[Info(event="풍랑경보", severity="Extreme", urgency="Immediate",
                    parameters={"eventEndingTime": ["2026-01-03T06:00:00-05:00"]})],
    )
    bare = Alert(sender="nws@noaa.gov", identifier="no-info", sent=datetime(2026, 1, 2, tzinfo=UTC),
                 msg_type="Cancel", scope="Restricted", restriction="staff", code=["IPAWSv1.0"],
                 warnings=["alert: something lenient"])
    return [original, update, bare]


def _stored_text(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return list(connection.exec_driver_sql("SELECT * FROM alert ORDER BY id"))


@pytest.mark.parametrize("value", DATETIMES)
def test_sqlite_datetime_is_the_text_sqlalchemy_binds(value: datetime) -> None:
    engine = make_engine("sqlite://")
    column = AlertRecord.__table__.c.sent  # type: ignore[attr-defined]
    process = column.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
    assert sqlite_datetime(value) == process(value)


def test_sqlite_datetime_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        sqlite_datetime(datetime(2026, 1, 1))
    assert sqlite_datetime(None) is None


def test_fast_path_stores_the_same_text_as_sqlalchemy(tmp_path: Path) -> None:
    alerts = _alerts()
    rows = [_values(a.key(), a, a.end_time(), "feed-a", NOW) for a in alerts]
    fast, core = _engine(tmp_path / "fast.db"), _engine(tmp_path / "core.db")
    results = []
    for engine, insert in ((fast, _insert_sqlite), (core, _insert_core)):
        with Session(engine) as session:
            results.append(insert(session.connection(), rows))
            again = insert(session.connection(), rows)  # every row now conflicts: nothing comes back
            session.commit()
        assert again == {}
    assert results[0] == results[1]
    assert set(results[0]) == {a.key() for a in alerts}
    assert _stored_text(fast) == _stored_text(core)
    stored = _stored_text(fast)
    assert len(stored) == len(alerts)
    # the body is the alert dataclass as orjson writes it: UTF-8 text, references as objects
    assert [json.loads(row[-1]) for row in stored] == [
        {**a.to_json(), "references": [{"sender": r.sender, "identifier": r.identifier, "sent": r.sent.isoformat()}
                                       for r in a.references]}
        for a in alerts
    ]
    assert "풍랑주의보" in stored[0][-1]


def test_ingest_on_sqlite_reads_back_through_the_orm(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "ingest.db")
    alerts = _alerts()
    with Session(engine, expire_on_commit=False) as session:
        report = ingest(session, [*alerts, alerts[0]], feed="feed-a", now=NOW)
        session.commit()
    assert len(report.new_ids) == len(alerts) and report.duplicates == 1
    with Session(engine) as session:
        records = {r.identifier: r for r in session.exec(select(AlertRecord))}
    for alert in alerts:
        record = records[alert.identifier]
        assert (record.sender, record.identifier, record.sent) == alert.key()
        assert record.sent.tzinfo is UTC and record.received_at == NOW
        assert record.end_time == alert.end_time()
        assert Alert.from_json(record.body) == alert  # every field, references and times included
        assert (record.status, record.msg_type, record.scope) == (alert.status, alert.msg_type, alert.scope)
        assert record.severity == alert.max_severity() and record.urgency == alert.max_urgency()
        assert record.feed == "feed-a" and record.thread_id is not None
    assert records["kma-2"].thread_id == records["kma-1"].thread_id  # threaded by its reference
    assert records["kma-1"].event == "풍랑주의보" and records["no-info"].event == ""
    assert records["no-info"].headline is None and records["no-info"].end_time is None
