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
