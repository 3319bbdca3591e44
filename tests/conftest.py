"""Fixtures every test folder shares: the shared/ corpus, a migrated SQLite file, a real PostgreSQL."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pgserver import PgServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: The read-only reference corpus (CAP/KMA samples, zone outlines): ../shared beside the checkout, as CI lays it,
#: or wherever $ALIMCAST_SHARED points (a worktree elsewhere).
SHARED = Path(os.environ.get("ALIMCAST_SHARED") or REPO.parent / "shared")
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the third-party corpus is not available here (set ALIMCAST_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer()
    reason = server.available
    if reason:
        pytest.skip(f"PostgreSQL: {reason}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    return pg_server.create_database(f"t{next(_db_counter)}")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Contract tests run against both engines (APScheduler 4 style: one suite, every backend)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alimcast.db'}"
    return str(request.getfixturevalue("pg_url"))
