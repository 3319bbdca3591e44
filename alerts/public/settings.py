"""The public side's settings, read from ``Config.raw`` (``[reminders]``, ``[subscribe]``,
``[templates.reminder]``, ``[templates.verify]``, ``[templates.subscribed]`` and ``[web] public_url``).

Kept beside the code that uses them rather than in ``alerts/config.py``: every key has a safe default, so
a config without these tables works (no links in messages, no reminders), and a bad value is one line
naming the key, like every other setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from alerts.config import Config, ConfigError, TemplateConfig

REMINDER_KEYS = ("enabled", "delay_minutes", "interval_minutes", "max_count", "check_seconds")
SUBSCRIBE_KEYS = ("code_minutes", "code_max_attempts", "sends_per_phone_per_hour", "sends_per_client_per_hour",
                  "failures_per_client_per_hour", "failures_per_phone_per_hour", "manage_link_days",
                  "consent_version", "consent_text")
DEFAULT_CONSENT_VERSION = "2026-12-01"
DEFAULT_CONSENT_TEXT = (
    "alimcast 해양안전알림은 입력하신 휴대전화 번호로 선택하신 해역·지역의 "
    "기상특보와 안전 알림을 카카오 알림톡(전달되지 않으면 문자)으로 보냅니다. "
    "번호와 선택 내용은 알림 발송에만 쓰며, 메시지의 링크에서 언제든 "
    "수신을 끊을 수 있고 끊으면 즉시 발송이 멈춥니다. / We use your number only to "
    "send the warnings you chose; every message has a link to stop them at once.")


@dataclass(frozen=True, slots=True)
class ReminderSettings:
    #: Off unless the config turns it on (a reminder costs money: the operator decides).
    enabled: bool = False
    #: First reminder this long after the warning was sent to the person.
    delay: timedelta = timedelta(minutes=30)
    #: Between reminders.
    interval: timedelta = timedelta(minutes=60)
    max_count: int = 2
    #: How often the running job looks for reminders due.
    check_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class SubscribeSettings:
    code_lifetime: timedelta = timedelta(minutes=10)
    code_max_attempts: int = 5
    sends_per_phone_per_hour: int = 3
    sends_per_client_per_hour: int = 10
    failures_per_client_per_hour: int = 20
    failures_per_phone_per_hour: int = 10
    manage_link_lifetime: timedelta = timedelta(days=400)
    consent_version: str = DEFAULT_CONSENT_VERSION
    consent_text: str = DEFAULT_CONSENT_TEXT


@dataclass(frozen=True, slots=True)
class PublicSettings:
    #: Absolute base of the links in messages (``https://alert.example.kr``); empty: messages carry no links.
    public_url: str
    reminders: ReminderSettings
    subscribe: SubscribeSettings
    reminder_template: TemplateConfig | None
    verify_template: TemplateConfig | None
    #: "You are subscribed" with the manage link, sent when the subscription page completes (optional).
    subscribed_template: TemplateConfig | None = None


def public_settings(config: Config) -> PublicSettings:
    raw = config.raw
    web = _table(raw, "web")
    url = web.get("public_url", "")
    if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
        raise ConfigError("[web] public_url", f"must be an http(s) URL, not {url!r}")
    templates = _table(raw, "templates")
    return PublicSettings(public_url=url.rstrip("/"), reminders=_reminders(_table(raw, "reminders")),
                          subscribe=_subscribe(_table(raw, "subscribe")),
                          reminder_template=_template(templates, "reminder"),
                          verify_template=_template(templates, "verify"),
                          subscribed_template=_template(templates, "subscribed"))


def _reminders(t: dict[str, Any]) -> ReminderSettings:
    _known(t, "reminders", REMINDER_KEYS)
    d = ReminderSettings()
    enabled = t.get("enabled", d.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError("[reminders] enabled", f"must be true or false, not {enabled!r}")
    return ReminderSettings(
        enabled=enabled,
        delay=timedelta(minutes=_num(t, "reminders", "delay_minutes", 30, 1, 24 * 60)),
        interval=timedelta(minutes=_num(t, "reminders", "interval_minutes", 60, 1, 24 * 60)),
        max_count=int(_num(t, "reminders", "max_count", 2, 0, 10)),
        check_seconds=_num(t, "reminders", "check_seconds", 60, 1, 3600),
    )


def _subscribe(t: dict[str, Any]) -> SubscribeSettings:
    _known(t, "subscribe", SUBSCRIBE_KEYS)
    s = "subscribe"
    version = t.get("consent_version", DEFAULT_CONSENT_VERSION)
    text = t.get("consent_text", DEFAULT_CONSENT_TEXT)
    for key, value in (("consent_version", version), ("consent_text", text)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"[subscribe] {key}", "must be a non-empty string")
    return SubscribeSettings(
        code_lifetime=timedelta(minutes=_num(t, s, "code_minutes", 10, 1, 60)),
        code_max_attempts=int(_num(t, s, "code_max_attempts", 5, 1, 20)),
        sends_per_phone_per_hour=int(_num(t, s, "sends_per_phone_per_hour", 3, 1, 100)),
        sends_per_client_per_hour=int(_num(t, s, "sends_per_client_per_hour", 10, 1, 10_000)),
        failures_per_client_per_hour=int(_num(t, s, "failures_per_client_per_hour", 20, 1, 10_000)),
        failures_per_phone_per_hour=int(_num(t, s, "failures_per_phone_per_hour", 10, 1, 1000)),
        manage_link_lifetime=timedelta(days=_num(t, s, "manage_link_days", 400, 1, 3650)),
        consent_version=version.strip()[:32], consent_text=text.strip(),
    )


def _template(templates: dict[str, Any], kind: str) -> TemplateConfig | None:
    t = templates.get(kind)
    if t is None:
        return None
    if not isinstance(t, dict):
        raise ConfigError(f"[templates.{kind}]", "must be a table with code and text")
    code, text = t.get("code"), t.get("text")
    if not isinstance(code, str) or not code.strip() or len(code) > 20:
        raise ConfigError(f"[templates.{kind}] code", "required, at most 20 characters (provider limit)")
    if not isinstance(text, str) or not text.strip() or len(text) > 1000:
        raise ConfigError(f"[templates.{kind}] text", "required, at most 1,000 characters (AlimTalk limit)")
    return TemplateConfig(code=code, text=text)


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}]", "must be a table")
    return value


def _known(t: dict[str, Any], section: str, keys: tuple[str, ...]) -> None:
    for key in t:
        if key not in keys:
            raise ConfigError(f"[{section}] {key}", f"unknown key (known: {', '.join(keys)})")


def _num(t: dict[str, Any], section: str, key: str, default: float, minimum: float, maximum: float) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"[{section}] {key}", f"must be a number, not {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"[{section}] {key}", f"must be between {minimum} and {maximum}")
    return float(value)
