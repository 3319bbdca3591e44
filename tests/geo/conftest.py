"""Fixtures for the geometry, vessel and AIS tests: a migrated database and people to link vessels to."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from alerts.db import make_engine, upgrade

# geo_testkit beside this file must be importable (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'geo.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def any_engine(db_url: str) -> Iterator[Engine]:
    """The same test on SQLite and on a real PostgreSQL (skipped when no server can start)."""
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()
