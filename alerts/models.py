"""Alert-side tables: alerts, their threads, the outbox of deliveries, the cost ledger, feed health.

The outbox row is written in the same transaction as the match that created it (a crash between a
database write and a queue write orphaned jobs forever in other systems), and ``(alert_id,
subscriber_id)`` is unique, so a message can be queued at most once however often an alert arrives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, UniqueConstraint, event, select, text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import relationship
from sqlalchemy.sql import ColumnElement
from sqlmodel import Field, Relationship, SQLModel
from sqlmodel._compat import SQLModelConfig

from subscribers.sqltypes import JSONType, UTCDateTime, utcnow

THREAD_STATES = ("active", "cancelled", "expired", "ended")
#: ``reminder``: the same warning again to someone who has not confirmed it (``reminder_seq`` 1, 2, ...).
DELIVERY_KINDS = ("alert", "update", "cancel", "reminder")
#: queued -> sending -> accepted -> delivered | fallback_sent | failed | uncertain;
#: queued -> suppressed (alert expired, cancelled or superseded before it went out);
#: queued -> carried (listed in another row's grouped message: alerts/coalesce.py).
DELIVERY_STATUSES = ("queued", "sending", "accepted", "delivered", "fallback_sent", "failed", "uncertain",
                     "suppressed", "carried")
FINAL_STATUSES = ("delivered", "fallback_sent", "failed", "uncertain", "suppressed")
#: Statuses meaning the person has (or may have) been told: follow-ups (update, 해제) go to them.
NOTIFIED_STATUSES = ("sending", "accepted", "delivered", "fallback_sent", "uncertain")


def _utc_column(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class AlertThread(SQLModel, table=True):
    """One warning through its life: the original, its updates and its cancel share a thread."""

    __tablename__ = "alert_thread"
    __table_args__ = (Index("ix_alert_thread_key_state", "key", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    #: Source-given key for sources without CAP references (``kma:S1251100:풍랑``); None for CAP threads.
    key: str | None = Field(default=None, max_length=200)
    state: str = Field(default="active", max_length=16)
    #: Feed that opened the thread; snapshot feeds end threads that vanish from their snapshot.
    feed: str | None = Field(default=None, max_length=100)
    current_alert_id: int | None = None
    opened_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    closed_at: datetime | None = _utc_column()
    end_time: datetime | None = _utc_column(index=True)


class AlertRecord(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (UniqueConstraint("sender", "identifier", "sent", name="uq_alert_identity"),)

    id: int | None = Field(default=None, primary_key=True)
    sender: str = Field(max_length=255)
    identifier: str = Field(max_length=255)
    sent: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(max_length=16)
    msg_type: str = Field(max_length=16)
    scope: str = Field(max_length=16)
    event: str = Field(default="", max_length=255)
    severity: str = Field(default="Unknown", max_length=16)
    urgency: str = Field(default="Unknown", max_length=16)
    headline: str | None = None
    feed: str | None = Field(default=None, max_length=100, index=True)
    thread_id: int | None = Field(default=None, foreign_key="alert_thread.id", index=True)
    end_time: datetime | None = _utc_column()
    received_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    #: When matching ran (None: not yet), and why nothing was sent when that is the case.
    matched_at: datetime | None = _utc_column()
    skip_reason: str | None = None
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))


class AlertReference(SQLModel, table=True):
    """One ``references`` triplet of a stored alert, queryable both ways: an original that arrives
    after its own update finds the update's thread through it."""

    __tablename__ = "alert_reference"
    __table_args__ = (Index("ix_alert_reference_target", "ref_sender", "ref_identifier", "ref_sent"),)

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    ref_sender: str = Field(max_length=255)
    ref_identifier: str = Field(max_length=255)
    ref_sent: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class DeliveryMessage(SQLModel, table=True):
    """A rendered message (template, parameters, text, SMS/LMS fallback kind), stored once however many people
    it goes to (migration 0017). Why not in the outbox row: a grouped fan-out gives thousands the same message,
    and the body (0.5-1.5 KB of Korean text) made every claim and every mark rewrite a wide row; the outbox
    row now holds only what changes while it is sent. Append-only: a body is never changed or deleted (a
    re-rendered message is a new body), so rows that share one never see it change under them."""

    __tablename__ = "delivery_message"

    id: int | None = Field(default=None, primary_key=True)
    #: sha256 of the body (alerts/message_bodies.py ``digest``): identical bodies are stored once.
    digest: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    template_code: str = Field(default="", max_length=20)
    params: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    text: str = ""
    fallback_kind: str | None = Field(default=None, max_length=3)


#: The body's columns: read on a Delivery (through its message) and given to its constructor as before.
BODY_FIELDS = ("template_code", "params", "text", "fallback_kind")
_BODY_DEFAULTS: dict[str, Any] = {"template_code": "", "params": {}, "text": "", "fallback_kind": None}


class Delivery(SQLModel, table=True):
    """One message to one person about one alert version: the outbox row and its outcome.

    Its message (``template_code``, ``params``, ``text``, ``fallback_kind``) lives in :class:`DeliveryMessage`,
    shared by the rows with the same body; on this class they read and write as before (hybrid properties:
    a SQL expression on the class, the body's value on a row). Setting one gives the row a new body, found or
    stored when the session flushes (``_store_bodies``), never a change to the shared one."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("alert_id", "subscriber_id", "reminder_seq", name="uq_delivery_alert_subscriber"),
        Index("ix_delivery_thread_subscriber", "thread_id", "subscriber_id"),
    )
    model_config = SQLModelConfig(ignored_types=(hybrid_property,))

    id: int | None = Field(default=None, primary_key=True)
    #: On PostgreSQL these two are not enforced by the database (migration 0017: a national fan-out checked the
    #: same alert and thread once per row); the fan-out writes the ids it read, and neither is ever deleted.
    alert_id: int = Field(foreign_key="alert.id")
    thread_id: int = Field(foreign_key="alert_thread.id")
    #: On PostgreSQL checked by set-based triggers instead of the key's per-row check (migration 0022): the same
    #: guarantee (no row names a missing person; a person named by rows is never deleted), once per statement.
    subscriber_id: int = Field(foreign_key="subscriber.id")
    kind: str = Field(default="alert", max_length=8)
    #: Higher goes first: severity and urgency of the alert, cancels of Extreme warnings too.
    priority: int = 0
    status: str = Field(default="queued", max_length=16)
    #: The message (:class:`DeliveryMessage`). Not a foreign key: bodies are never deleted, and a national
    #: fan-out would pay a check per row on PostgreSQL for a reference that cannot dangle.
    message_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=False))
    provider: str | None = Field(default=None, max_length=16)
    idempotency_key: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=100)
    recipient_seq: int | None = None
    channel: str | None = Field(default=None, max_length=16)
    result_code: str | None = Field(default=None, max_length=16)
    result_message: str | None = None
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    next_attempt_at: datetime | None = _utc_column()
    #: Lease for the worker that claimed the row (PostgreSQL SKIP LOCKED dispatchers).
    lease_until: datetime | None = _utc_column()
    #: When the current idempotency key was first sent: past the provider's key memory, a re-send asks first.
    key_used_at: datetime | None = _utc_column()
    sent_at: datetime | None = _utc_column()
    finished_at: datetime | None = _utc_column()
    #: Storms: the row whose one message also carried this warning to the person (status ``carried``); the
    #: person counts as told when that row's message went out (see alerts/coalesce.py).
    carried_by: int | None = None
    #: On the head of a group still gathering warnings: when it goes (Alertmanager's group_wait).
    grouped_until: datetime | None = _utc_column()
    #: 0 for the warning itself; n for the n-th reminder of the same warning to the same person (migration
    #: 0008: part of the outbox's identity, so a reminder is its own row, costed like any message).
    reminder_seq: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    #: Loaded with the rows (one SELECT ... IN per query, not a join: claims lock with FOR UPDATE).
    message: DeliveryMessage | None = Relationship(sa_relationship=relationship(
        DeliveryMessage, primaryjoin="foreign(Delivery.message_id) == DeliveryMessage.id", lazy="selectin",
        viewonly=True))

    def __init__(self, **values: Any) -> None:
        body = {name: values.pop(name) for name in BODY_FIELDS if name in values}
        super().__init__(**values)
        if body:
            self._set_body(body)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in BODY_FIELDS:  # pydantic knows only plain properties' setters
            self._set_body({name: value})
            return
        super().__setattr__(name, value)

    def body(self) -> dict[str, Any]:
        """The message's four values (a new body set on this row and not yet stored included)."""
        pending = self.__dict__.get("_pending_body")
        if pending is not None:
            return pending  # type: ignore[no-any-return]
        message = self.message if self.message_id is not None else None
        if message is None:
            return dict(_BODY_DEFAULTS)
        return {name: getattr(message, name) for name in BODY_FIELDS}

    def _set_body(self, changes: dict[str, Any]) -> None:
        body = {**self.body(), **changes}
        if body["params"] is None:
            body["params"] = {}
        self.__dict__["_pending_body"] = body
        self.message_id = None  # found or stored at the flush (_store_bodies)

    @hybrid_property
    def template_code(self) -> str:
        return str(self.body()["template_code"])

    @template_code.inplace.expression
    @classmethod
    def _template_code_sql(cls) -> ColumnElement[str]:
        return _body_column(cls, DeliveryMessage.template_code)

    @hybrid_property
    def params(self) -> dict[str, str]:
        return dict(self.body()["params"])

    @params.inplace.expression
    @classmethod
    def _params_sql(cls) -> ColumnElement[dict[str, str]]:
        return _body_column(cls, DeliveryMessage.params)

    @hybrid_property
    def text(self) -> str:
        return str(self.body()["text"])

    @text.inplace.expression
    @classmethod
    def _text_sql(cls) -> ColumnElement[str]:
        return _body_column(cls, DeliveryMessage.text)

    @hybrid_property
    def fallback_kind(self) -> str | None:
        return self.body()["fallback_kind"]  # type: ignore[no-any-return]

    @fallback_kind.inplace.expression
    @classmethod
    def _fallback_kind_sql(cls) -> ColumnElement[str | None]:
        return _body_column(cls, DeliveryMessage.fallback_kind)


def _body_column(cls: Any, column: Any) -> Any:
    """A body's column as a correlated scalar subquery: ``select(Delivery.text)`` and filters keep working."""
    return (select(column).where(DeliveryMessage.id == cls.message_id).scalar_subquery()  # type: ignore[attr-defined]
            .label(column.key))


@event.listens_for(OrmSession, "before_flush")
def _store_bodies(session: OrmSession, _context: Any, _instances: Any) -> None:
    """Rows given a new body get the id of the stored body with the same digest (stored first if new)."""
    waiting = [obj for obj in (*session.new, *session.dirty)
               if isinstance(obj, Delivery) and obj.message_id is None]
    if not waiting:
        return
    from alerts.message_bodies import message_ids  # here: that module reads these models

    bodies = [obj.body() for obj in waiting]
    ids = message_ids(session.connection(), bodies)
    for obj, body, message_id in zip(waiting, bodies, ids, strict=True):
        obj.message_id = message_id
        obj.__dict__["_pending_body"] = body  # read from the body in hand (no load, also once detached)
        obj.__dict__.pop("message", None)


#: The claim's order (alerts/delivery/outbox_rows.py ``due_rows``): the highest priority first, then the oldest;
#: without it every claim sorted every queued row (migration 0016).
Index("ix_delivery_claim", Delivery.status, Delivery.priority.desc(), Delivery.id)  # type: ignore[attr-defined]
#: Partial (migration 0017): most rows have neither, and an index entry for NULL was written with every row and
#: rewritten at every mark; the queries that use them (``request_id IS NOT NULL``, ``carried_by IN (...)``, the
#: join on a head's id) imply the condition, so both engines still use them.
Index("ix_delivery_request", Delivery.__table__.c.request_id,  # type: ignore[attr-defined]
      sqlite_where=text("request_id IS NOT NULL"), postgresql_where=text("request_id IS NOT NULL"))
Index("ix_delivery_carried_by", Delivery.__table__.c.carried_by,  # type: ignore[attr-defined]
      sqlite_where=text("carried_by IS NOT NULL"), postgresql_where=text("carried_by IS NOT NULL"))


class CostEntry(SQLModel, table=True):
    """The ledger: one row per billed (or, in a dry run, would-be billed) message."""

    __tablename__ = "cost_entry"
    #: A month's report reads only this index (a covering index scan; alerts/cost_report.py).
    __table_args__ = (Index("ix_cost_entry_report", "month", "dry_run", "channel", "status", "price_e4",
                            "baseline_e4", "short_saving_e4"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", unique=True)
    #: Month in KST, "YYYY-MM": what the invoice is grouped by.
    month: str = Field(max_length=7, index=True)
    channel: str = Field(max_length=16)
    price_krw: float
    #: What the same message would have cost over the old SMS/LMS route (SMS or LMS by length).
    baseline_channel: str = Field(max_length=8)
    baseline_krw: float
    dry_run: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    #: Exact money: integer 1/10,000 KRW (alerts/pricing.py); the float columns above are kept for old readers.
    price_e4: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    baseline_e4: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    #: LMS price minus SMS price when the template's short SMS form carried a fallback the full text could not.
    short_saving_e4: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    #: Copied from the delivery so a month's breakdowns and reconciliation group without a join.
    status: str | None = Field(default=None, max_length=16)
    provider: str | None = Field(default=None, max_length=16)
    alert_id: int | None = None
    subscriber_id: int | None = None



class FeedStateRow(SQLModel, table=True):
    """Per-feed polling state and health, kept in our own tables (never in APScheduler's job store)."""

    __tablename__ = "feed_state"

    name: str = Field(primary_key=True, max_length=100)
    etag: str | None = None
    last_modified: str | None = None
    last_success_at: datetime | None = _utc_column()
    last_error: str | None = None
    last_error_at: datetime | None = _utc_column()
    consecutive_failures: int = 0
    last_status: int | None = None
    alerts_seen: int = 0
    next_poll_at: datetime | None = _utc_column()


class CostRollup(SQLModel, table=True):
    """A month's ledger summed by channel and status, kept by database triggers on ``cost_entry`` (migration
    0006), so the month's report reads a few rows instead of millions. SQLite: one row per group, updated in
    place; PostgreSQL: one delta row per insert statement and group (no row two workers both update), summed
    by the report. Updates and deletes of ledger rows are counted back out: the sums stay exact."""

    __tablename__ = "cost_rollup"
    __table_args__ = (Index("ix_cost_rollup_key", "month", "dry_run", "channel", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7)
    dry_run: bool = False
    channel: str = Field(max_length=16)
    #: '' when the ledger row had none (rows written before migration 0006).
    status: str = Field(default="", max_length=16)
    messages: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    price_e4: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    baseline_e4: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    short_messages: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    short_e4: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))


class CostRecipient(SQLModel, table=True):
    """Who was messaged in a month (kept by the same triggers): the month's distinct recipients are a count
    of this table's rows, not a COUNT(DISTINCT) over millions of ledger rows."""

    __tablename__ = "cost_recipient"

    month: str = Field(primary_key=True, max_length=7)
    dry_run: bool = Field(primary_key=True)
    subscriber_id: int = Field(primary_key=True)


#: Failed deliveries by when they finished: the month's report counts failures (never billed, so not in the
#: ledger) without scanning the outbox. Partial: only failed rows, so sending and recording stay as cheap.
Index("ix_delivery_failed_finished", Delivery.__table__.c.finished_at,  # type: ignore[attr-defined]
      sqlite_where=text("status = 'failed'"), postgresql_where=text("status = 'failed'"))


class SendReservation(SQLModel, table=True):
    """One request's place in the provider account's window shared by all workers (PostgreSQL only;
    alerts/delivery/shared_rate.py): it counts until ``counts_until`` (renewed while in flight; one second
    after its answer once ended)."""

    __tablename__ = "send_reservation"

    id: int | None = Field(default=None, primary_key=True)
    worker: str = Field(max_length=200)
    recipients: int
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ended_at: datetime | None = _utc_column()
    counts_until: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class WorkerRow(SQLModel, table=True):
    """A running (or stopped, or dead) ``alimcast run`` process and its last heartbeat (alerts/workers.py)."""

    __tablename__ = "worker"

    id: str = Field(primary_key=True, max_length=200)
    host: str = Field(max_length=255)
    pid: int
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    heartbeat_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    #: Holds the polling lease (polls the feeds).
    polls: bool = False
    #: Outbox rows it holds in flight (status ``sending`` under its lease) at its last heartbeat.
    holds: int = 0
    #: Recipients it has had accepted since it started.
    sent: int = 0
    stopped_at: datetime | None = _utc_column()
