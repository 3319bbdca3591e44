"""Secrets inside feed URLs (a data.go.kr ``serviceKey``, ``user:password@``) masked wherever a URL is shown.

Why: the key must be in the URL that is fetched, but that URL is printed by ``feeds list``/``feeds status``,
in fetch errors and in the log, which end up pasted into tickets. Masking works on any text, so an error
line that quotes the URL is masked too. Values read from ``env:`` for a feed are remembered and masked
wherever they appear, even under a query parameter name this module does not know.
"""

from __future__ import annotations

import logging
import re

#: Query parameter names that carry a credential (compared case-insensitively).
SECRET_PARAMS = ("servicekey", "authkey", "apikey", "api_key", "key", "token", "access_token", "secret",
                 "password", "passwd", "signature", "sig", "client_secret")
MASK = "***"

_PARAM = re.compile(r"(?i)([?&;](?:" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=)([^&#\s\"'<>]+)")
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@/\s]+)(@)")
_known: set[str] = set()


def register_secret(value: str) -> None:
    """Mask this exact value from now on (values of ``env:`` feed settings)."""
    if len(value) >= 6:
        _known.add(value)


def mask_secrets(text: str) -> str:
    for value in sorted(_known, key=len, reverse=True):
        text = text.replace(value, MASK)
    text = _PARAM.sub(lambda m: m.group(1) + MASK, text)
    return _USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), text)


class MaskSecretsFilter(logging.Filter):
    """A logging filter: every record's final message goes out masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def install_log_masking() -> None:
    """Put the filter on every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskSecretsFilter) for f in handler.filters):
            handler.addFilter(MaskSecretsFilter())
