"""Fixtures for provider tests: a running loopback NHN server and an adapter pointed at it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nhn_fixtures import TEMPLATES, provider_settings  # noqa: E402

from alerts.delivery.providers.nhn import NhnProvider  # noqa: E402
from alerts.testing import NhnTestServer  # noqa: E402


@pytest.fixture
def server() -> Iterator[NhnTestServer]:
    with NhnTestServer(templates=TEMPLATES) as srv:
        yield srv


@pytest.fixture
def provider(server: NhnTestServer) -> Iterator[NhnProvider]:
    p = NhnProvider(provider_settings(server))
    yield p
    p.close()
