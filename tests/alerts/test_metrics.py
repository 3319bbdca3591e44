"""``/metrics``: the Prometheus text format, parsed back with prometheus-client's own parser.

Real parts: a migrated SQLite outbox with queued and sent rows, the loopback NHN server behind the
instrumented provider (one accepted request, one refused with 429), and the HTTP server ``[metrics] port``
starts, scraped over a socket.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet import Fleet, limited_server  # noqa: E402

from alerts.config import load_config  # noqa: E402
from alerts.delivery.providers.base import ProviderError  # noqa: E402
from alerts.metrics import (  # noqa: E402
    InstrumentedProvider,
    exposition,
    metrics_port,
    serve,
)
from alerts.pipeline import Pipeline  # noqa: E402


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_show_queue_sends_latency_and_429s(tmp_path: Path) -> None:
    with limited_server(1000) as srv:
        fleet = Fleet(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", srv, rate=100)
        fleet.queue(30)
        pipeline = Pipeline(load_config(fleet.cfg))
        try:
            before = samples(exposition(pipeline.engine).decode())
            pipeline.dispatcher.provider = InstrumentedProvider(pipeline.dispatcher.provider)
            report = pipeline.dispatcher.dispatch_due(max_batches=1)
            assert report.accepted == 10  # ten requests of 10 fill a second of 100/s
            srv.fail_next(1, status=429)
            pipeline.dispatcher.dispatch_due(max_batches=1)
            after = samples(exposition(pipeline.engine).decode())
            port = serve(pipeline.engine, 0)
            scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        finally:
            pipeline.close()
    assert scraped.status_code == 200 and "alimcast_queue_depth" in scraped.text
    assert sum(v for (n, _), v in before.items() if n == "alimcast_queue_depth") == 30
    assert after[("alimcast_alerts_ingested_total", ())] == 1
    assert after[("alimcast_deliveries", (("status", "accepted"),))] == 10
    assert sum(v for (n, _), v in after.items() if n == "alimcast_queue_depth") == 20
    assert after[("alimcast_database_up", ())] == 1

    def grew(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0) - before.get((name, labels), 0)

    assert grew("alimcast_provider_requests_total", (("outcome", "accepted"),)) == 1
    assert grew("alimcast_provider_recipients_total", (("outcome", "accepted"),)) == 10
    assert grew("alimcast_provider_rate_limited_total") == 1
    assert grew("alimcast_provider_latency_seconds_count") == 2


def test_a_bad_metrics_port_is_one_clear_error() -> None:
    assert metrics_port({}) == (None, "127.0.0.1")
    assert metrics_port({"metrics": {"port": 9464, "host": "0.0.0.0"}}) == (9464, "0.0.0.0")
    with pytest.raises(ValueError, match=r"\[metrics\] port"):
        metrics_port({"metrics": {"port": "9464"}})


def test_provider_errors_pass_through_unchanged(tmp_path: Path) -> None:
    class Failing(InstrumentedProvider):
        pass

    with limited_server(1000) as srv:
        fleet = Fleet(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", srv, rate=100)
        pipeline = Pipeline(load_config(fleet.cfg))
        try:
            wrapped = Failing(pipeline.dispatcher.provider)
            assert wrapped.kind == "nhn" and wrapped.max_batch == pipeline.dispatcher.provider.max_batch
            srv.fail_next(1, status=400)
            from alerts.delivery.providers.base import OutgoingMessage

            msg = OutgoingMessage(delivery_id=1, recipient_no="01012345678", template_code="X", parameters={},
                                  text="t", fallback=None)
            with pytest.raises(ProviderError):
                wrapped.send([msg], idempotency_key="k" * 32)
        finally:
            pipeline.close()


def test_a_scrape_reads_the_whole_outbox_only_in_the_background(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue and rows in flight are exact at every scrape; the final statuses (a pass over the whole table)
    are read in the first scrape, then refreshed in a background thread once older than WHOLE_TABLE_SECONDS,
    never inside a scrape that already has figures."""
    import threading
    import time

    from sqlalchemy import event, text

    from alerts import metrics

    with limited_server(1000) as srv:
        fleet = Fleet(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", srv, rate=100)
        fleet.queue(30)
        pipeline = Pipeline(load_config(fleet.cfg))
        engine = pipeline.engine
        try:
            metrics.forget_cached(engine)
            statements: list[tuple[str, str]] = []

            def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
                statements.append((threading.current_thread().name, statement))

            event.listen(engine, "before_cursor_execute", seen)
            first = samples(exposition(engine).decode())
            assert first[("alimcast_deliveries", (("status", "queued"),))] == 30
            whole = [s for _, s in statements if "GROUP BY delivery.status" in s and "WHERE" not in s]
            assert whole  # the first scrape reads the final statuses
            with engine.begin() as conn:
                conn.execute(text("UPDATE delivery SET status = 'delivered' WHERE id IN "
                                  "(SELECT id FROM delivery ORDER BY id LIMIT 5)"))
            statements.clear()
            warm = samples(exposition(engine).decode())
            assert not [s for _, s in statements if "GROUP BY delivery.status" in s and "WHERE" not in s]  # bounded
            assert warm[("alimcast_deliveries", (("status", "queued"),))] == 25  # exact at once
            assert sum(v for (n, _), v in warm.items() if n == "alimcast_queue_depth") == 25
            assert ("alimcast_deliveries", (("status", "delivered"),)) not in warm  # final: not yet re-read

            monkeypatch.setattr(metrics, "WHOLE_TABLE_SECONDS", 0.0)
            statements.clear()
            deadline = time.monotonic() + 30
            while True:
                now = samples(exposition(engine).decode())
                if now.get(("alimcast_deliveries", (("status", "delivered"),))) == 5:
                    break
                assert time.monotonic() < deadline, "the background refresh never landed"
                time.sleep(0.05)
            assert all(thread == "metrics-refresh" for thread, s in statements
                       if "GROUP BY delivery.status" in s and "WHERE" not in s)
            event.remove(engine, "before_cursor_execute", seen)
        finally:
            pipeline.close()
