from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from subscribers import store
from subscribers.csv_import import CsvImportError, import_csv
from subscribers.models import Subscriber, Subscription

GOOD_AND_BAD = """phone,name,zones,min_severity
010-1111-0001,Kim,S1251100 S1252010,Severe
02-123-4567,Landline,S1251100,
010-1111-0002,Lee,서해중부먼바다,
010-1111-0003,Park,고성군,
010-1111-0004,Choi,S1251100,Huge
010-1111-0005,Jung,,
+82 10-1111-0006,Kang,S1251000,Minor
010-1111-0001,Kim,L1013710,Severe
"""


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def _table_counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as s:
        return (
            s.execute(select(func.count()).select_from(Subscriber)).scalar_one(),
            s.execute(select(func.count()).select_from(Subscription)).scalar_one(),
        )


def test_bad_lines_are_reported_with_their_line_number_and_skipped(engine: Engine, tmp_path: Path) -> None:
    report = import_csv(engine, _write(tmp_path / "in.csv", GOOD_AND_BAD))
    assert report.rows == 8
    assert report.inserted == 3  # 0001 (twice, merged), 0002, 0006
    assert report.merged == 1
    assert report.skipped == 4
    lines = [e.split(":", 1)[0] for e in report.errors]
    assert lines == ["line 3", "line 5", "line 6", "line 7"]
    assert "not a mobile" in report.errors[0]
    assert "ambiguous" in report.errors[1]
    assert "min_severity" in report.errors[2]
    assert "zones: empty" in report.errors[3]
    with Session(engine) as s:
        kim = store.get_by_phone(s, "01011110001")
        assert kim is not None and kim.min_severity == "Severe"
        assert store.zone_codes_of(s, kim.id) == ["L1013710", "S1251100", "S1252010"]
        kang = store.get_by_phone(s, "01011110006")
        assert kang is not None and len(store.zone_codes_of(s, kang.id)) == 4
        assert kang.consent_source == "csv" and "in.csv" in kang.consent_text


def test_reimport_is_idempotent_and_changes_update(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "in.csv", GOOD_AND_BAD)
    import_csv(engine, path)
    before = _table_counts(engine)
    again = import_csv(engine, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert _table_counts(engine) == before

    changed = GOOD_AND_BAD.replace("Lee,서해중부먼바다,", "Lee2,서해중부먼바다,Moderate").replace(
        "Kang,S1251000,Minor", "Kang,S1251000 S1232110,Minor"
    )
    report = import_csv(engine, _write(tmp_path / "changed.csv", changed))
    assert (report.inserted, report.updated, report.unchanged) == (0, 2, 1)
    people, subs = _table_counts(engine)
    assert (people, subs) == (before[0], before[1] + 1)
    with Session(engine) as s:
        lee = store.get_by_phone(s, "01011110002")
        assert lee is not None and (lee.name, lee.min_severity) == ("Lee2", "Moderate")


def test_optional_columns_and_export_roundtrip(engine: Engine, tmp_path: Path) -> None:
    text = (
        "phone,name,zones,min_severity,language,categories,quiet_hours\n"
        "01022220001,A,S1251100,Moderate,en,Met Geo,22:00-06:00\n"
        "01022220002,B,L1013700,,ko,,\n"
        "01022220003,C,S1251100,,xx,,\n"
        "01022220004,D,S1251100,,,Weather,\n"
        "01022220005,E,S1251100,,,,9-5\n"
    )
    report = import_csv(engine, _write(tmp_path / "opt.csv", text))
    assert report.inserted == 2
    assert [e.split(":")[0] for e in report.errors] == ["line 4", "line 5", "line 6"]
    with Session(engine) as s:
        a = store.get_by_phone(s, "01022220001")
        assert a is not None
        assert (a.language, a.categories, a.quiet_start_min, a.quiet_end_min) == ("en", ["Met", "Geo"], 1320, 360)
        exported = tmp_path / "export.csv"
        assert store.export(s, exported) == 2
    again = import_csv(engine, exported)
    assert (again.inserted, again.updated, again.unchanged, again.skipped) == (0, 0, 2, 0)


def test_unsubscribed_people_are_not_resubscribed_by_import(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "in.csv", "phone,name,zones,min_severity\n01033330001,X,S1251100,\n")
    import_csv(engine, path)
    with Session(engine) as s:
        store.remove(s, "01033330001")
        s.commit()
    report = import_csv(engine, path)
    assert report.skipped == 1 and report.errors[0].startswith("line 2: phone '010-****-0001': unsubscribed")
    with Session(engine) as s:
        row = store.get_by_phone(s, "01033330001")
        assert row is not None and row.status == "unsubscribed"


def test_session_target_joins_the_callers_transaction(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "in.csv", GOOD_AND_BAD)
    with Session(engine) as s:
        report = import_csv(s, path)
        assert report.inserted == 3
        s.rollback()
    assert _table_counts(engine) == (0, 0)


def test_chunks_smaller_than_the_file(engine: Engine, tmp_path: Path) -> None:
    rows = ["phone,name,zones,min_severity"]
    rows += [f"0105555{i:04d},P{i},{'S1251100' if i % 2 else 'S1251000'}," for i in range(250)]
    rows.append("01055550007,again,L1013710,")  # the same person in a later chunk
    path = _write(tmp_path / "many.csv", "\n".join(rows) + "\n")
    seen: list[tuple[int, int]] = []
    report = import_csv(engine, path, chunk_rows=40, progress=lambda done, total: seen.append((done, total)))
    assert (report.inserted, report.updated, report.skipped) == (250, 1, 0)
    assert seen[-1] == (251, 251) and len(seen) > 5
    assert _table_counts(engine) == (250, 125 * 1 + 125 * 4 + 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("phone,zone\n01012345678,S1251100\n", "unknown column 'zone'"),
        ("name,zones\nA,S1251100\n", "missing column 'phone'"),
        ("phone,zones,Phone\n01012345678,S1251100,x\n", "appears twice"),
    ],
)
def test_unusable_files_raise_one_clear_error(engine: Engine, tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(CsvImportError, match=message):
        import_csv(engine, _write(tmp_path / "bad.csv", content))


def test_header_case_spaces_and_bom_are_tolerated(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "bom.csv", "\ufeffPhone, Zones ,NAME\n010-7777-0001,S1251100,A\n")
    report = import_csv(engine, path)
    assert (report.inserted, report.skipped) == (1, 0)


def test_missing_file(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(CsvImportError, match="no such file"):
        import_csv(engine, tmp_path / "nope.csv")


def test_cp949_file_from_korean_excel(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "excel.csv", "phone,name,zones,min_severity\n01044440001,홍길동,파주시,\n", "cp949")
    report = import_csv(engine, path)
    assert report.inserted == 1
    with Session(engine) as s:
        row = store.get_by_phone(s, "01044440001")
        assert row is not None and row.name == "홍길동"
