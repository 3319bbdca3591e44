from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from feedfetch_server import FeedServer, running_server  # noqa: E402


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with running_server() as srv:
        yield srv
