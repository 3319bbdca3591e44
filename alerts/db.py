"""Engines and sessions for SQLite (embedded default) and PostgreSQL (several workers).

SQLite needs its pragmas on every connection (they are per connection), and the schema is owned by
Alembic migrations shipped inside the package, so an installed ``alimcast`` can create or upgrade its
database from any folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine


def json_serializer(value: Any) -> str:
    """JSON columns on both engines, written by orjson.

    orjson writes our dataclasses (an :class:`feeds.model.Alert` body) and aware datetimes directly, in C:
    building a dict tree and encoding it with the standard library cost ~20 us of the ~100 us an ingested
    alert may take (the issue's 10,000 alerts/s). Text stays UTF-8 rather than ``\\uXXXX`` escapes.
    """
    return orjson.dumps(value).decode()


def json_deserializer(value: str | bytes) -> Any:
    return orjson.loads(value)


def sqlite_datetime(value: datetime | None) -> str | None:
    """The text a ``UTCDateTime`` column stores on SQLite (UTC, naive, SQLAlchemy's DATETIME format
    ``YYYY-MM-DD HH:MM:SS.ffffff``), for statements that hand rows to the driver directly.

    SQLAlchemy's own path (TypeDecorator, then DATETIME's %-format of a dict) costs ~2 us per value;
    ``isoformat`` writes the same text in C.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30},
                               json_serializer=json_serializer, json_deserializer=json_deserializer)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, json_serializer=json_serializer,
                         json_deserializer=json_deserializer)


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> AlembicConfig:
    script_location = resources.files("alerts") / "migrations"
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the shipped migrations; the same connection is reused so SQLite pragmas hold."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
