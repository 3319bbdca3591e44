"""A claimed batch that is not sent yet gives way to a warning of higher priority queued since its claim.

Why: the dispatcher claims a batch a little before the rate lets it start (the claim's lead, the time its
preparation takes), so that its place is not left empty meanwhile. A tsunami warning matched in that moment
would otherwise wait for the claimed bulk batch to take the place it was about to get, and then for the next
place, a pace later (alerts/delivery/pacing.py). Once the request is ready, before it waits for its place, the
dispatcher asks whether anything due now outranks the batch; if so the batch goes back to the queue as it was,
and the next claim (at once) takes the urgent rows first.

Why putting it back is safe: no request was made under the batch's key (the check comes before its request thread
is even started), so its rows are queued again without a key, exactly as
before the claim, their attempt not counted. The UPDATE names the key, so a row that is no longer this batch's
(taken over by another worker after a lapsed lease: not possible within a live lease, but checked anyway) is
left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, or_, select, update
from sqlalchemy.engine import Connection

from alerts.models import Delivery
from alerts.sqlutil import id_in, id_list

_DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]


def outranked(connection: Connection, first_id: int, now: datetime) -> bool:
    """Whether a row due at ``now`` and still queued has a higher priority than the row ``first_id`` (a claimed
    batch's first row: the claim takes the highest priority first, so it has the batch's highest). One indexed
    look (``ix_delivery_claim``: status, priority)."""
    mine = select(_DELIVERY.c.priority).where(_DELIVERY.c.id == first_id).scalar_subquery()
    stmt = (select(_DELIVERY.c.id)
            .where(_DELIVERY.c.status == "queued",
                   or_(_DELIVERY.c.next_attempt_at.is_(None), _DELIVERY.c.next_attempt_at <= now),
                   _DELIVERY.c.priority > mine)
            .limit(1))
    return connection.execute(stmt).first() is not None


def put_back(connection: Connection, ids: Sequence[int], key: str) -> int:
    """The rows of a claimed batch never sent (no request was made under ``key``) queued again as they were
    before the claim: no key, no lease, the claim's attempt not counted. Returns how many rows were put back."""
    if not ids:
        return 0
    dialect = connection.dialect.name
    stmt = (update(_DELIVERY)
            .where(id_in(_DELIVERY.c.id, dialect), _DELIVERY.c.status == "sending",
                   _DELIVERY.c.idempotency_key == key)
            .values(status="queued", idempotency_key=None, lease_until=None,
                    attempts=_DELIVERY.c.attempts - 1))
    return int(connection.execute(stmt, {"ids": id_list(list(ids), dialect)}).rowcount or 0)
