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
from subscribers import csv_import, store
from subscribers.bulk_writers import CHANGE_TRIGGER, PostgresBulkWriter
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


# -- PostgreSQL: new people's zone rows with the row triggers set aside (and the path without it) -----------


def _fast_path(engine: Engine) -> bool:
    with engine.connect() as conn:
        return PostgresBulkWriter(conn, False)._set_triggers_aside


def test_postgres_without_the_privilege_takes_the_trigger_path_and_gives_the_same_rows(
        tmp_path: Path, pg_server: Any) -> None:
    """A role that may not set session_replication_role (not a superuser, no GRANT SET) imports through the
    foreign key and the change-log trigger, as before; both paths give the same rows and the same log."""
    owner_url = pg_server.create_database("fast_owner")
    limited_url = pg_server.create_database("fast_limited")
    owner = make_engine(owner_url)
    setup = make_engine(limited_url)
    upgrade(setup)
    with setup.begin() as conn:
        conn.execute(text("DROP ROLE IF EXISTS importer_without_replica"))
        conn.execute(text("CREATE ROLE importer_without_replica LOGIN"))
        conn.execute(text("GRANT ALL ON ALL TABLES IN SCHEMA public TO importer_without_replica"))
        conn.execute(text("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO importer_without_replica"))
    setup.dispose()
    limited = make_engine(limited_url.replace("//postgres@", "//importer_without_replica@"))
    try:
        upgrade(owner)
        assert _fast_path(owner) and not _fast_path(limited)
        with_fast_path, without = _run(owner, tmp_path), _run(limited, tmp_path)
    finally:
        owner.dispose()
        limited.dispose()
    assert with_fast_path == without
    reports, (_people, zones, logged) = with_fast_path
    assert logged == {phone for phone, _ in zones}
    assert reports[1][6][0].startswith("line 6: phone '010-****-0011': unsubscribed (20")  # its UTC day


def test_postgres_fast_path_logs_once_per_person_and_restores_the_triggers_in_the_same_transaction(
        pg_url: str, tmp_path: Path) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    path = tmp_path / "people.csv"
    path.write_text("phone,name,zones,min_severity\n" + "".join(f"0106{i:07d},,S1251000,\n" for i in range(9)),
                    encoding="utf-8")
    try:
        assert _fast_path(engine)
        with Session(engine) as s:  # a caller's transaction: the import, then another writer in it
            import_csv(s, path, chunk_rows=4)
            txn = s.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar_one()
            store.add_subscriber(s, "01069999999", ["S1251100"])
            s.commit()
        with engine.connect() as conn:
            log = conn.execute(text("SELECT p.phone, c.txn FROM subscription_change c "
                                    "JOIN subscriber p ON p.id = c.subscriber_id")).all()
            zone_rows = conn.execute(text("SELECT count(*) FROM subscription")).scalar_one()
            replication_role = conn.execute(text("SHOW session_replication_role")).scalar_one()
    finally:
        engine.dispose()
    assert sorted(phone for phone, _ in log) == sorted([f"0106{i:07d}" for i in range(9)] + ["01069999999"])
    assert {t for _, t in log} == {txn}  # the trigger's own columns; the later add logged by the trigger
    assert zone_rows == 9 * 4 + 1
    assert replication_role == "origin"


def test_postgres_fast_path_is_not_taken_when_subscription_has_another_insert_trigger(
        pg_url: str, tmp_path: Path) -> None:
    """An operator's own trigger on subscription must fire for imported rows: the import then keeps every
    trigger (and the foreign key) instead of setting them aside."""
    engine = make_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE audit_zone (subscriber_id integer)"))
        conn.execute(text("CREATE FUNCTION audit_zone_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                          "INSERT INTO audit_zone VALUES (NEW.subscriber_id); RETURN NULL; END $$"))
        conn.execute(text("CREATE TRIGGER audit_zone AFTER INSERT ON subscription FOR EACH ROW "
                          "EXECUTE FUNCTION audit_zone_row()"))
    path = tmp_path / "people.csv"
    path.write_text("phone,name,zones,min_severity\n01060000001,,S1251100 S1252010,\n01060000002,,S1251100,\n",
                    encoding="utf-8")
    try:
        assert not _fast_path(engine)
        import_csv(engine, path)
        with engine.connect() as conn:
            audited = conn.execute(text("SELECT count(*) FROM audit_zone")).scalar_one()
            logged = conn.execute(text("SELECT count(DISTINCT subscriber_id) FROM subscription_change")).scalar_one()
    finally:
        engine.dispose()
    assert (audited, logged) == (3, 2)


def test_postgres_fast_path_refuses_zone_rows_of_people_it_did_not_insert(pg_url: str) -> None:
    """The foreign key is not checked per row on this path: zone rows must point at this chunk's new people."""
    engine = make_engine(pg_url)
    upgrade(engine)
    try:
        with engine.connect() as conn:
            writer = PostgresBulkWriter(conn, True)
            conn.commit()
            with pytest.raises(RuntimeError, match="outside this chunk's new people"), writer.chunk():
                ids, _ = writer.insert_people(
                    [("01060000001", "", "ko", "Unknown", "[]", "[]", None, None)],
                    {"consent_at": CONSENT_AT, "consent_source": "t", "consent_text": "t", "status": "active",
                     "created_at": CONSENT_AT, "updated_at": CONSENT_AT})
                writer.insert_zones([(ids["01060000001"], "S1251100"), (ids["01060000001"] + 1, "S1251100")],
                                    new_people=True)
        with engine.connect() as conn:  # the chunk was rolled back as a whole
            assert conn.execute(text("SELECT count(*) FROM subscriber")).scalar_one() == 0
            assert conn.execute(text("SELECT count(*) FROM subscription")).scalar_one() == 0
    finally:
        engine.dispose()


def test_a_reimport_of_an_unchanged_file_writes_nothing(db_url: str, tmp_path: Path) -> None:
    """Compared with what is stored (people and their zones, read once per chunk), nothing is written: no
    update, no zone row, nothing in the change log; a person whose zones were changed since gets them back."""
    engine = make_engine(db_url)
    upgrade(engine)
    path = tmp_path / "people.csv"
    path.write_text("phone,name,zones,min_severity,categories,hazards,quiet_hours\n" + "".join(
        f"0106{i:07d},P{i},S1251000,Severe,\"Met, Geo\",풍랑,22:00-06:00\n" for i in range(9)), encoding="utf-8")

    def written() -> tuple[Any, ...]:
        with engine.connect() as conn:
            return conn.execute(text("SELECT (SELECT max(updated_at) FROM subscriber), "
                                     "(SELECT count(*) FROM subscription), "
                                     "(SELECT count(*) FROM subscription_change)")).one()

    try:
        import_csv(engine, path, chunk_rows=4)
        before = written()
        again = import_csv(engine, path, chunk_rows=4)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 9)
        assert written() == before
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM subscription WHERE zone_code = 'S1251100'"))
        third = import_csv(engine, path, chunk_rows=4)
        assert (third.updated, third.unchanged) == (9, 0)
        assert written()[1] == before[1]
    finally:
        engine.dispose()


def test_a_large_import_on_postgres_ends_with_fresh_statistics(tmp_path: Path, pg_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """An import that wrote ANALYZE_AFTER_ROWS people or more analyzes the people's tables (the planner's row
    count is the table's, not "never analyzed"); a smaller one leaves them to autovacuum, which is off here for
    these two tables so only the import can have analyzed them."""
    monkeypatch.setattr(csv_import, "ANALYZE_AFTER_ROWS", 30)
    engine = make_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        for table in ("subscriber", "subscription"):
            conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")

    def planner_rows() -> dict[str, float]:
        with engine.connect() as conn:
            return dict(conn.exec_driver_sql("SELECT relname, reltuples FROM pg_class "
                                             "WHERE relname IN ('subscriber', 'subscription')").all())

    small = tmp_path / "small.csv"
    small.write_text("phone,name,zones\n" + "".join(f"0109{i:07d},p{i},S1251100\n" for i in range(29)),
                     encoding="utf-8")
    assert import_csv(engine, small).inserted == 29
    assert planner_rows() == {"subscriber": -1, "subscription": -1}  # never analyzed
    large = tmp_path / "large.csv"
    large.write_text("phone,name,zones\n" + "".join(f"0108{i:07d},q{i},S1251100 S1252010\n" for i in range(40)),
                     encoding="utf-8")
    assert import_csv(engine, large).inserted == 40
    assert planner_rows() == {"subscriber": 69, "subscription": 29 + 80}
    engine.dispose()


def test_an_analyze_kept_waiting_by_a_lock_gives_up_and_the_import_stands(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Another session holds a lock ANALYZE must wait for (here: its own ANALYZE-class lock on the table): the
    import's ANALYZE gives up after its timeout with a warning; the rows are stored and the report is whole."""
    monkeypatch.setattr(csv_import, "ANALYZE_AFTER_ROWS", 10)
    monkeypatch.setattr(csv_import, "ANALYZE_LOCK_TIMEOUT_S", 0.2)
    engine = make_engine(pg_url)
    upgrade(engine)
    people = tmp_path / "people.csv"
    people.write_text("phone,name,zones\n" + "".join(f"0107{i:07d},r{i},S1251100\n" for i in range(20)),
                      encoding="utf-8")
    with engine.connect() as holder:
        holder.exec_driver_sql("LOCK TABLE subscription IN SHARE UPDATE EXCLUSIVE MODE")
        with caplog.at_level("WARNING", logger="alimcast.subscribers.csv_import"):
            report = import_csv(engine, people)
        holder.rollback()
    assert report.inserted == 20 and not report.errors
    assert "after the import: ANALYZE failed (autovacuum will analyze later)" in caplog.text
    assert "lock timeout" in caplog.text
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM subscriber").scalar_one() == 20
    engine.dispose()
