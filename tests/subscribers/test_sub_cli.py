"""The ``subscribers`` sub-app through typer's runner, on a real config file and SQLite database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from alerts.cli.subscribers import app as subscribers_app

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / 'cli.db'}"

[provider]
kind = "dryrun"

[templates.alert]
code = "ALERT1"
text = "#{{headline}}"

[templates.update]
code = "UPDATE1"
text = "#{{headline}}"

[templates.cancel]
code = "CANCEL1"
text = "#{{headline}}"
""",
        encoding="utf-8",
    )
    return path


def _app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(subscribers_app, name="subscribers")
    return root


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(_app(), ["subscribers", *args])
    return result.exit_code, result.stdout, result.stderr


def test_add_list_pause_remove(config: Path) -> None:
    code, out, err = run("add", "--phone", "010-1234-5678", "--zone", "S1251000", "--zone", "서해중부먼바다",
                         "--name", "Kim", "--min-severity", "Severe", "--config", str(config))
    assert code == 0, err
    assert "010-****-5678" in out and "zones=6" in out and "12345678" not in out

    code, out, err = run("list", "--config", str(config))
    assert code == 0 and "010-1***-5678" in out and "01012345678" not in out and "1 subscriber" in out
    code, out, _ = run("list", "--json", "--show-phone", "--config", str(config))
    records = json.loads(out)
    assert records[0]["phone"] == "01012345678" and records[0]["min_severity"] == "Severe"
    assert len(records[0]["zones"]) == 6

    assert run("pause", "--phone", "01012345678", "--config", str(config))[1].strip() == "010-****-5678 status=paused"
    assert run("resume", "--phone", "01012345678", "--config", str(config))[0] == 0
    code, out, _ = run("prefs", "--phone", "01012345678", "--quiet-hours", "22:00-06:00", "--config", str(config))
    assert code == 0 and "quiet_hours=22:00-06:00" in out
    code, out, _ = run("remove", "--phone", "+82 10 1234 5678", "--config", str(config))
    assert code == 0 and "unsubscribed" in out
    code, _, err = run("resume", "--phone", "01012345678", "--config", str(config))
    assert code == 1 and err.startswith("error: ") and "unsubscribed" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--phone", "02-123-4567", "--zone", "S1251100"], "not a mobile"),
        (["add", "--phone", "01012345678", "--zone", "고성군"], "ambiguous"),
        (["add", "--phone", "01012345678", "--zone", "S1251100", "--language", "fr"], "language"),
        (["pause", "--phone", "01099998888"], "010-****-8888: not found"),
    ],
)
def test_bad_input_is_one_error_line(config: Path, args: list[str], message: str) -> None:
    code, _, err = run(*args, "--config", str(config))
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_import_and_export(config: Path, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text(
        "phone,name,zones,min_severity\n01011110001,A,S1251100,\nnot-a-phone,B,S1251100,\n01011110002,C,XX,\n"
        "01011110003,D,파주시,Severe\n",
        encoding="utf-8",
    )
    code, out, err = run("import", str(source), "--config", str(config))
    assert code == 0
    assert "inserted 2" in out and "skipped 2" in out
    assert "line 3: phone" in err and "line 4: zone 'XX'" in err

    exported = tmp_path / "out.csv"
    code, out, _ = run("export", str(exported), "--config", str(config))
    assert code == 0 and "exported 2" in out
    assert exported.read_text(encoding="utf-8").splitlines()[0].startswith("phone,name,zones,min_severity")

    code, out, _ = run("import", str(exported), "--config", str(config))
    assert code == 0 and "inserted 0" in out and "unchanged 2" in out

    code, _, err = run("import", str(tmp_path / "missing.csv"), "--config", str(config))
    assert code == 1 and "no such file" in err
