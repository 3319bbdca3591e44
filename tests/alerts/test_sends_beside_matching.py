"""On PostgreSQL a worker's sends never wait for its match, which may wait for another worker's matching turn.

Found profiling ``benchmarks/bench_workers_rate.py``: the dispatcher recorded its results under the pipeline's
lock (SQLite's one writer), which the match held while it waited for the cross-worker matching turn, so with
more workers each one sent less. Here another "worker" holds the matching turn; the match waits; a batch is
still claimed, sent and recorded meanwhile.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from alimcast_testkit import cap_xml, config_text
from sqlalchemy import text

from alerts.config import load_config
from alerts.leader import MATCH_LOCK_KEY
from alerts.pipeline import Pipeline, feed_spec
from subscribers.csv_import import import_csv


def test_a_batch_is_sent_while_the_match_waits_for_its_turn(pg_url: str, tmp_path: Path) -> None:
    feed = tmp_path / "w.cap.xml"
    feed.write_bytes(cap_xml("KMA-TURN-1", sent=datetime.now(UTC).replace(microsecond=0), zones=["S1251100"]))
    path = tmp_path / "turn.toml"
    path.write_text(config_text(pg_url, [("kma", "cap", str(feed))]), encoding="utf-8")
    people = tmp_path / "people.csv"
    people.write_text("phone,name,zones\n" + "".join(f"0105{i:07d},p{i},S1251100\n" for i in range(20)),
                      encoding="utf-8")
    pipeline = Pipeline(load_config(path))
    try:
        import_csv(pipeline.engine, people)
        pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
        assert pipeline.match().queued == 20
        other = pipeline.engine.connect()
        matched = threading.Event()
        try:
            other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MATCH_LOCK_KEY})  # another worker matching

            def match() -> None:
                pipeline.match()
                matched.set()

            waiting = threading.Thread(target=match, daemon=True)
            waiting.start()
            assert not matched.wait(0.5)  # the match waits for its turn, holding the pipeline's lock
            reports = []
            sender = threading.Thread(target=lambda: reports.append(pipeline.dispatcher.dispatch_due(max_batches=1)),
                                      daemon=True)
            sender.start()
            sender.join(60)
            assert reports, "the send waited for the match"
            assert reports[0].accepted == reports[0].claimed > 0
            assert not matched.is_set()
        finally:
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MATCH_LOCK_KEY})
            other.close()
        assert matched.wait(60)
    finally:
        pipeline.close()
