"""Message bodies stored once: the rendered template, parameters, text and fallback kind of outbox rows.

Why a table of its own (migration 0017): a grouped fan-out sends thousands of people the same message, and a
body in every outbox row made each claim and each mark rewrite 0.5-1.5 KB per row (SQLite re-encodes the
record, PostgreSQL copies the tuple and logs it) and the outbox write copy it 100,000 times. A body is found by
its digest (UNIQUE), so writing the same one twice stores it once, also from two workers at the same time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from alerts.models import BODY_FIELDS, DeliveryMessage
from alerts.sqlutil import _insert_ignore_sqlite

_MESSAGE: Table = DeliveryMessage.__table__  # type: ignore[attr-defined]


def digest(template_code: str, params: Mapping[str, str] | None, text: str, fallback_kind: str | None) -> str:
    """sha256 (hex) of the body in one canonical form (parameters by name); migration 0017 computes the same."""
    canonical = orjson.dumps([template_code or "", dict(params or {}), text or "", fallback_kind],
                             option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def message_ids(connection: Connection, bodies: Sequence[Mapping[str, Any]]) -> list[int]:
    """The stored id of each body (``template_code``, ``params``, ``text``, ``fallback_kind``; a missing one is
    its default), storing the new ones: one INSERT ... ON CONFLICT DO NOTHING and one SELECT for all of them."""
    keyed: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for body in bodies:
        values = {"template_code": body.get("template_code") or "", "params": dict(body.get("params") or {}),
                  "text": body.get("text") or "", "fallback_kind": body.get("fallback_kind")}
        key = digest(**values)
        keyed.setdefault(key, {"digest": key, **values})
        order.append(key)
    if not order:
        return []
    found = _lookup(connection, list(keyed))
    new = [row for key, row in keyed.items() if key not in found]
    if new:
        # SQLite: the driver's own executemany (a per-person fan-out stores a body per person)
        if connection.dialect.name != "sqlite" or _insert_ignore_sqlite(connection, _MESSAGE, new, ("digest",)) is None:
            module: Any = postgresql if connection.dialect.name == "postgresql" else sqlite
            connection.execute(module.insert(_MESSAGE).on_conflict_do_nothing(index_elements=["digest"]), new)
        found.update(_lookup(connection, [row["digest"] for row in new]))
    return [found[key] for key in order]


def attach_bodies(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Outbox rows as dicts with their body's four values -> the same rows with ``message_id`` instead
    (in place), ready for :func:`alerts.sqlutil.insert_ignore`."""
    ids = message_ids(connection, [{name: row.get(name) for name in BODY_FIELDS} for row in rows])
    for row, message_id in zip(rows, ids, strict=True):
        for name in BODY_FIELDS:
            row.pop(name, None)
        row["message_id"] = message_id


def _lookup(connection: Connection, digests: list[str]) -> dict[str, int]:
    """Stored ids by digest, in one statement (the digests bound as one array / one JSON text)."""
    if connection.dialect.name == "postgresql":
        rows = connection.execute(text("SELECT digest, id FROM delivery_message WHERE digest = ANY(:d)"),
                                  {"d": digests})
    elif len(digests) <= 50:
        rows = connection.execute(select(_MESSAGE.c.digest, _MESSAGE.c.id).where(_MESSAGE.c.digest.in_(digests)))
    else:
        rows = connection.execute(text("SELECT digest, id FROM delivery_message WHERE digest IN "
                                       "(SELECT value FROM json_each(:d))"), {"d": orjson.dumps(digests).decode()})
    return {key: int(i) for key, i in rows}
