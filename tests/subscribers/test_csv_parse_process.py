"""A big CSV file is parsed by a child process (subscribers.parse_process): the import must be the same, line for
line, as when this process parses it, on both engines; an unreadable line and a failed write end as before, and
the child never outlives the import."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from alerts.db import make_engine, upgrade
from subscribers.csv_import import PARSE_PROCESS_MIN_ROWS, CsvImportError, ImportReport, import_csv
from subscribers.parse_process import ParseProcess, ParseProcessError

#: Every kind of line: errors, a person twice in one chunk and again in a later chunk, blank lines, quoted cells,
#: short rows, optional columns, group codes and broad names.
FILE = """phone,name,zones,min_severity,language,categories,quiet_hours,hazards
010-1111-0001,Kim,S1251100 S1252010,Severe,,Met,22:00-06:00,풍랑
02-123-4567,Landline,S1251100,,,,,
010-1111-0002,Lee,서해중부먼바다,,en,,,
010-1111-0001,Kim,L1013710,Severe,,Met,22:00-06:00,풍랑

010-1111-0004,Choi,S1251100,Huge,,,,
010-1111-0005,Jung,,,,,,
+82 10-1111-0006,Kang,"S1251000, S1232110",Minor,,"Met, Geo",,태풍 풍랑
01011110007,Yoon,S1251100,,xx,,,
01011110008,Han,S1251100,,,,9-5,
01011110009,Lim,S1251100,extra,cell,,,,,
01011110010,Seo,파주시
01011110011,Oh,S1251100;S1252010,,,,,
01011110002,Lee again,S1232110,Moderate,en,,,
1011110012,No zero,S1251100,,,,,
"""

#: The same people later: changes, zones added, unchanged lines, one new person.
AGAIN = """phone,name,zones,min_severity
010-1111-0001,Kim,S1251100,Severe
010-1111-0002,Lee2,서해중부먼바다,Moderate
01011110006,Kang,S1251000 S1232110,Minor
01011110010,Seo,파주시,
01011110013,New,S1251100;S1252010,
010-1111-0013,New again,L1013710,
"""


def _state(engine: Engine) -> tuple[list[Any], list[Any], int]:
    with engine.connect() as conn:
        people = [tuple(r) for r in conn.execute(text(
            "SELECT phone, name, language, status, min_severity, CAST(categories AS text), CAST(hazards AS text), "
            "quiet_start_min, quiet_end_min FROM subscriber ORDER BY phone"))]
        zones = [tuple(r) for r in conn.execute(text(
            "SELECT p.phone, z.kind, z.zone_code FROM subscription z JOIN subscriber p ON p.id = z.subscriber_id "
            "ORDER BY p.phone, z.zone_code"))]
        logged = conn.execute(text("SELECT count(DISTINCT subscriber_id) FROM subscription_change")).scalar_one()
    return people, zones, logged


def _summary(report: ImportReport) -> tuple[Any, ...]:
    return (report.rows, report.inserted, report.updated, report.unchanged, report.merged, report.skipped,
            report.errors)


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Engine]]:
    """A new, migrated database of the parameter's engine each call."""
    made: list[Engine] = []

    def make(name: str) -> Engine:
        url = (f"sqlite:///{tmp_path / f'{name}.db'}" if request.param == "sqlite"
               else request.getfixturevalue("pg_server").create_database(f"pp_{name}_{os.getpid()}_{len(made)}"))
        engine = make_engine(url)
        upgrade(engine)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.dispose()


def test_a_child_process_parses_exactly_as_this_process_does(fresh_engine: Callable[[str], Engine],
                                                            tmp_path: Path) -> None:
    first, again = tmp_path / "first.csv", tmp_path / "again.csv"
    first.write_text(FILE, encoding="utf-8")
    again.write_text(AGAIN, encoding="utf-8")
    results = []
    for in_child in (False, True):
        engine = fresh_engine("child" if in_child else "here")
        reports = [_summary(import_csv(engine, path, chunk_rows=3, parse_process=in_child))
                   for path in (first, again, again)]
        results.append((reports, _state(engine)))
    assert results[1] == results[0]
    reports, (people, zones, logged) = results[0]
    # Kim twice in the first chunk (merged); Lee again in a later one (an update)
    assert reports[0][:6] == (14, 6, 1, 0, 1, 6)
    assert [e.split(":", 1)[0] for e in reports[0][6]] == ["line 3", "line 7", "line 8", "line 10", "line 11",
                                                          "line 12"]
    assert reports[2][:6] == (6, 0, 0, 5, 1, 0)
    assert len(people) == 7 and logged == 7 and ("01011110006", "zone", "S1232110") in zones
    assert {code for phone, _, code in zones if phone == "01011110001"} == {"L1013710", "S1251100", "S1252010"}


def test_a_cp949_file_and_a_bom_are_read_the_same_in_the_child(fresh_engine: Callable[[str], Engine],
                                                              tmp_path: Path) -> None:
    excel, bom = tmp_path / "excel.csv", tmp_path / "bom.csv"
    excel.write_text("phone,name,zones,min_severity\n01044440001,홍길동,파주시,\n", encoding="cp949")
    bom.write_text("Phone ,Name,zones\n01044440002,김철수,서해중부먼바다\n", encoding="utf-8-sig")
    engine = fresh_engine("encodings")
    assert import_csv(engine, excel, parse_process=True).inserted == 1
    assert import_csv(engine, bom, parse_process=True).inserted == 1
    people, _, _ = _state(engine)
    assert [(p[0], p[1]) for p in people] == [("01044440001", "홍길동"), ("01044440002", "김철수")]


def test_an_unreadable_line_stops_the_import_after_what_was_read_before_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    lines = [f"0105555{i:04d},P{i},S1251100," for i in range(7)]
    lines.insert(5, '01099990000,"' + "x" * 200_000 + '",S1251100,')  # a cell over the csv module's limit
    path.write_text("phone,name,zones,min_severity\n" + "\n".join(lines) + "\n", encoding="utf-8")
    outcomes = []
    for in_child in (False, True):
        engine = make_engine(f"sqlite:///{tmp_path / f'{in_child}.db'}")
        upgrade(engine)
        with pytest.raises(CsvImportError) as caught:
            import_csv(engine, path, chunk_rows=2, parse_process=in_child)
        outcomes.append((str(caught.value), _state(engine)[0]))
        engine.dispose()
    assert outcomes[1] == outcomes[0]
    message, people = outcomes[0]
    assert message.startswith(f"{path}: line 7: unreadable: field larger than field limit")
    assert [p[0] for p in people] == [f"0105555{i:04d}" for i in range(5)]  # every line before it, written


def _parser_children() -> list[int]:
    """This process's children that run the CSV parser (zombies included: they would not have been waited for)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read()
        except OSError:
            continue
        if parent == os.getpid() and b"subscribers.parse_process import main" in command:
            found.append(int(pid))
    return found


def test_a_write_that_fails_ends_the_child_and_keeps_the_chunks_before_it(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'refuse.db'}")
    upgrade(engine)
    with engine.begin() as conn:  # a database error in the second chunk, while the child still has lines to parse
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON subscriber WHEN NEW.phone = '01060000009' "
                          "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))
    path = tmp_path / "people.csv"
    path.write_text("phone,name,zones,min_severity\n" + "".join(f"0106{i:07d},,S1251100,\n" for i in range(20_000)),
                    encoding="utf-8")
    try:
        with pytest.raises(Exception, match="refused by the test"):
            import_csv(engine, path, chunk_rows=5, parse_process=True)
        assert _parser_children() == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM subscriber")).scalar_one() == 5
    finally:
        engine.dispose()


def test_a_child_that_dies_is_one_line_naming_the_file_and_keeps_what_came_before(tmp_path: Path) -> None:
    """A parser child killed mid-file (out of memory, an operator's kill): the CLI and the console catch only
    CsvImportError, so anything else was a traceback (or HTTP 500). One line naming the file; the chunks stored
    before it stay, and importing the file again completes it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'killed.db'}")
    upgrade(engine)
    path = tmp_path / "people.csv"
    path.write_text("phone,name,zones,min_severity\n" + "".join(f"0106{i:07d},,S1251100,\n" for i in range(20_000)),
                    encoding="utf-8")

    def kill_the_child(done: int, total: int) -> None:
        for pid in _parser_children():
            os.kill(pid, signal.SIGKILL)

    try:
        with pytest.raises(CsvImportError) as caught:
            import_csv(engine, path, chunk_rows=1000, parse_process=True, progress=kill_the_child)
        message = str(caught.value)
        assert message.startswith(f"{path}: the parser process ended without finishing") and "\n" not in message
        assert _parser_children() == []
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM subscriber")).scalar_one()
        assert 1000 <= stored < 20_000
        again = import_csv(engine, path, chunk_rows=1000, parse_process=True)
        assert again.errors == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM subscriber")).scalar_one() == 20_000
    finally:
        engine.dispose()


def test_the_child_is_seen_while_it_runs_and_its_own_failure_is_raised_here(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("phone,zones\n" + "".join(f"0106{i:07d},S1251100\n" for i in range(50)), encoding="utf-8")
    with ParseProcess(path, "utf-8-sig", 10) as chunks:
        first, part = next(chunks)
        assert len(_parser_children()) == 1  # what the test above relies on finds a running child
        assert list(first)[:2] == ["01060000000", "01060000001"] and part.rows == 10
    assert _parser_children() == []
    with pytest.raises(ParseProcessError, match="parser process failed: FileNotFoundError"), \
            ParseProcess(tmp_path / "gone.csv", "utf-8-sig", 10) as chunks:
        list(chunks)
    assert _parser_children() == []


def test_by_default_a_big_file_is_parsed_by_a_child_on_postgresql_only(request: pytest.FixtureRequest,
                                                                       fresh_engine: Callable[[str], Engine],
                                                                       tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("phone,zones\n" + "".join(f"0107{i:07d},S1251100\n" for i in range(PARSE_PROCESS_MIN_ROWS)),
                    encoding="utf-8")
    engine = fresh_engine("auto")
    children_seen: list[int] = []  # while the import runs: progress is called after each chunk
    report = import_csv(engine, path, progress=lambda done, total: children_seen.append(len(_parser_children())))
    assert report.inserted == PARSE_PROCESS_MIN_ROWS and children_seen
    on_postgres = request.node.callspec.params["fresh_engine"] == "postgres"
    # after the first chunk the child still has 30,000 lines to hand over (more than a pipe holds): alive
    assert children_seen[0] == (1 if on_postgres else 0) and max(children_seen) <= 1
    assert on_postgres or set(children_seen) == {0}
    assert _parser_children() == []
