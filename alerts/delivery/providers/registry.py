"""Provider kind (config ``[provider] kind``) -> class, as "module:Class" strings imported on first use
(the same pattern as ``feeds/registry.py``), so a table row is all a new provider needs."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from alerts.delivery.providers.base import Provider

PROVIDERS: dict[str, str] = {
    "nhn": "alerts.delivery.providers.nhn:NhnProvider",
    "dryrun": "alerts.delivery.providers.dryrun:DryRunProvider",
    "solapi": "alerts.delivery.providers.solapi:SolapiProvider",
}


def provider_class(kind: str) -> type[Provider]:
    try:
        target = PROVIDERS[kind]
    except KeyError:
        raise ValueError(f"unknown provider kind {kind!r} (known: {', '.join(sorted(PROVIDERS))})") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"{target} is not a Provider")
    return cls


def create_provider(kind: str, settings: Mapping[str, Any]) -> Provider:
    """Instantiate the provider for ``kind`` with its settings mapping."""
    return provider_class(kind)(settings)
