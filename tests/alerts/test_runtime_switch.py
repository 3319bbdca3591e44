"""The thread switch interval as ``alimcast run`` sets it (alerts/runtime_switch.py): read from ``[runtime]``
strictly, set once the run has started, logged, and put back when the run ends (the test process, like an
embedding program, is left as it was found)."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import cap_xml, config_text
from typer.testing import CliRunner

from alerts.cli.app import app
from alerts.config import load_config
from alerts.runtime_switch import MAX_SWITCH_INTERVAL_MS, SWITCH_INTERVAL_MS, SwitchInterval


@pytest.fixture
def restore_switch() -> Iterator[float]:
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


def test_the_interval_is_read_from_runtime_with_a_default() -> None:
    assert SwitchInterval.from_config({}).ms == SWITCH_INTERVAL_MS == 1.0
    assert SwitchInterval.from_config({"runtime": {"switch_interval_ms": 0.5}}).ms == 0.5
    assert SwitchInterval.from_config({"runtime": {"switch_interval_ms": 0}}).ms == 0.0


@pytest.mark.parametrize("value", [-1, True, "1", math.nan, math.inf, MAX_SWITCH_INTERVAL_MS + 1, 1e-322, 0.0009])
def test_a_bad_interval_is_refused_naming_the_key(value: object) -> None:
    """1e-322 ms passed a plain "from 0" check and underflowed to 0 s, which sys.setswitchinterval refuses."""
    with pytest.raises(ValueError,
                       match=r"^\[runtime\] switch_interval_ms: must be 0 or a number from 0.001 to 1000, not "):
        SwitchInterval.from_config({"runtime": {"switch_interval_ms": value}})


def test_apply_sets_it_and_restore_puts_back_what_was_there(restore_switch: float) -> None:
    sys.setswitchinterval(0.004)
    switch = SwitchInterval(ms=0.25)
    assert switch.apply() == "thread switch interval 0.25 ms"
    assert sys.getswitchinterval() == pytest.approx(0.00025)
    switch.apply()  # applying twice keeps the first "before"
    switch.restore()
    assert sys.getswitchinterval() == pytest.approx(0.004)
    switch.restore()  # nothing left to put back
    assert sys.getswitchinterval() == pytest.approx(0.004)


def test_zero_keeps_the_interpreters_own(restore_switch: float) -> None:
    sys.setswitchinterval(0.003)
    switch = SwitchInterval(ms=0)
    assert switch.apply() == "thread switch interval 3 ms"
    switch.restore()
    assert sys.getswitchinterval() == pytest.approx(0.003)


def test_run_once_sets_the_interval_and_puts_it_back(tmp_path: Path, restore_switch: float,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    sys.setswitchinterval(0.005)
    sent = datetime.now(UTC).replace(microsecond=0)
    feed = tmp_path / "feed.xml"
    feed.write_bytes(cap_xml("SWITCH-ONCE", sent=sent, zones=["S1251100"], expires=sent + timedelta(hours=6)))
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(f"sqlite:///{tmp_path / 'a.db'}", [("kma", "cap", str(feed))])
                   + "\n[runtime]\nswitch_interval_ms = 2.5\n", encoding="utf-8")
    assert SwitchInterval.from_config(load_config(cfg).raw).ms == 2.5
    with caplog.at_level(logging.INFO, logger="alimcast.runtime"):
        result = CliRunner().invoke(app, ["run", "--once", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "thread switch interval 2.5 ms" in caplog.text
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_run_refuses_a_bad_interval_in_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(f"sqlite:///{tmp_path / 'a.db'}", []) + "\n[runtime]\nswitch_interval_ms = -2\n",
                   encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--once", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "[runtime] switch_interval_ms: must be 0 or a number from 0.001 to 1000, not -2" in result.output
