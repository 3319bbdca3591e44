"""The strict config check, driven through the real CLI on the shipped config.toml.

Every table and every key of the shipped file gets one typo (generated from the file, so a key added to
it later is covered without editing this test): exit code 2 and one line naming the key and the table,
with the right "did you mean".
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.cli.app import app
from alerts.config import parse_config
from alerts.config_schema import SCHEMA, check_known_keys

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "config.toml").read_text(encoding="utf-8")
HEADER = re.compile(r"^(\[\[?)([A-Za-z0-9_.]+)(\]\]?)\s*$")
KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=")
runner = CliRunner()


def typo(name: str) -> str:
    """The kind of slip the issue saw: a doubled last letter (intervall_seconds, smss)."""
    return name + name[-1]


def _cases() -> list[tuple[str, str, str, str]]:
    """(id, edited config text, bad name, expected did-you-mean) for every header and the first occurrence
    of every key in every table of the shipped file."""
    lines = SHIPPED.splitlines()
    cases: list[tuple[str, str, str, str]] = []
    seen_tables: set[str] = set()
    seen_keys: set[tuple[str, str]] = set()
    table = ""
    for i, line in enumerate(lines):
        header = HEADER.match(line)
        if header:
            table = header.group(2)
            if table not in seen_tables:
                seen_tables.add(table)
                parent, _, last = table.rpartition(".")
                bad = f"{parent + '.' if parent else ''}{typo(last)}"
                edited = [*lines[:i], f"{header.group(1)}{bad}{header.group(3)}", *lines[i + 1:]]
                cases.append((f"table-{table}", "\n".join(edited), typo(last), f"[{table}]"))
            continue
        key = KEY.match(line)
        if key and (table, key.group(1)) not in seen_keys:
            seen_keys.add((table, key.group(1)))
            name = key.group(1)
            edited = [*lines[:i], line.replace(name, typo(name), 1), *lines[i + 1:]]
            cases.append((f"key-{table}.{name}", "\n".join(edited), typo(name), name))
    return cases


CASES = _cases()


def test_the_cases_cover_every_table_and_key_of_the_shipped_file() -> None:
    raw = tomllib.loads(SHIPPED)
    keys = {(t, k) for t, body in raw.items() if isinstance(body, dict) for k, v in body.items()
            if not isinstance(v, dict | list) or k == "ais_sources" or k == "zone_value_names"}
    covered = {c[0] for c in CASES}
    for table, key in keys:
        assert f"key-{table}.{key}" in covered
    for name in ("table-database", "table-provider", "table-feeds", "table-templates.alert",
                 "table-demo.subscribers", "key-feeds.interval_seconds", "key-templates.cancel.text",
                 "key-demo.subscribers.min_severity"):
        assert name in covered
    assert len(CASES) > 45


def test_the_shipped_config_passes(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(SHIPPED, encoding="utf-8")
    result = runner.invoke(app, ["feeds", "list", "--config", str(path)])
    assert result.exit_code == 0, result.stderr
    check_known_keys(tomllib.loads((REPO / "alerts" / "defaults" / "config.toml").read_text(encoding="utf-8")))


@pytest.mark.parametrize(("text", "bad", "guess"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_typo_is_one_line_and_exit_2(tmp_path: Path, text: str, bad: str, guess: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["feeds", "list", "--config", str(path)])
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: config.toml: ")
    assert f"unknown {'table' if guess.startswith('[') else 'key'}" in lines[0]
    assert bad in lines[0] and f"did you mean {guess}?" in lines[0]
    assert "Traceback" not in result.stderr and not result.stdout


def test_the_issue_s_example_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(SHIPPED.replace("interval_seconds = 300", "intervall_seconds = 15"), encoding="utf-8")
    result = runner.invoke(app, ["feeds", "list", "--config", str(path)])
    assert result.stderr.strip() == ("error: config.toml: [[feeds]] #1 (sample-kma-pungrang): unknown key "
                                     "intervall_seconds — did you mean interval_seconds?")
    assert result.exit_code == 2


def test_a_registered_table_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """What another branch does to add a table: one entry in SCHEMA, nothing else."""
    raw = tomllib.loads(SHIPPED + "\n[tidewatch]\nwindow_seconds = 30\n")
    with pytest.raises(Exception, match="unknown table \\[tidewatch\\]"):
        parse_config(raw)
    monkeypatch.setitem(SCHEMA, "tidewatch", ("window_seconds",))
    parse_config(raw)
    digest = tomllib.loads(SHIPPED + '\n[templates.digest]\ncode = "G"\ntext = "x"\n')
    with pytest.raises(Exception, match="unknown table \\[templates.digest\\]"):
        parse_config(digest)
    monkeypatch.setitem(SCHEMA, "templates.digest", ("code", "text"))
    parse_config(digest)


@pytest.mark.parametrize(("url", "ok"), [
    ("postgres://alimcast@db/alimcast", "postgresql+psycopg://alimcast@db/alimcast"),
    ("postgresql://alimcast@db/alimcast", "postgresql+psycopg://alimcast@db/alimcast"),
    ("mysql://root@db/alimcast", None),
    ("mongodb://db/alimcast", None),
])
def test_database_schemes(tmp_path: Path, url: str, ok: str | None) -> None:
    path = tmp_path / "config.toml"
    path.write_text(SHIPPED.replace('url = "sqlite:///alimcast-data/alimcast.db"', f'url = "{url}"'),
                    encoding="utf-8")
    if ok is not None:
        assert parse_config(tomllib.loads(path.read_text(encoding="utf-8")), path).database_url == ok
        return
    result = runner.invoke(app, ["feeds", "list", "--config", str(path)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "[database] url" in line and "sqlite:///" in line and "postgresql+psycopg://" in line


def test_database_url_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_DB_URL", "postgres://u:pw@db/a")
    raw = tomllib.loads(SHIPPED.replace('url = "sqlite:///alimcast-data/alimcast.db"', 'url = "env:T_DB_URL"'))
    assert parse_config(raw).database_url == "postgresql+psycopg://u:pw@db/a"
