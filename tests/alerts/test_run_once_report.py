"""`run --once` describes the whole run: every batch it sent, every result collected (several pages, results
that lag behind the send), and what is still pending said as pending."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alimcast_testkit import TEMPLATES, cap_xml, config_text

from alerts.cli.run import collect_until_done, summary_pending
from alerts.config import load_config
from alerts.pipeline import Pipeline, RunSummary
from alerts.testing.nhn_server import NhnTestServer

PEOPLE = 30


def people_config(tmp_path: Path, srv: NhnTestServer) -> tuple[Path, dict[str, str]]:
    feed = tmp_path / "w.xml"
    feed.write_bytes(cap_xml("ONCE-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    people = "[demo]\nallow_real_provider = true\n\n" + "".join(
        f'[[demo.subscribers]]\nphone = "0108000{i:04d}"\nzones = ["S1251100"]\n\n' for i in range(PEOPLE))
    text = config_text(f"sqlite:///{tmp_path / 'a.db'}", [("w", "cap", str(feed))], provider="nhn",
                       base_url=srv.base_url, extra=people).replace("rate_per_second = 1000",
                                                                   "rate_per_second = 1000\nbatch_size = 8")
    cfg = tmp_path / "config.toml"
    cfg.write_text(text, encoding="utf-8")
    env = {**os.environ, "T_APP_KEY": srv.app_key, "T_SECRET_KEY": srv.secret_key, "T_SENDER_KEY": srv.sender_key}
    return cfg, env


def run_once(cfg: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alerts.cli", "run", "--once", "--config", str(cfg), *extra],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def table_row(stdout: str, label: str) -> str:
    lines = [line for line in stdout.splitlines() if label in line]
    assert lines, stdout
    return " ".join(lines[0].replace("│", " ").split())


def test_the_summary_counts_every_batch_and_every_late_result(tmp_path: Path) -> None:
    with NhnTestServer(templates={c: t for c, t in TEMPLATES.values()}, results_after_polls=1) as srv:
        cfg, env = people_config(tmp_path, srv)
        done = run_once(cfg, env, "--results-wait", "60")
        assert done.returncode == 0, done.stderr
        assert len(srv.send_requests()) == 4  # 30 recipients in batches of 8
        assert f"{PEOPLE} accepted" in table_row(done.stdout, "dispatch")
        assert f"alimtalk: {PEOPLE}" in table_row(done.stdout, "messages by channel")
        assert f"delivered: {PEOPLE}" in table_row(done.stdout, "delivery results")
        assert "none" in table_row(done.stdout, "still pending")


def test_results_still_missing_after_the_wait_are_said_to_be_pending(tmp_path: Path) -> None:
    with NhnTestServer(templates={c: t for c, t in TEMPLATES.values()}, results_after_polls=100) as srv:
        cfg, env = people_config(tmp_path, srv)
        done = run_once(cfg, env, "--results-wait", "0")
        assert done.returncode == 0, done.stderr
        assert f"{PEOPLE} accepted" in table_row(done.stdout, "dispatch")
        assert f"sent, awaiting result: {PEOPLE}" in table_row(done.stdout, "still pending")
        assert "none yet" in table_row(done.stdout, "delivery results")


def test_results_are_collected_page_after_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with NhnTestServer(templates={c: t for c, t in TEMPLATES.values()}) as srv:
        cfg, env = people_config(tmp_path, srv)
        for key in ("T_APP_KEY", "T_SECRET_KEY", "T_SENDER_KEY"):
            monkeypatch.setenv(key, env[key])
        pipeline = Pipeline(load_config(cfg))
        started = datetime.now(UTC)
        summary = pipeline.run_once()
        pipeline.dispatcher.results_limit = 7  # pages smaller than the run: the summary must add them all up
        collect_until_done(pipeline, summary, 30)
        summary_pending(pipeline, summary, started)
        assert summary.dispatch.accepted == PEOPLE
        assert summary.results.by_status["delivered"] == PEOPLE
        assert not +summary.pending
        pipeline.close()
        assert isinstance(summary, RunSummary)
