"""The ``[web]`` table of config.toml: the console's own settings, read from ``Config.raw``.

Kept here rather than in ``alerts/config.py`` so the console's knobs live beside the code that uses them;
every key has a safe default, so a config without ``[web]`` serves a working console.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts.config import Config, ConfigError

KEYS = ("session_hours", "idle_minutes", "secure_cookies", "login_window_minutes", "login_max_failures_per_account",
        "login_max_failures_per_client", "extreme_needs_approval", "agency_sender", "agency_name", "public_url")


@dataclass(frozen=True, slots=True)
class WebSettings:
    #: A session ends this long after login whatever happens...
    session_hours: float = 12.0
    #: ...and after this long without a request.
    idle_minutes: float = 60.0
    #: Mark cookies Secure (set true behind HTTPS; cookies then never travel over plain HTTP).
    secure_cookies: bool = False
    #: Failed logins are counted over this window, per account and per client address.
    login_window_minutes: float = 15.0
    login_max_failures_per_account: int = 5
    login_max_failures_per_client: int = 20
    #: A composed Extreme notice waits for a second operator's approval before it goes out.
    extreme_needs_approval: bool = False
    #: CAP ``sender`` and ``senderName`` of notices composed in the console.
    agency_sender: str = "alimcast@localhost"
    agency_name: str = "alimcast"
    #: Absolute base URL used in the public CAP Atom feed's links (default: taken from each request).
    public_url: str = ""


def web_settings(config: Config) -> WebSettings:
    raw: Any = config.raw.get("web", {})
    if not isinstance(raw, dict):
        raise ConfigError("[web]", "must be a table")
    for key in raw:
        if key not in KEYS:
            raise ConfigError(f"[web] {key}", f"unknown key (known: {', '.join(KEYS)})")
    defaults = WebSettings()
    values: dict[str, Any] = {}
    for key in KEYS:
        default = getattr(defaults, key)
        value = raw.get(key, default)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int | float):
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ConfigError(f"[web] {key}", f"must be {type(default).__name__} (positive), not {value!r}")
        values[key] = type(default)(value)
    if not raw.get("agency_name") and config.sender_name:
        values["agency_name"] = config.sender_name
    return WebSettings(**values)
