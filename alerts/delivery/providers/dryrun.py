"""A provider that sends nothing: for rehearsals, demos and first runs before NHN credentials exist.

What its results mean: :meth:`DryRunProvider.poll_results` reports every accepted delivery as
``status="delivered"``, ``channel="alimtalk"``, ``result_code="DRYRUN"``,
``result_message="dry run: not sent"``. That is "would have gone as AlimTalk", NOT a delivery: nothing
left the machine. ``ResultStatus`` has no dry-run value and the rest of the pipeline (costs, lifecycle)
needs a final status to finish a run, so the marker lives in ``result_code``; anything that reports
figures must check ``result_code == "DRYRUN"`` (or the provider kind) and label them "would have".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from alerts.delivery.providers.base import (
    DeliveryResult,
    OutgoingMessage,
    PendingDelivery,
    Provider,
    SendOutcome,
)
from alerts.delivery.providers.nhn import mask_phone

log = logging.getLogger(__name__)

DRYRUN_CODE = "DRYRUN"
DRYRUN_MESSAGE = "dry run: not sent"


@dataclass(frozen=True, slots=True)
class DryRunRequest:
    """One would-be send request (numbers masked: this is kept and logged)."""

    request_id: str
    idempotency_key: str
    template_code: str
    recipient_count: int
    masked_numbers: tuple[str, ...]
    fallback_count: int


class DryRunProvider(Provider):
    kind: ClassVar[str] = "dryrun"
    max_batch: ClassVar[int] = 1000

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings or {})
        self.sent_requests: list[DryRunRequest] = []
        self._lock = threading.Lock()

    def send(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str) -> list[SendOutcome]:
        self.check_batch(batch)
        with self._lock:
            # Same key again = a retry of the same batch: answer as before, record nothing new,
            # mirroring the real provider's idempotency.
            for previous in self.sent_requests:
                if previous.idempotency_key == idempotency_key:
                    request_id = previous.request_id
                    break
            else:
                request_id = f"dryrun-{len(self.sent_requests) + 1}"
                self.sent_requests.append(
                    DryRunRequest(
                        request_id=request_id,
                        idempotency_key=idempotency_key,
                        template_code=batch[0].template_code,
                        recipient_count=len(batch),
                        masked_numbers=tuple(mask_phone(m.recipient_no) for m in batch),
                        fallback_count=sum(1 for m in batch if m.fallback is not None),
                    )
                )
                log.info(
                    "dry run: would send template %s to %d recipient(s) (%s%s), %d with fallback",
                    batch[0].template_code,
                    len(batch),
                    ", ".join(mask_phone(m.recipient_no) for m in batch[:3]),
                    ", ..." if len(batch) > 3 else "",
                    sum(1 for m in batch if m.fallback is not None),
                )
        return [
            SendOutcome(m.delivery_id, True, request_id, seq, DRYRUN_CODE, DRYRUN_MESSAGE)
            for seq, m in enumerate(batch, start=1)
        ]

    def poll_results(self, pending: Sequence[PendingDelivery]) -> list[DeliveryResult]:
        return [
            DeliveryResult(
                delivery_id=p.delivery_id,
                status="delivered",
                channel="alimtalk",
                result_code=DRYRUN_CODE,
                result_message=DRYRUN_MESSAGE,
                raw={"dryrun": True, "requestId": p.request_id},
            )
            for p in pending
        ]
