"""The garbage collector as ``alimcast run`` sets it (alerts/runtime_gc.py): the settings read from ``[runtime]``
(strictly), the start-up heap frozen, a frozen cycle that died reclaimed at the next settle (a frozen heap is not
a leak that grows with the uptime), and no per-recipient object outliving its dispatch round under those
settings (real SQLite, the loopback NHN server)."""

from __future__ import annotations

import gc
import logging
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alimcast_testkit import TEMPLATES, cap_xml, config_text
from sqlalchemy import func
from sqlmodel import select
from typer.testing import CliRunner

from alerts.cli.app import app
from alerts.config import ConfigError, load_config
from alerts.db import session_scope
from alerts.delivery.outbox_rows import OutboxRow
from alerts.delivery.providers.base import DeliveryResult, OutgoingMessage, PendingDelivery, SendOutcome
from alerts.models import Delivery
from alerts.pipeline import Pipeline, feed_spec
from alerts.runtime_gc import MAX_YOUNG_THRESHOLD, GcSettings, HeapKeeper, describe, settle_heap
from alerts.testing.nhn_server import NhnTestServer
from subscribers.store import add_subscriber


@pytest.fixture
def restore_gc() -> Iterator[None]:
    """Each test leaves the collector as it found it (the test process is not alimcast run)."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settings_default_and_from_config() -> None:
    assert GcSettings.from_config({}) == GcSettings(freeze=True, young_threshold=10_000, refreeze_minutes=60.0)
    got = GcSettings.from_config({"runtime": {"gc_freeze": False, "gc_young_threshold": 0,
                                              "gc_refreeze_minutes": 5}})
    assert got == GcSettings(freeze=False, young_threshold=0, refreeze_minutes=5.0)


@pytest.mark.parametrize(("table", "named"), [
    ({"gc_freeze": "yes"}, "[runtime] gc_freeze"),
    ({"gc_young_threshold": -1}, "[runtime] gc_young_threshold"),
    ({"gc_young_threshold": True}, "[runtime] gc_young_threshold"),
    ({"gc_young_threshold": 2**31}, "[runtime] gc_young_threshold"),  # gc.set_threshold's C int overflowed
    ({"gc_refreeze_minutes": "hourly"}, "[runtime] gc_refreeze_minutes"),
    ({"gc_refreeze_minutes": float("nan")}, "[runtime] gc_refreeze_minutes"),  # TOML's nan: every minute
    ({"gc_refreeze_minutes": float("inf")}, "[runtime] gc_refreeze_minutes"),
])
def test_bad_value_is_one_line_naming_the_key(table: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match="^" + named.replace("[", r"\[").replace("]", r"\]")) as info:
        GcSettings.from_config({"runtime": table})
    assert "\n" not in str(info.value)


def test_runtime_table_is_registered_with_the_strict_loader(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    base = config_text(f"sqlite:///{tmp_path / 'a.db'}", [])
    cfg.write_text(base + "\n[runtime]\ngc_freeze = true\ngc_young_threshold = 20000\ngc_refreeze_minutes = 30\n",
                   encoding="utf-8")
    assert GcSettings.from_config(load_config(cfg).raw).young_threshold == 20000
    cfg.write_text(base + "\n[runtime]\ngc_freez = true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="gc_freez.*did you mean gc_freeze"):
        load_config(cfg)


def test_the_largest_threshold_accepted_is_one_the_collector_takes(restore_gc: None) -> None:
    settle_heap(GcSettings.from_config({"runtime": {"gc_young_threshold": MAX_YOUNG_THRESHOLD, "gc_freeze": False}}))
    assert gc.get_threshold()[0] == MAX_YOUNG_THRESHOLD


def test_settle_freezes_and_sets_the_young_threshold(restore_gc: None) -> None:
    line = settle_heap(GcSettings(young_threshold=12_345))
    assert gc.get_threshold()[0] == 12_345
    assert gc.get_freeze_count() > 1000  # the modules, at least
    assert "thresholds=(12345, " in line and describe().startswith("gc: enabled=True thresholds=(12345, ")


def test_default_gc_keeps_cpython_threshold_and_freezes_nothing(restore_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    settle_heap(GcSettings(freeze=False, young_threshold=0))
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_a_frozen_cycle_that_dies_is_reclaimed_at_the_next_settle(restore_gc: None) -> None:
    """What makes freezing safe in a process that runs for months: the leak is bounded by one period."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    settle_heap(GcSettings())
    del a, b  # the cycle dies while frozen: reference counting cannot free it, and collections skip it
    gc.collect()
    assert alive() is not None
    settle_heap(GcSettings())  # unfreeze, collect, freeze
    assert alive() is None


def test_heap_keeper_refreezes_once_the_period_has_passed_and_restores(restore_gc: None) -> None:
    now = [0.0]
    gc.unfreeze()
    before = gc.get_threshold()
    keeper = HeapKeeper(GcSettings(refreeze_minutes=1), clock=lambda: now[0])
    keeper.settle()
    assert keeper.settles == 1
    now[0] = 59.0
    assert not keeper.refreeze_if_due()
    now[0] = 61.0
    assert keeper.refreeze_if_due() and keeper.settles == 2
    keeper.restore()
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
    assert not HeapKeeper(GcSettings(refreeze_minutes=0), clock=lambda: now[0]).refreeze_if_due()
    assert not HeapKeeper(GcSettings(freeze=False), clock=lambda: now[0]).refreeze_if_due()


PER_RECIPIENT = (OutboxRow, OutgoingMessage, SendOutcome, PendingDelivery, DeliveryResult)


def live_per_recipient() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, PER_RECIPIENT))


def test_dispatch_rounds_leave_no_per_recipient_object_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              restore_gc: None) -> None:
    """Under the runtime settings (frozen heap, young threshold 10,000), round after round of dispatch and
    results: every message, outcome and result dies with its round (none frozen, none kept), and the objects
    the collector tracks outside the frozen heap do not grow from round to round beyond what the loopback
    server (in this process) stores."""
    with NhnTestServer(templates=dict(TEMPLATES.values())) as server:
        for name, value in (("T_APP_KEY", server.app_key), ("T_SECRET_KEY", server.secret_key),
                            ("T_SENDER_KEY", server.sender_key)):
            monkeypatch.setenv(name, value)
        cfg = tmp_path / "config.toml"
        feed = tmp_path / "feed.xml"
        cfg.write_text(config_text(f"sqlite:///{tmp_path / 'a.db'}", [("kma", "cap", str(feed))], provider="nhn",
                                   base_url=server.base_url).replace("rate_per_second = 1000",
                                                                     "rate_per_second = 100000"), encoding="utf-8")
        pipeline = Pipeline(load_config(cfg))
        people = 120
        with session_scope(pipeline.engine) as session:
            for i in range(people):
                add_subscriber(session, f"0109{i:07d}", ["S1251100"])
        pipeline.warm_up()
        settle_heap(GcSettings())
        tracked: list[int] = []
        try:
            for n in range(6):
                sent = datetime.now(UTC).replace(microsecond=0)
                feed.write_bytes(cap_xml(f"GC-{n}", sent=sent, zones=["S1251100"], event="풍랑주의보",
                                         expires=sent + timedelta(hours=6)))
                pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
                pipeline.match()
                report = pipeline.dispatcher.dispatch_due()
                assert report.accepted >= people, report
                while pipeline.dispatcher.collect_results().updated:
                    pass
                # the send thread lets go of its finished job just after handing over the answer: waited for
                deadline = time.monotonic() + 30
                while gc.collect() is not None and live_per_recipient() and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert live_per_recipient() == 0
                tracked.append(len(gc.get_objects()))
            with session_scope(pipeline.engine) as session:
                delivered = session.exec(select(func.count()).select_from(Delivery)
                                         .where(Delivery.status == "delivered")).one()
            assert delivered >= 6 * people
        finally:
            pipeline.close()
    # the server keeps every message it was sent (a few objects each); beyond that, nothing accumulates
    growth = [later - earlier for earlier, later in zip(tracked[1:], tracked[2:], strict=False)]
    assert max(growth) < 40 * people, (tracked, growth)


def test_run_once_settles_the_heap_and_leaves_the_process_as_it_found_it(
        tmp_path: Path, restore_gc: None, caplog: pytest.LogCaptureFixture) -> None:
    """``alimcast run --once`` (here in this process, as embedding code would call it) freezes its start-up heap
    with the configured threshold, says so in its log, and puts the collector back when it ends."""
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    sent = datetime.now(UTC).replace(microsecond=0)
    feed = tmp_path / "feed.xml"
    feed.write_bytes(cap_xml("GC-ONCE", sent=sent, zones=["S1251100"], expires=sent + timedelta(hours=6)))
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(f"sqlite:///{tmp_path / 'a.db'}", [("kma", "cap", str(feed))])
                   + "\n[runtime]\ngc_young_threshold = 23456\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="alimcast.runtime"):
        result = CliRunner().invoke(app, ["run", "--once", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "gc: enabled=True thresholds=(23456, 10, 10) frozen=" in caplog.text
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == (700, 10, 10)


def test_run_refuses_a_bad_runtime_value_in_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(f"sqlite:///{tmp_path / 'a.db'}", []) + "\n[runtime]\ngc_freeze = 1\n",
                   encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--once", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "[runtime] gc_freeze: must be true or false, not 1" in result.output
