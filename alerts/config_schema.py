"""Every table and key config.toml may hold, checked before parsing: a typo is an error, never a default.

Why a separate, declarative list: ``intervall_seconds = 15`` used to be ignored silently and the feed was
polled every 300 s. The parser in ``alerts/config.py`` reads the keys it knows with defaults, so it cannot
notice a key it does not read; this module can, because it knows every name that may appear. One line per
table keeps that list easy to extend while several people add settings at once.

How to register a new setting (ONE line, here, nothing else):

* a new key in an existing table: add its name to that table's tuple in ``SCHEMA``, e.g.
  ``"fetch": ("user_agent", "timeout_seconds", "max_bytes", "proxy"),``
* a new table ``[coalesce]``: add a line ``"coalesce": ("window_seconds",),``
* a sub-table ``[templates.group]``: add ``"templates.group": ("code", "text", "sms"),`` (its parent ``templates``
  then knows the name ``group`` by itself)
* an array of tables ``[[prices]]`` is checked with the same line as a table ``[prices]``: every entry of
  the array must use only the listed keys. ``*`` in a path matches any one name (``templates.*.en``).
* a table whose keys are free (parser options, query parameters): map it to ``OPEN``.

The error is one line naming the table path, the bad name and the nearest known one, e.g.
``[[feeds]] #1 (sample-kma-pungrang): unknown key intervall_seconds — did you mean interval_seconds?``;
the CLI prints it with the config file's name and exits with code 2.
"""

from __future__ import annotations

import difflib
from typing import Any

from subscribers.preferences import LANGUAGES

#: Marks a table whose keys are not checked here (their owner checks them).
OPEN: tuple[str, ...] = ("*",)

#: Table path -> the plain (non-table) keys it may hold. Sub-tables are known by having a line of their own.
SCHEMA: dict[str, tuple[str, ...]] = {
    "": (),
    "alimcast": ("sender_name",),
    "database": ("url",),
    "provider": ("kind", "base_url", "app_key", "secret_key", "sender_key", "resend_send_no", "fallback",
                 "rate_per_second", "batch_size", "timeout_seconds", "retry_attempts", "retry_max_seconds",
                 "retry_initial_seconds", "retry_max_wait_seconds",
                 # solapi
                 "api_key", "api_secret", "pf_id", "sender_no"),
    "fetch": ("user_agent", "timeout_seconds", "max_bytes"),
    "dispatch": ("interval_seconds", "max_attempts"),
    "matching": ("zone_value_names",),
    "prices": ("provider", "effective", "alimtalk", "sms", "lms", "mms", "vat"),
    "baseline": ("mode",),
    "baseline.invoices": ("month", "messages", "cost_krw", "vat", "provider", "note"),
    "vessels": ("buffer_nm", "stale_after_hours", "ais_sources", "ais_flush_seconds", "ais_all_vessels"),
    "feeds": ("name", "kind", "url", "interval_seconds", "max_links", "enabled", "active_interval_seconds",
              "websub"),
    "feeds.push": ("auth", "secret", "max_bytes"),
    "websub": ("callback_url", "secret", "lease_seconds"),
    "feeds.options": OPEN,
    "feeds.params": OPEN,
    "templates": (),
    "templates.alert": ("code", "text", "sms"),
    "templates.update": ("code", "text", "sms"),
    "templates.cancel": ("code", "text", "sms"),
    "templates.group": ("code", "text", "sms"),
    "templates.reminder": ("code", "text"),
    "templates.verify": ("code", "text"),
    "templates.subscribed": ("code", "text"),
    "reminders": ("enabled", "delay_minutes", "interval_minutes", "max_count", "check_seconds"),
    "subscribe": ("code_minutes", "code_max_attempts", "sends_per_phone_per_hour", "sends_per_client_per_hour",
                  "failures_per_client_per_hour", "failures_per_phone_per_hour", "manage_link_days",
                  "consent_version", "consent_text"),
    # the console's settings, checked key by key by alerts/web/settings.py
    "web": OPEN,
    # translations: [templates.alert.en], [templates.group.vi], … one line per language people may choose
    **{f"templates.*.{language}": ("code", "text") for language in LANGUAGES if language != "ko"},
    "coalesce": ("group_wait_seconds", "max_alerts"),
    "demo": ("allow_real_provider",),
    "demo.subscribers": ("phone", "name", "zones", "min_severity"),
    "metrics": ("port", "host", "token"),
    "runtime": ("gc_freeze", "gc_young_threshold", "gc_refreeze_minutes", "switch_interval_ms"),
}


class UnknownKey(Exception):
    """``where`` is the table as the operator wrote it (``[[feeds]] #1 (name)``), ``name`` the bad key."""

    def __init__(self, where: str, name: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.name = name
        self.message = message


def check_known_keys(raw: dict[str, Any], schema: dict[str, tuple[str, ...]] | None = None) -> None:
    """Raise ``UnknownKey`` for the first table or key of ``raw`` that ``schema`` does not list."""
    _check_table(raw, "", "top level", schema if schema is not None else SCHEMA)


def _entry(schema: dict[str, tuple[str, ...]], path: str) -> tuple[str, ...] | None:
    if path in schema:
        return schema[path]
    parts = path.split(".")
    for pattern, keys in schema.items():
        pattern_parts = pattern.split(".")
        if len(pattern_parts) == len(parts) and all(p in ("*", q) for p, q in zip(pattern_parts, parts, strict=True)):
            return keys
    return None


def _children(schema: dict[str, tuple[str, ...]], path: str) -> set[str]:
    """Names of the sub-tables registered directly below ``path`` (``*`` when any name may be one)."""
    names = set()
    for pattern in schema:
        if not pattern:
            continue
        parent, _, last = pattern.rpartition(".")
        if parent == path or (parent and path and _entry({parent: ()}, path) is not None):
            names.add(last)
    return names


def _check_table(table: dict[str, Any], path: str, where: str, schema: dict[str, tuple[str, ...]]) -> None:
    keys = _entry(schema, path)
    if keys is None or keys == OPEN:
        return
    tables = _children(schema, path)
    for name, value in table.items():
        sub = f"{path}.{name}" if path else name
        if name in tables:
            if isinstance(value, dict):
                _check_table(value, sub, _where(sub, None, value), schema)
            elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
                for i, item in enumerate(value):
                    _check_table(item, sub, _where(sub, i, item), schema)
            continue
        if name in keys:
            continue
        if "*" in tables and isinstance(value, dict):
            _check_table(value, sub, _where(sub, None, value), schema)
            continue
        is_table = isinstance(value, dict) or (isinstance(value, list) and value
                                                and all(isinstance(v, dict) for v in value))
        candidates = sorted(tables - {"*"}) if is_table else list(keys)
        if not is_table and not candidates:
            candidates = sorted(tables - {"*"})
        raise UnknownKey(where, name, _unknown(name, is_table, path, candidates))


def _unknown(name: str, is_table: bool, path: str, candidates: list[str]) -> str:
    what = "table" if is_table else "key"
    shown = f"[{path}.{name}]" if is_table and path else (f"[{name}]" if is_table else name)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not close:
        close = [c for c in candidates if c.lower() == name.lower()]
    if close:
        guess = f"[{path}.{close[0]}]" if is_table and path else (f"[{close[0]}]" if is_table else close[0])
        return f"unknown {what} {shown} — did you mean {guess}?"
    known = ", ".join(candidates) if candidates else "none"
    return f"unknown {what} {shown} (known here: {known})"


def _where(path: str, index: int | None, value: Any) -> str:
    """How the operator wrote the table: ``[provider]``, ``[[feeds]] #2 (kma)``."""
    if index is None:
        return f"[{path}]"
    # the feed's name helps; a demo person's phone is not printed (numbers are masked everywhere)
    label = f" ({value['name']})" if isinstance(value, dict) and isinstance(value.get("name"), str) \
        and not path.startswith("demo") else ""
    return f"[[{path}]] #{index + 1}{label}"
