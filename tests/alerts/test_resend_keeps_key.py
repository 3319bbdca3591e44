"""A batch taken over from a dead sender keeps its key when the re-send is refused (found by the chaos test).

Its first request had arrived (the sender died before recording the answer); the take-over's request is
refused with a 429. That refusal says nothing about the first request: the batch must come back under the
same key (NHN then answers -1005 and the adapter reconciles), never be queued under a fresh key, which
sent it a second time.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet import Fleet, limited_server  # noqa: E402

from alerts.config import load_config  # noqa: E402
from alerts.db import session_scope  # noqa: E402
from alerts.models import Delivery  # noqa: E402
from alerts.pipeline import Pipeline  # noqa: E402
from subscribers.sqltypes import utcnow  # noqa: E402


def expire_leases(pipeline: Pipeline) -> None:
    with session_scope(pipeline.engine) as session:
        session.exec(update(Delivery).where(Delivery.status == "sending")  # type: ignore[call-overload]
                     .values(lease_until=utcnow() - timedelta(seconds=1)))


def test_a_refused_resend_of_a_batch_that_arrived_keeps_its_key(tmp_path: Path) -> None:
    with limited_server(1000) as srv:
        fleet = Fleet(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", srv, rate=100)
        fleet.queue(5)
        pipeline = Pipeline(load_config(fleet.cfg))
        try:
            dispatcher = pipeline.dispatcher
            claim = dispatcher._claim()  # committed: rows 'sending' under the key
            phones = dispatcher._phones([r.subscriber_id for r in claim.rows])
            messages = [dispatcher._message(r, phones[r.subscriber_id]) for r in claim.rows]
            dispatcher.provider.send(messages, idempotency_key=claim.key)  # arrives; its sender then "dies"
            expire_leases(pipeline)
            srv.fail_next(1, status=429)
            report = dispatcher.dispatch_due(max_batches=1)
            assert report.requeued == 5
            with session_scope(pipeline.engine) as session:
                rows = list(session.exec(Delivery.__table__.select()))  # type: ignore[attr-defined]
            assert {(r.status, r.idempotency_key) for r in rows} == {("sending", claim.key)}
            expire_leases(pipeline)
            assert dispatcher.dispatch_due().accepted == 5  # -1005, reconciled from the provider's list
        finally:
            pipeline.close()
    assert len(srv.messages) == 5 and all(srv.sends_to(p) == 1 for p in fleet.phones)


def test_a_batch_is_taken_over_whole_or_not_at_all(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL, found by bench_workers_rate with 8 workers: two workers taking over the same orphaned batch
    each got part of it (SKIP LOCKED) and sent their part under its key; the provider took the first part and
    refused the other as a repeated key, which then never went out. Here another worker holds one of the
    batch's rows: the take-over waits for it and sends the whole batch; while another worker is taking the
    batch over, it is left to that worker."""
    import threading

    from sqlalchemy import text

    with limited_server(1000) as srv:
        fleet = Fleet(tmp_path, pg_url, srv, rate=100)
        fleet.queue(5)
        pipeline = Pipeline(load_config(fleet.cfg))
        try:
            dispatcher = pipeline.dispatcher
            claim = dispatcher._claim()  # committed: 5 rows 'sending' under the key; its sender then "dies"
            expire_leases(pipeline)
            other = pipeline.engine.connect()
            try:
                # another worker taking the batch over: it holds the batch's lock (then one of its rows)
                other.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:key))"),
                              {"ns": 0x616C7263, "key": claim.key})
                assert dispatcher._claim().rows == []  # left to that worker (no fresh rows either)
                other.rollback()
                other.execute(text("SELECT id FROM delivery WHERE id = :id FOR UPDATE"), {"id": claim.rows[-1].id})
                taken: list[object] = []
                worker = threading.Thread(target=lambda: taken.append(dispatcher._claim()), daemon=True)
                worker.start()
                worker.join(1.0)
                assert not taken  # it waits for the row instead of taking the other four
            finally:
                other.rollback()
                other.close()
            worker.join(60)
            assert len(taken[0].rows) == 5 and taken[0].key == claim.key  # type: ignore[attr-defined]
        finally:
            pipeline.close()
