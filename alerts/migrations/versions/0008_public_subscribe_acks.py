"""public subscription, acknowledgements and reminders

* ``personal_link``: hashed tokens of ``/a/…`` (acknowledge a warning) and ``/u/…`` (manage a subscription);
* ``acknowledgement``: one row per (warning thread, person) who pressed 확인;
* ``verification_code`` and ``public_throttle_event``: codes of the subscription page and the events its
  limits count;
* ``delivery.reminder_seq``: a reminder is an outbox row of its own. The outbox's identity becomes
  (alert, subscriber, reminder_seq): the warning itself is 0 (every existing row, and every row fan-out
  writes), the n-th reminder n. Same constraint name, one column more.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.sqltypes

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = subscribers.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "personal_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=8), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DT(timezone=True), nullable=False),
        sa.Column("expires_at", UTC_DT(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"]),
        sa.ForeignKeyConstraint(["thread_id"], ["alert_thread.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_personal_link_subscriber_id", "personal_link", ["subscriber_id"])
    op.create_index("ix_personal_link_thread_subscriber", "personal_link", ["thread_id", "subscriber_id"])
    op.create_table(
        "acknowledgement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("acked_at", UTC_DT(timezone=True), nullable=False),
        sa.Column("how", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["thread_id"], ["alert_thread.id"]),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"]),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("thread_id", "subscriber_id", name="uq_ack_thread_subscriber"),
    )
    op.create_index("ix_acknowledgement_thread_id", "acknowledgement", ["thread_id"])
    op.create_index("ix_acknowledgement_subscriber_id", "acknowledgement", ["subscriber_id"])
    op.create_table(
        "verification_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_hash", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=15), nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_DT(timezone=True), nullable=False),
        sa.Column("expires_at", UTC_DT(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("verified_at", UTC_DT(timezone=True), nullable=True),
        sa.Column("used_at", UTC_DT(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_hash"),
    )
    op.create_index("ix_verification_code_phone_hash", "verification_code", ["phone_hash"])
    op.create_table(
        "public_throttle_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("at", UTC_DT(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_public_throttle_key_at", "public_throttle_event", ["key", "at"])
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.add_column(sa.Column("reminder_seq", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_constraint("uq_delivery_alert_subscriber", type_="unique")
        batch_op.create_unique_constraint("uq_delivery_alert_subscriber", ["alert_id", "subscriber_id", "reminder_seq"])


def downgrade() -> None:
    op.execute("DELETE FROM cost_entry WHERE delivery_id IN (SELECT id FROM delivery WHERE reminder_seq > 0)")
    op.execute("DELETE FROM delivery WHERE reminder_seq > 0")
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_constraint("uq_delivery_alert_subscriber", type_="unique")
        batch_op.create_unique_constraint("uq_delivery_alert_subscriber", ["alert_id", "subscriber_id"])
        batch_op.drop_column("reminder_seq")
    op.drop_table("public_throttle_event")
    op.drop_table("verification_code")
    op.drop_table("acknowledgement")
    op.drop_table("personal_link")
