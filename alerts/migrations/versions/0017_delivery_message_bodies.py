"""delivery: the message body in its own table (stored once per distinct body); fewer, partial indexes

Why: the outbox row carried its rendered message (template code, parameters, 0.5-1.5 KB of Korean text,
fallback kind), identical for the thousands of people of one fan-out group, so every claim and every mark
rewrote it (SQLite re-encodes the record; PostgreSQL copies the tuple and logs it) and the outbox write copied
it into every row. Now ``delivery.message_id`` names a ``delivery_message`` row, found by its digest.

Indexes: ``ix_delivery_status_due`` (status, next_attempt_at) is dropped: the claim reads ``ix_delivery_claim``
(status, priority DESC, id), and every other status query can use that index's first column; it was rewritten
at every claim, mark and result. ``ix_delivery_request`` and ``ix_delivery_carried_by`` become partial (``IS NOT
NULL``): most rows have neither, and their queries imply the condition.

PostgreSQL: the foreign keys of ``delivery.alert_id`` and ``delivery.thread_id`` are dropped (see upgrade: the
same two rows checked once per outbox row, most of a national fan-out's write); the person's is kept.

Existing bodies move on both engines, deduplicated by digest (the same sha256 as alerts/message_bodies.py).
Downgrade copies each row's body back and drops the table.

Revision ID: 0017
Revises: 0016
"""

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BODY = ("template_code", "params", "text", "fallback_kind")
#: PostgreSQL's own names for the constraints migration 0001 created without names.
_PG_DROPPED_FKS = {"delivery_alert_id_fkey": ("alert_id", "alert"), "delivery_thread_id_fkey": ("thread_id", "alert_thread")}


def _digest(template_code: str | None, params: dict[str, str] | None, text: str | None,
            fallback_kind: str | None) -> str:
    canonical = orjson.dumps([template_code or "", dict(params or {}), text or "", fallback_kind],
                             option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _params(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, (str, bytes)):
        return dict(orjson.loads(value))
    return dict(value)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    json_type = sa.dialects.postgresql.JSONB() if postgres else sa.JSON()
    op.create_table(
        "delivery_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("template_code", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("params", json_type, nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("fallback_kind", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    op.add_column("delivery", sa.Column("message_id", sa.Integer(), nullable=True))

    # the bodies of existing rows, each distinct one stored once (params as stored: JSON text / jsonb)
    params_sql = "params" if not postgres else "params::text"
    distinct = bind.execute(sa.text(f"SELECT DISTINCT template_code, {params_sql}, text, fallback_kind "
                                    "FROM delivery")).all()
    message = sa.table("delivery_message", sa.column("id"), sa.column("digest"), sa.column("template_code"),
                       sa.column("params", json_type), sa.column("text"), sa.column("fallback_kind"))
    stored: dict[str, int] = {}
    pairs: list[dict[str, Any]] = []
    for code, params_text, body, fallback in distinct:
        params = _params(params_text)
        key = _digest(code, params, body, fallback)
        if key not in stored:
            stored[key] = int(bind.execute(sa.insert(message).values(
                digest=key, template_code=code or "", params=params, text=body or "",
                fallback_kind=fallback).returning(message.c.id)).scalar_one())
        pairs.append({"m": stored[key], "code": code, "params": params_text, "body": body, "fb": fallback})
    if pairs:
        same_params = "CAST(params AS text) = :params" if postgres else "params = :params"
        bind.execute(sa.text(
            "UPDATE delivery SET message_id = :m WHERE template_code IS NOT DISTINCT FROM :code "
            f"AND {same_params} AND text IS NOT DISTINCT FROM :body AND fallback_kind IS NOT DISTINCT FROM :fb"
            if postgres else
            "UPDATE delivery SET message_id = :m WHERE template_code IS :code AND params IS :params "
            "AND text IS :body AND fallback_kind IS :fb"), pairs)

    if postgres:
        op.alter_column("delivery", "message_id", nullable=False)
        for column in _BODY:
            op.drop_column("delivery", column)
        # Measured (100,000 rows, one INSERT ... SELECT): the per-row foreign key checks were about two thirds
        # of the statement, the two on alert and thread a check of the same two rows 100,000 times. The fan-out
        # writes the ids of the alert and thread it read in the same transaction, and alimcast never deletes
        # either, so those two are dropped; the person's (a different row each time) is kept. SQLite keeps all
        # three (dropping one there means copying the table; its outbox write meets its goal with them).
        for name in _PG_DROPPED_FKS:
            op.execute(f"ALTER TABLE delivery DROP CONSTRAINT IF EXISTS {name}")
    else:
        # SQLite's own ALTER TABLE (3.35+), not a batch copy: the table keeps its rows, triggers and references
        for column in _BODY:
            op.execute(f"ALTER TABLE delivery DROP COLUMN {column}")
    op.drop_index("ix_delivery_status_due", table_name="delivery")
    op.drop_index("ix_delivery_request", table_name="delivery")
    op.drop_index("ix_delivery_carried_by", table_name="delivery")
    op.create_index("ix_delivery_request", "delivery", ["request_id"],
                    sqlite_where=sa.text("request_id IS NOT NULL"), postgresql_where=sa.text("request_id IS NOT NULL"))
    op.create_index("ix_delivery_carried_by", "delivery", ["carried_by"],
                    sqlite_where=sa.text("carried_by IS NOT NULL"), postgresql_where=sa.text("carried_by IS NOT NULL"))


def downgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    json_type = sa.dialects.postgresql.JSONB() if postgres else sa.JSON()
    if postgres:
        for name, (column, parent) in _PG_DROPPED_FKS.items():
            op.create_foreign_key(name, "delivery", parent, [column], ["id"])
    op.drop_index("ix_delivery_carried_by", table_name="delivery")
    op.drop_index("ix_delivery_request", table_name="delivery")
    op.create_index("ix_delivery_carried_by", "delivery", ["carried_by"])
    op.create_index("ix_delivery_request", "delivery", ["request_id"])
    op.create_index("ix_delivery_status_due", "delivery", ["status", "next_attempt_at"])
    op.add_column("delivery", sa.Column("template_code", sqlmodel.sql.sqltypes.AutoString(length=20),
                                        nullable=False, server_default=""))
    op.add_column("delivery", sa.Column("params", json_type, nullable=False,
                                        server_default=sa.text("'{}'::jsonb") if postgres else "{}"))
    op.add_column("delivery", sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                        server_default=""))
    op.add_column("delivery", sa.Column("fallback_kind", sqlmodel.sql.sqltypes.AutoString(length=3),
                                        nullable=True))
    for column in _BODY:
        op.execute(f"UPDATE delivery SET {column} = (SELECT m.{column} FROM delivery_message m "
                   "WHERE m.id = delivery.message_id) WHERE message_id IS NOT NULL")
    if postgres:
        op.drop_column("delivery", "message_id")
    else:
        op.execute("ALTER TABLE delivery DROP COLUMN message_id")
    op.drop_table("delivery_message")
