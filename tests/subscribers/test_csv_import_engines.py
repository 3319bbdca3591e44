"""The bulk import gives the same rows on SQLite (executemany) and PostgreSQL (COPY through staging tables), and
keeps the change log the live zone index and the catch-up read, whatever happens to a chunk."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alerts.db import make_engine, upgrade
from subscribers import store
from subscribers.bulk_writers import CHANGE_TRIGGER
from subscribers.csv_import import ImportReport, import_csv
from subscribers.models import Subscriber

CONSENT_AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

#: Errors of every kind, a person twice in the file (merged), optional columns, a broad zone name, a group.
FIRST = """phone,name,zones,min_severity,language,categories,quiet_hours,hazards
010-1111-0001,Kim,S1251100 S1252010,Severe,,Met,22:00-06:00,풍랑
02-123-4567,Landline,S1251100,,,,,
010-1111-0002,Lee,서해중부먼바다,,en,,,
010-1111-0004,Choi,S1251100,Huge,,,,
010-1111-0005,Jung,,,,,,
+82 10-1111-0006,Kang,S1251000,Minor,,"Met, Geo",,태풍 풍랑
010-1111-0001,Kim,L1013710,Severe,,Met,22:00-06:00,풍랑
01011110007,Yoon,S1251100,,xx,,,
01011110008,Han,S1251100,,,,9-5,
01011110009,Lim,S1251100,extra,cell,,,,,
01011110010,Seo,파주시,,,,,
01011110011,Oh,S1251100,,,,,
"""

#: The second file: changes, a zone added, nothing changed, one new person, a person who unsubscribed meanwhile,
#: a file without the optional columns (stored choices stay).
SECOND = """phone,name,zones,min_severity
010-1111-0001,Kim,S1251100,Severe
010-1111-0002,Lee2,서해중부먼바다,Moderate
01011110006,Kang,S1251000 S1232110,Minor
01011110010,Seo,파주시,
01011110011,Oh,S1251100,
01011110012,New,S1251100;S1252010,
010-1111-0012,New again,L1013710,
"""


def _import(engine: Engine, path: Path) -> ImportReport:
    return import_csv(engine, path, chunk_rows=4, consent_source="csv-test", consent_text="test consent",
                      consent_at=CONSENT_AT)


def _state(engine: Engine) -> tuple[dict[str, tuple[Any, ...]], set[tuple[str, str]], set[str]]:
    """Everything an import writes, keyed by phone (ids and write times differ between engines)."""
    with Session(engine) as s:
        people = {}
        for p in s.exec(select(Subscriber)):
            people[p.phone] = (p.name, p.language, p.status, p.min_severity, list(p.categories), list(p.hazards),
                               p.quiet_start_min, p.quiet_end_min, p.consent_at, p.consent_source, p.consent_text)
        zones = {(phone, code) for phone, code in s.execute(text(
            "SELECT p.phone, z.zone_code FROM subscription z JOIN subscriber p ON p.id = z.subscriber_id "
            "WHERE z.kind = 'zone'"))}
        # who the change log says changed (what the live zone index and the catch-up read)
        logged = {phone for (phone,) in s.execute(text(
            "SELECT DISTINCT p.phone FROM subscription_change c JOIN subscriber p ON p.id = c.subscriber_id"))}
    return people, zones, logged


def _run(engine: Engine, tmp_path: Path) -> list[Any]:
    upgrade(engine)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(FIRST, encoding="utf-8")
    second.write_text(SECOND, encoding="utf-8")
    one = _import(engine, first)
    with Session(engine) as s:
        store.remove(s, "01011110011")
        s.commit()
    two = _import(engine, second)
    again = _import(engine, second)
    reports = [(r.rows, r.inserted, r.updated, r.unchanged, r.merged, r.skipped, r.errors) for r in (one, two, again)]
    return [reports, _state(engine)]


def test_postgres_copy_gives_the_same_rows_as_sqlite(tmp_path: Path, pg_url: str) -> None:
    lite = make_engine(f"sqlite:///{tmp_path / 'lite.db'}")
    pg = make_engine(pg_url)
    try:
        on_sqlite, on_postgres = _run(lite, tmp_path), _run(pg, tmp_path)
    finally:
        lite.dispose()
        pg.dispose()
    assert on_postgres == on_sqlite
    reports, (people, zones, logged) = on_sqlite
    assert logged == {phone for phone, _ in zones}
    one, two, again = reports
    assert one[:6] == (12, 5, 0, 0, 1, 6)
    assert [e.split(":", 1)[0] for e in one[6]] == ["line 3", "line 5", "line 6", "line 9", "line 10", "line 11"]
    assert "more fields than the header" in one[6][-1]
    assert two[:6] == (7, 1, 2, 2, 1, 1)  # Lee and Kang changed, Kim and Seo not, Oh unsubscribed, 0012 twice
    assert two[6][0].startswith("line 6: phone '010-****-0011': unsubscribed")
    assert again[:6] == (7, 0, 0, 5, 1, 1)
    assert people["01011110001"] == ("Kim", "ko", "active", "Severe", ["Met"], ["풍랑"], 1320, 360, CONSENT_AT,
                                     "csv-test", "test consent")
    assert people["01011110002"][:4] == ("Lee2", "en", "active", "Moderate")
    assert people["01011110006"][4:6] == (["Met", "Geo"], ["태풍", "풍랑"])
    assert people["01011110011"][2] == "unsubscribed"
    assert {code for phone, code in zones if phone == "01011110001"} == {"L1013710", "S1251100", "S1252010"}
    assert {code for phone, code in zones if phone == "01011110012"} == {"L1013710", "S1251100", "S1252010"}
    assert ("01011110006", "S1232110") in zones


def _change_log(engine: Engine) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT subscriber_id, count(*) FROM subscription_change "
                                      "GROUP BY subscriber_id")).all())


def _has_trigger(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = :n"),
                            {"n": CHANGE_TRIGGER}).first() is not None


@pytest.fixture
def migrated(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def test_sqlite_import_logs_each_person_whose_zones_it_wrote_and_keeps_the_trigger(migrated: Engine,
                                                                                   tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("phone,name,zones,min_severity\n" + "".join(f"0106{i:07d},,S1251000,\n" for i in range(30)),
                    encoding="utf-8")
    import_csv(migrated, path, chunk_rows=7)
    assert _has_trigger(migrated)
    with Session(migrated) as s:
        ids = [store.get_by_phone(s, f"0106{i:07d}").id for i in range(30)]  # type: ignore[union-attr]
    assert _change_log(migrated) == {sid: 1 for sid in ids}  # one row per person, not one per zone row
    more = tmp_path / "more.csv"
    more.write_text("phone,name,zones,min_severity\n01060000003,,S1232110,\n01060000004,,S1251000,\n",
                    encoding="utf-8")
    import_csv(migrated, more)
    log = _change_log(migrated)
    assert log[ids[3]] == 2 and log[ids[4]] == 1  # a zone added is logged; nothing written, nothing logged
    with Session(migrated) as s:  # the trigger is back: any other writer is logged as before
        store.add_subscriber(s, "01069999999", ["S1251100"])
        s.commit()
        added = store.get_by_phone(s, "01069999999")
    assert added is not None and _change_log(migrated)[added.id] == 1


def test_a_chunk_that_fails_rolls_back_and_leaves_the_trigger(migrated: Engine, tmp_path: Path) -> None:
    with migrated.begin() as conn:  # a database error in the middle of the second chunk
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON subscriber WHEN NEW.phone = '01060000009' "
                          "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))
    path = tmp_path / "people.csv"
    path.write_text("phone,name,zones,min_severity\n" + "".join(f"0106{i:07d},,S1251100,\n" for i in range(12)),
                    encoding="utf-8")
    with pytest.raises(Exception, match="refused by the test"):
        import_csv(migrated, path, chunk_rows=5)
    assert _has_trigger(migrated)
    with Session(migrated) as s:  # the first chunk committed, the failed one left nothing
        assert list(s.exec(select(Subscriber.phone).order_by(col(Subscriber.phone)))) == [
            f"0106{i:07d}" for i in range(5)]
    assert len(_change_log(migrated)) == 5

    with Session(migrated) as s:  # a caller's Session that goes on and commits what it has
        with pytest.raises(Exception, match="refused by the test"):
            import_csv(s, path, chunk_rows=5)
        s.commit()
    assert _has_trigger(migrated)


def test_the_change_log_has_one_row_per_person_not_per_zone_row(db_url: str, tmp_path: Path) -> None:
    """What the live zone index and the catch-up read is "who changed": a person with four zones is one row
    (SQLite: the import's own log statement; PostgreSQL: the statement trigger of migration 0013)."""
    engine = make_engine(db_url)
    upgrade(engine)
    path = tmp_path / "groups.csv"
    path.write_text("phone,name,zones,min_severity\n" + "".join(f"0106{i:07d},,S1251000,\n" for i in range(9)),
                    encoding="utf-8")
    try:
        import_csv(engine, path, chunk_rows=4)
        with engine.connect() as conn:
            rows, people = conn.execute(text("SELECT count(*), count(DISTINCT subscriber_id) "
                                             "FROM subscription_change")).one()
            zone_rows = conn.execute(text("SELECT count(*) FROM subscription")).scalar_one()
    finally:
        engine.dispose()
    assert (rows, people, zone_rows) == (9, 9, 36)
