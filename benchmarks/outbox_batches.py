"""The batches a dispatcher is about to send, read from the outbox: the baseline loops of the benchmarks post these.

Why one place: a bare httpx loop is a fair baseline only when it posts what the dispatcher posts (the rendered
parameters, the SMS/LMS fallback each message carries), not placeholder bodies; the request's size sets the
provider's answer time, which the rate rule counts (alerts/delivery/rate.py).
"""

from __future__ import annotations

from sqlmodel import select

from alerts.db import session_scope
from alerts.delivery.providers.base import OutgoingMessage
from alerts.delivery.sms import build_fallback
from alerts.models import Delivery
from alerts.pipeline import Pipeline


def same_batches(pipeline: Pipeline, batch_size: int) -> list[list[OutgoingMessage]]:
    """The batches the dispatcher will send (ids, numbers, parameters, fallback), built before it runs."""
    with session_scope(pipeline.engine) as s:
        from subscribers.models import Subscriber
        rows = s.exec(select(Delivery.id, Subscriber.phone, Delivery.template_code, Delivery.params, Delivery.text)
                      .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                      .where(Delivery.status == "queued").order_by(Delivery.id)).all()
    messages = [OutgoingMessage(did or 0, phone, code, dict(params), text, build_fallback(text)[0])
                for did, phone, code, params, text in rows]
    return [messages[i:i + batch_size] for i in range(0, len(messages), batch_size)]
