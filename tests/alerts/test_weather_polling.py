"""Polling follows the weather end to end: a real feed file, the real pipeline on SQLite, the real scheduler.

A live warning from a feed shortens its interval to ``active_interval_seconds``; its 해제 brings the ordinary
interval back; ``feeds status`` shows the interval in force.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alimcast_testkit import cap_xml
from typer.testing import CliRunner

from alerts.cli.app import app
from alerts.config import load_config
from alerts.pipeline import Pipeline, feed_spec
from alerts.weather_polling import WeatherPolling
from feeds.scheduler import FeedScheduler


def test_a_live_warning_shortens_the_feeds_interval_until_it_is_lifted(
        tmp_path: Path, write_config: Callable[..., Path]) -> None:
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    feed_file = tmp_path / "kma.xml"
    feed_file.write_bytes(cap_xml("W-STORM", sent=sent, zones=["S1251100"], expires=sent + timedelta(hours=12)))
    path = write_config(f"sqlite:///{tmp_path / 'a.db'}", [("kma", "cap", str(feed_file))])
    path.write_text(path.read_text(encoding="utf-8").replace(
        "interval_seconds = 60\n", "interval_seconds = 60\nactive_interval_seconds = 10\n", 1), encoding="utf-8")
    cfg = load_config(path)
    pipeline = Pipeline(cfg)
    polling = WeatherPolling(pipeline.engine, pipeline.poll_and_process)
    spec = feed_spec(cfg.feeds[0])
    scheduler = FeedScheduler([spec], polling.poll, run_immediately=False)
    polling.scheduler = scheduler
    scheduler.start()
    runner = CliRunner()

    def status() -> dict[str, object]:
        result = runner.invoke(app, ["feeds", "status", "--json", "--config", str(path)])
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.output)
        return row

    try:
        assert scheduler.interval_of("kma") == 60 and status()["interval_seconds"] == 60
        polling.poll(spec)
        assert scheduler.interval_of("kma") == 10
        row = status()
        assert (row["interval_seconds"], row["live_warnings"]) == (10, True)

        feed_file.write_bytes(cap_xml("W-STORM-END", sent=sent + timedelta(minutes=1), zones=["S1251100"],
                                      msg_type="Cancel", references=[("W-STORM", sent)]))
        job = scheduler.get_job("feed:kma")
        assert job is not None
        state = pipeline.states.get("kma")  # the next poll is due (ten seconds on, without waiting for them)
        state.next_poll_at = None
        pipeline.states.save(state)
        polling.poll(job.args[0])  # the job now carries the active spec
        assert scheduler.interval_of("kma") == 60
        assert (status()["interval_seconds"], status()["live_warnings"]) == (60, False)
    finally:
        scheduler.shutdown(wait=False)
        pipeline.close()
