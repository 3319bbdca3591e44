"""The provider interface: one batch send, one result poll. Real services and test doubles implement it.

Acceptance is not delivery (NHN answers "accepted", the delivery result arrives later), so the
interface has two calls and the outbox keeps each delivery's state between them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

#: Final or intermediate state of one delivery as the provider reports it.
ResultStatus = Literal[
    "pending",        # accepted, no result yet (or fallback in progress)
    "delivered",      # AlimTalk delivered (1000)
    "fallback_sent",  # AlimTalk failed, SMS/LMS fallback sent
    "failed",         # permanent failure (bad number, config error, fallback failed)
    "uncertain",      # sent, no receipt (3005): never resend blindly
]


@dataclass(slots=True)
class Fallback:
    """SMS/LMS re-send when KakaoTalk cannot deliver. ``kind`` chosen by EUC-KR byte length."""

    kind: Literal["SMS", "LMS"]
    content: str
    title: str | None = None


@dataclass(slots=True)
class OutgoingMessage:
    delivery_id: int
    recipient_no: str  # digits only, national form
    template_code: str
    parameters: dict[str, str]
    #: The template text with the parameters filled in: what the recipient reads.
    text: str
    fallback: Fallback | None = None


@dataclass(slots=True)
class SendOutcome:
    delivery_id: int
    accepted: bool
    request_id: str | None = None
    recipient_seq: int | None = None
    result_code: str | None = None
    result_message: str | None = None
    #: Not accepted but worth another try later (quota, transient provider error).
    retryable: bool = False


@dataclass(slots=True)
class PendingDelivery:
    delivery_id: int
    request_id: str
    recipient_seq: int | None


@dataclass(slots=True)
class DeliveryResult:
    delivery_id: int
    status: ResultStatus
    #: The channel that finally carried the message: alimtalk, sms or lms (None while pending/failed).
    channel: str | None = None
    result_code: str | None = None
    result_message: str | None = None
    #: The provider's own record of it, phone numbers masked (for logs and operators; the dispatcher never
    #: reads it): a read-only view, not necessarily a dict (alerts/delivery/providers/listed_row.py).
    raw: Mapping[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """A whole request failed. ``retryable`` says whether the same request (same idempotency key) may be
    sent again; ``retry_after`` is the provider's own wait in seconds when it gave one. ``unknown_outcome``:
    the request may have reached the provider (a timeout after sending), so it must only ever be repeated
    under the same idempotency key."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 unknown_outcome: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.unknown_outcome = unknown_outcome


class PreparedSend:
    """One batch's request built ahead of its place in the send window (its body encoded), and when its answer
    began to arrive.

    Why: the rate rule (alerts/delivery/rate.py) counts a request from the moment its place is taken until
    one second after its answer, so whatever the sender does inside that span costs rate. Building and
    encoding the body before the place is taken, and ending the span when the answer's first bytes arrive
    (before its body is read and parsed), leaves in the span only what the wire and the provider take.

    ``answered_at`` (``time.monotonic()``): when the answer of the *last* attempt began to arrive; None while
    an attempt is under way without an answer yet, or when the provider does not tell (then the caller counts
    from the moment :meth:`send` returns). The provider counts a request when it arrives, which is before it
    can answer, so every attempt of this request arrived (if at all) at or before ``answered_at``.
    """

    __slots__ = ("batch", "idempotency_key", "answered_at", "_run")

    def __init__(self, batch: Sequence[OutgoingMessage], idempotency_key: str,
                 run: Callable[[PreparedSend], list[SendOutcome]]) -> None:
        self.batch = batch
        self.idempotency_key = idempotency_key
        self.answered_at: float | None = None
        self._run = run

    def send(self) -> list[SendOutcome]:
        """Make the request (with the provider's retries): as :meth:`Provider.send`."""
        return self._run(self)


class Provider(ABC):
    #: Name used in config ``[provider] kind``.
    kind: ClassVar[str]
    #: Most recipients one send request may carry.
    max_batch: ClassVar[int] = 1000

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings

    def check_batch(self, batch: Sequence[OutgoingMessage]) -> None:
        """The shape every provider needs: 1..max_batch messages of one template (the dispatcher groups so)."""
        if not batch:
            raise ValueError("empty batch")
        if len(batch) > self.max_batch:
            raise ValueError(f"batch of {len(batch)} exceeds the {self.kind} limit of {self.max_batch} recipients")
        template_codes = {m.template_code for m in batch}
        if len(template_codes) != 1:
            raise ValueError(f"one batch must use one template, got {sorted(template_codes)}")

    @abstractmethod
    def send(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str) -> list[SendOutcome]:
        """Send one batch (≤ ``max_batch``). The same ``idempotency_key`` is reused on every retry of this
        batch, so a retry after a timeout can never send twice. Raise :class:`ProviderError` when the
        whole request failed."""

    def prepare(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str) -> PreparedSend:
        """The request of one batch, built ahead of sending (see :class:`PreparedSend`). This default builds
        nothing ahead and does not tell when the answer came: its :meth:`PreparedSend.send` is :meth:`send`."""
        return PreparedSend(batch, idempotency_key,
                            lambda prepared: self.send(prepared.batch, idempotency_key=prepared.idempotency_key))

    def lookup(self, batch: Sequence[OutgoingMessage], *, idempotency_key: str,
               sent_after: datetime) -> list[SendOutcome] | None:
        """What became of a batch sent with ``idempotency_key`` after ``sent_after``, for a sender that
        died mid-request longer ago than the provider remembers keys. ``[]``: nothing arrived, a fresh
        send is safe; outcomes: it arrived, do not send again; ``None``: this provider cannot tell."""
        return None

    @abstractmethod
    def poll_results(self, pending: Sequence[PendingDelivery]) -> list[DeliveryResult]:
        """Ask for the results of accepted deliveries; return only those that changed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
