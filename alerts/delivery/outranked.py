"""A claimed batch that is not sent yet gives way to a warning of higher priority queued since its claim.

Why: the dispatcher claims a batch a little before the rate lets it start (the claim's lead, the time its
preparation takes), so that its place is not left empty meanwhile. A tsunami warning matched in that moment
would otherwise wait for the claimed bulk batch to take the place it was about to get, and then for the next
place, a pace later (alerts/delivery/pacing.py). Once the request is ready, before it waits for its place, the
dispatcher asks whether anything due now outranks the batch; if so the batch goes back to the queue as it was,
and the next claim (at once) takes the urgent rows first.

Why putting it back is safe: no request was made under the batch's key (the check comes before its request thread
is even started), so its rows are queued again without a key, exactly as
before the claim, their attempt not counted. The UPDATE names the key and the lease the claim wrote: a batch
taken over by another worker keeps its key (it may be re-sending it), but its lease is the taker's, always
later by a whole LEASE. Found by an audit: a claim whose preparation stalled past its lease (a pool wait, a
starved CPU) was taken over and sent by another worker, then put back and sent again under a fresh key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table, or_, select, update
from sqlalchemy.engine import Connection

from alerts.models import Delivery
from alerts.sqlutil import id_in, id_list

_DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]
#: A lease this much past the claim's is a takeover's (half of alerts.delivery.dispatch.LEASE, 6 s).
_TAKEN_OVER_AFTER = timedelta(seconds=3)


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


def put_back(connection: Connection, ids: Sequence[int], key: str, leased_until: datetime) -> int:
    """The rows of a claimed batch never sent (no request was made under ``key``) queued again as they were
    before the claim: no key, no lease, the claim's attempt not counted. Returns how many rows were put back.

    ``leased_until``: the lease the claim wrote. A worker that takes a lapsed batch over writes ``its now +
    LEASE``, and its now is past ``leased_until``: a row leased later than ``leased_until`` plus half a LEASE
    (slack for the stored value's precision) is another worker's now, and is left alone."""
    if not ids:
        return 0
    dialect = connection.dialect.name
    stmt = (update(_DELIVERY)
            .where(id_in(_DELIVERY.c.id, dialect), _DELIVERY.c.status == "sending",
                   _DELIVERY.c.idempotency_key == key,
                   _DELIVERY.c.lease_until < leased_until + _TAKEN_OVER_AFTER)
            .values(status="queued", idempotency_key=None, lease_until=None,
                    attempts=_DELIVERY.c.attempts - 1))
    return int(connection.execute(stmt, {"ids": id_list(list(ids), dialect)}).rowcount or 0)
