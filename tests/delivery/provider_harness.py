"""One harness per provider for the contract suite: its loopback server, an adapter pointed at it, and
the provider's own words for the same situations (a bad number, a Kakao non-user who falls back, a
retryable refusal). The contract tests speak only through this, so a third provider is one more class.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from nhn_fixtures import TEMPLATES, provider_settings

from alerts.delivery.providers.base import Provider
from alerts.delivery.providers.nhn import NhnProvider
from alerts.delivery.providers.solapi import SolapiProvider
from alerts.testing import NhnTestServer, RecipientBehaviour, SolapiBehaviour, SolapiTestServer

#: Behaviour names the contract uses.
DELIVERED, FALLS_BACK, FALLBACK_FAILS, BAD_NUMBER, REFUSED_FOR_NOW = (
    "delivered", "falls_back", "fallback_fails", "bad_number", "refused_for_now")


class Harness:
    name: ClassVar[str]
    #: The provider's code for a recipient refused at send time for a bad number.
    bad_number_code: ClassVar[str]

    def __init__(self) -> None:
        self.server: Any = None

    @contextmanager
    def running(self, **server_kwargs: Any) -> Iterator[Harness]:
        raise NotImplementedError

    def provider(self, **overrides: Any) -> Provider:
        raise NotImplementedError

    def wrong_credentials(self) -> dict[str, Any]:
        raise NotImplementedError

    def behave(self, number: str, what: str) -> None:
        raise NotImplementedError

    # the servers share these names
    def sends_to(self, number: str) -> int:
        return int(self.server.sends_to(number))

    def send_requests(self) -> list[Any]:
        return list(self.server.send_requests())


class NhnHarness(Harness):
    name = "nhn"
    bad_number_code = "-5000"

    @contextmanager
    def running(self, **server_kwargs: Any) -> Iterator[Harness]:
        with NhnTestServer(templates=TEMPLATES, **server_kwargs) as srv:
            self.server = srv
            yield self

    def provider(self, **overrides: Any) -> Provider:
        return NhnProvider(provider_settings(self.server, **overrides))

    def wrong_credentials(self) -> dict[str, Any]:
        return {"secret_key": "wrong"}

    def behave(self, number: str, what: str) -> None:
        self.server.behaviours[number] = {
            DELIVERED: RecipientBehaviour("1000"),
            FALLS_BACK: RecipientBehaviour("3019"),
            FALLBACK_FAILS: RecipientBehaviour("3019", fallback_ok=False),
            BAD_NUMBER: RecipientBehaviour(reject=True),
            REFUSED_FOR_NOW: RecipientBehaviour(refuse_times=1),
        }[what]


class SolapiHarness(Harness):
    name = "solapi"
    bad_number_code = "1020"

    @contextmanager
    def running(self, **server_kwargs: Any) -> Iterator[Harness]:
        with SolapiTestServer(templates=TEMPLATES, **server_kwargs) as srv:
            self.server = srv
            yield self

    def provider(self, **overrides: Any) -> Provider:
        return SolapiProvider(solapi_settings(self.server, **overrides))

    def wrong_credentials(self) -> dict[str, Any]:
        return {"api_secret": "wrong"}

    def behave(self, number: str, what: str) -> None:
        self.server.behaviours[number] = {
            DELIVERED: SolapiBehaviour("4000"),
            FALLS_BACK: SolapiBehaviour("3104"),
            FALLBACK_FAILS: SolapiBehaviour("3107", fallback_ok=False),
            BAD_NUMBER: SolapiBehaviour(refuse="1020"),
            REFUSED_FOR_NOW: SolapiBehaviour(refuse="1030"),
        }[what]


def solapi_settings(server: SolapiTestServer, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "base_url": server.base_url,
        "api_key": server.api_key,
        "api_secret": server.api_secret,
        "pf_id": server.pf_id,
        "sender_no": server.sender_no,
        "timeout_seconds": 5,
        "retry_attempts": 4,
        "retry_max_seconds": 20,
        "retry_initial_seconds": 0.01,
        "retry_max_wait_seconds": 0.05,
    }
    settings.update(overrides)
    return settings


HARNESSES: list[type[Harness]] = [NhnHarness, SolapiHarness]
