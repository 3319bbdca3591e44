"""Test helpers shipped with the package (as ``structlog.testing`` does): tests and benchmarks import
them, and they depend on nothing but the standard library."""

from alerts.testing.nhn_server import NhnTestServer, RecipientBehaviour, RecordedRequest
from alerts.testing.solapi_server import SolapiBehaviour, SolapiTestServer

__all__ = ["NhnTestServer", "RecipientBehaviour", "RecordedRequest", "SolapiBehaviour", "SolapiTestServer"]
