"""config.toml -> typed settings, with one clear error naming the bad key.

Operators edit this file by hand under pressure; a typo must produce ``[provider] kind: must be one of
nhn, dryrun`` and exit code 2, never a traceback. Secrets are never written in the file: a value of the
form ``env:NAME`` is read from the environment, and the secret keys accept nothing else.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from alerts.config_schema import UnknownKey, check_known_keys
from alerts.pricing import PriceBook, PricingError, parse_baseline, parse_price_entries, single_entry
from alerts.render import GROUP_VARIABLES, VARIABLES, unknown_variables
from alerts.urlmask import register_secret
from feeds.model import SEVERITY_RANK
from feeds.registry import PARSERS, get_parser
from feeds.signature import SignatureOptionError
from subscribers.ais_stream import AisSource, SourceError, parse_source

CONFIG_ENV = "ALIMCAST_CONFIG"
PROVIDER_KINDS = ("nhn", "dryrun", "solapi")
SECRET_KEYS = ("app_key", "secret_key", "sender_key")
#: Solapi's secrets (``[provider] kind = "solapi"``), read from the environment like NHN's.
SOLAPI_SECRET_KEYS = ("api_key", "api_secret")
TEMPLATE_KINDS = ("alert", "update", "cancel")


class ConfigError(Exception):
    """A bad or missing setting. ``key`` is the dotted TOML key shown to the operator."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(slots=True)
class FeedConfig:
    name: str
    kind: str
    url: str
    interval_seconds: float
    options: dict[str, Any] = field(default_factory=dict)
    max_links: int = 50
    enabled: bool = True
    #: Polled this often while the feed has live warnings (pre-warnings included); None: always the interval.
    active_interval_seconds: float | None = None
    #: Partners may POST alerts to this feed (``alimcast serve``); None: polled only. See alerts/push.py.
    push: PushConfig | None = None

    @property
    def polled(self) -> bool:
        """A push-only feed (``url = "push:"``) is never polled."""
        return self.url != PUSH_ONLY_URL


#: The url of a feed that only receives pushes.
PUSH_ONLY_URL = "push:"
#: How a partner proves a push is theirs.
PUSH_AUTH = ("token", "hmac", "signature")


@dataclass(slots=True)
class PushConfig:
    """``push = { auth = "token", secret = "env:VAR" }`` (a bearer token), ``{ auth = "hmac", secret = … }``
    (``X-Alimcast-Signature: sha256=<hex HMAC-SHA256 of the body>``), or ``{ auth = "signature" }`` (each CAP
    alert signed, under the feed's ``signature = "require"`` policy)."""

    auth: str
    secret: str | None = None
    max_bytes: int = 1_000_000


@dataclass(slots=True)
class TemplateConfig:
    code: str
    text: str
    #: Approved translations by language code (``[templates.alert.en]``); the table's own text is Korean.
    languages: dict[str, TemplateConfig] = field(default_factory=dict)
    #: Optional short SMS form (same ``#{…}`` variables): the fallback goes as SMS when it fits 90 bytes.
    sms: str | None = None

    def for_language(self, language: str) -> tuple[str, TemplateConfig]:
        """(language to render in, template): the person's language (``vi-VN`` -> ``vi``) where an approved
        translation exists, else Korean."""
        wanted = (language or "ko").lower()
        for key in (wanted, wanted.split("-")[0]):
            if key in self.languages:
                return key, self.languages[key]
        return "ko", self


@dataclass(slots=True)
class CoalesceConfig:
    """Alertmanager-style grouping of one person's new warnings (``[coalesce]``); off when group_wait is 0."""

    #: How long a person's first non-urgent warning waits for others to join it (0: never wait, no grouping).
    group_wait_seconds: float = 0.0
    #: At most this many warnings in one message; the next one starts a new group.
    max_alerts: int = 5

    @property
    def enabled(self) -> bool:
        return self.group_wait_seconds > 0


@dataclass(slots=True)
class ProviderConfig:
    kind: str
    rate_per_second: float
    batch_size: int
    settings: dict[str, Any]


@dataclass(slots=True)
class Prices:
    """KRW per message, VAT excluded. Configuration, not constants: contracts differ by customer."""

    alimtalk: float
    sms: float
    lms: float

    #: Every ``[[prices]]`` entry over time, the baseline mode and old invoices (alerts/pricing.py).
    book: PriceBook | None = None

    def of(self, channel: str) -> float:
        return float(getattr(self, channel))


@dataclass(slots=True)
class DemoSubscriber:
    phone: str
    name: str
    zones: list[str]
    min_severity: str = "Unknown"


@dataclass(slots=True)
class Config:
    path: Path | None
    database_url: str
    provider: ProviderConfig
    feeds: list[FeedConfig]
    templates: dict[str, TemplateConfig]
    prices: Prices
    zone_value_names: tuple[str, ...]
    sender_name: str
    user_agent: str
    fetch_timeout_seconds: float
    fetch_max_bytes: int
    dispatch_interval_seconds: float
    max_attempts: int
    demo_subscribers: list[DemoSubscriber]
    #: A vessel this close to a zone's border (nautical miles) is told about both sides.
    vessel_buffer_nm: float = 1.0
    #: A fix older than this does not place a vessel in a zone.
    vessel_stale_after_hours: float = 6.0
    #: Live AIS receivers (``tcp://host:port``, ``udp://host:port``, or a file replayed once).
    ais_sources: list[AisSource] = field(default_factory=list)
    #: How often positions read from them are stored.
    ais_flush_seconds: float = 5.0
    #: Store positions of vessels nobody registered (default: only registered vessels).
    ais_all_vessels: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    #: Storms: several warnings for one person within a window go as one message (``[coalesce]``).
    coalesce: CoalesceConfig = field(default_factory=CoalesceConfig)


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """--config, then $ALIMCAST_CONFIG, then ./config.toml; None means the built-in default (the shipped
    config.toml, carried in the package so an installed ``alimcast`` works from any folder)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    local = Path("config.toml")
    return local if local.is_file() else None


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    path = resolve_config_path(explicit)
    if path is None:
        # relative paths (the SQLite file) then land in the current folder, not inside the package
        default = resources.files("alerts").joinpath("defaults", "config.toml").read_text(encoding="utf-8")
        return parse_config(tomllib.loads(default), None)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config", f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path | None = None) -> Config:
    check_schema(raw)
    base_dir = path.resolve().parent if path else Path.cwd()
    db = _table(raw, "database")
    provider = _table(raw, "provider")
    matching = _table(raw, "matching")
    fetch = _table(raw, "fetch")
    dispatch = _table(raw, "dispatch")
    prices = {} if isinstance(raw.get("prices"), list) else _table(raw, "prices")

    kind = _str(provider, "provider", "kind", "dryrun")
    if kind not in PROVIDER_KINDS:
        raise ConfigError("[provider] kind", f"must be one of {', '.join(PROVIDER_KINDS)}, not {kind!r}")
    settings: dict[str, Any] = {k: v for k, v in provider.items() if k not in ("kind", "rate_per_second")}
    for key in SECRET_KEYS:
        if key in settings:
            settings[key] = _secret(settings[key], f"[provider] {key}", required=kind == "nhn")
        elif kind == "nhn":
            raise ConfigError(f"[provider] {key}", "required for kind nhn (as env:VARIABLE)")
    if kind == "nhn" and not isinstance(settings.get("base_url"), str):
        raise ConfigError("[provider] base_url", "required for kind nhn")
    if isinstance(settings.get("resend_send_no"), str) and settings["resend_send_no"].startswith("env:"):
        settings["resend_send_no"] = _secret(settings["resend_send_no"], "[provider] resend_send_no", required=False)
    if kind == "solapi":
        _solapi_settings(settings)

    feeds = [_feed(i, f) for i, f in enumerate(_list(raw, "feeds"))]
    names = [f.name for f in feeds]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("[[feeds]] name", f"duplicate feed name {name!r}")
    feeds = [_check_parser_options(_resolve_feed_path(f, base_dir)) for f in feeds]

    templates_raw = _table(raw, "templates")
    templates: dict[str, TemplateConfig] = {}
    for tkind in TEMPLATE_KINDS:
        t = templates_raw.get(tkind)
        if t is None:
            raise ConfigError(f"[templates.{tkind}]", "missing (alert, update and cancel templates are required)")
        if not isinstance(t, dict):
            raise ConfigError(f"[templates.{tkind}]", "must be a table with code and text")
        templates[tkind] = _template(f"templates.{tkind}", t, VARIABLES)
    if "group" in templates_raw:
        if not isinstance(templates_raw["group"], dict):
            raise ConfigError("[templates.group]", "must be a table with code and text")
        templates["group"] = _template("templates.group", templates_raw["group"], GROUP_VARIABLES)
    coalesce_raw = _table(raw, "coalesce")
    coalesce = CoalesceConfig(
        group_wait_seconds=_number(coalesce_raw, "coalesce", "group_wait_seconds", 0.0, minimum=0, maximum=3600),
        max_alerts=int(_number(coalesce_raw, "coalesce", "max_alerts", 5, minimum=2, maximum=20)),
    )
    if coalesce.enabled and "group" not in templates:
        raise ConfigError("[templates.group]", "required when [coalesce] group_wait_seconds is above 0")
    _short_sms_forms(templates_raw, templates)

    value_names = matching.get("zone_value_names", ["KMA_ZONE"])
    if not (isinstance(value_names, list) and value_names and all(isinstance(v, str) for v in value_names)):
        raise ConfigError("[matching] zone_value_names", "must be a non-empty list of strings")

    demo = [_demo(i, d) for i, d in enumerate(_list(_table(raw, "demo"), "subscribers"))]
    vessels = _table(raw, "vessels")

    return Config(
        path=path,
        database_url=_database_url(_str(db, "database", "url", "sqlite:///alimcast-data/alimcast.db"), base_dir),
        provider=ProviderConfig(
            kind=kind,
            rate_per_second=_number(provider, "provider", "rate_per_second", 50.0, minimum=0.1),
            batch_size=int(_number(provider, "provider", "batch_size", 1000, minimum=1, maximum=1000)),
            settings=settings,
        ),
        feeds=feeds,
        templates=templates,
        prices=_price_book(raw, Prices(
            alimtalk=_number(prices, "prices", "alimtalk", 8.0, minimum=0),
            sms=_number(prices, "prices", "sms", 12.0, minimum=0),
            lms=_number(prices, "prices", "lms", 39.0, minimum=0),
        )),
        zone_value_names=tuple(value_names),
        sender_name=_str(_table(raw, "alimcast"), "alimcast", "sender_name", "alimcast"),
        user_agent=_str(fetch, "fetch", "user_agent", "alimcast/0.1 (+https://github.com/alimcast)"),
        fetch_timeout_seconds=_number(fetch, "fetch", "timeout_seconds", 20.0, minimum=0.1),
        fetch_max_bytes=int(_number(fetch, "fetch", "max_bytes", 10_000_000, minimum=1024)),
        dispatch_interval_seconds=_number(dispatch, "dispatch", "interval_seconds", 5.0, minimum=0.1),
        max_attempts=int(_number(dispatch, "dispatch", "max_attempts", 8, minimum=1)),
        demo_subscribers=demo,
        vessel_buffer_nm=_number(vessels, "vessels", "buffer_nm", 1.0, minimum=0.0, maximum=50.0),
        vessel_stale_after_hours=_number(vessels, "vessels", "stale_after_hours", 6.0, minimum=0.01, maximum=720.0),
        ais_sources=_ais_sources(vessels, base_dir),
        ais_flush_seconds=_number(vessels, "vessels", "ais_flush_seconds", 5.0, minimum=0.1, maximum=3600.0),
        ais_all_vessels=_bool(vessels, "vessels", "ais_all_vessels", False),
        raw=raw,
        coalesce=coalesce,
    )


def _template(where: str, t: dict[str, Any], known: tuple[str, ...], *, nested: bool = True) -> TemplateConfig:
    """One template table: code, Korean text, and approved translations as sub-tables named by language
    (``[templates.alert.en]``). Every ``#{name}`` must be a variable alimcast fills: a typo would otherwise
    go out as a hole in the message."""
    code = _str(t, where, "code")
    if len(code) > 20:
        raise ConfigError(f"[{where}] code", "at most 20 characters (provider limit)")
    text = _str(t, where, "text")
    if len(text) > 1000:
        raise ConfigError(f"[{where}] text", "at most 1,000 characters (AlimTalk limit)")
    for name, near in unknown_variables(text, known):
        hint = f" (did you mean #{{{near}}}?)" if near else f" (known: {', '.join(known)})"
        raise ConfigError(f"[{where}] text", f"unknown variable #{{{name}}}{hint}")
    languages: dict[str, TemplateConfig] = {}
    for key, value in t.items():
        if not isinstance(value, dict):
            continue
        if not nested or not _is_language(key):
            raise ConfigError(f"[{where}.{key}]", "a translation is named by a language code (en, vi, id, zh, …)")
        languages[key.lower()] = _template(f"{where}.{key}", value, known, nested=False)
    return TemplateConfig(code=code, text=text, languages=languages)


def _is_language(key: str) -> bool:
    """A BCP 47-ish language tag: ``en``, ``vi``, ``zh-Hans``, ``pt-BR``."""
    head, _, tail = key.partition("-")
    return 2 <= len(head) <= 3 and head.isalpha() and head.isascii() and (not tail or tail.isalnum())


def _ais_sources(vessels: dict[str, Any], base_dir: Path) -> list[AisSource]:
    urls = vessels.get("ais_sources", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) and u.strip() for u in urls):
        raise ConfigError("[vessels] ais_sources", "must be a list of tcp://host:port, udp://host:port or file paths")
    sources: list[AisSource] = []
    for url in urls:
        try:
            source = parse_source(url)
        except SourceError as exc:
            raise ConfigError("[vessels] ais_sources", str(exc)) from None
        if source.path is not None and not source.path.is_absolute():
            source = replace(source, path=base_dir / source.path)
        sources.append(source)
    return sources


def _bool(table: dict[str, Any], section: str, key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"[{section}] {key}", f"must be true or false, not {value!r}")
    return value


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}]", "must be a table")
    return value


def _list(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"[[{key}]]", "must be an array of tables")
    return value


def _str(table: dict[str, Any], section: str, key: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[{section}] {key}", "required, a non-empty string")
    return value


def _number(table: dict[str, Any], section: str, key: str, default: float, *, minimum: float | None = None,
            maximum: float | None = None) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"[{section}] {key}", f"must be a number, not {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"[{section}] {key}", f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"[{section}] {key}", f"must be at most {maximum}")
    return float(value)


def _solapi_settings(settings: dict[str, Any]) -> None:
    """``[provider] kind = "solapi"``: api_key and api_secret from the environment; pf_id and sender_no
    required (plain or env:VARIABLE)."""
    for key in SOLAPI_SECRET_KEYS:
        if key not in settings:
            raise ConfigError(f"[provider] {key}", "required for kind solapi (as env:VARIABLE)")
        settings[key] = _secret(settings[key], f"[provider] {key}", required=True)
    for key in ("pf_id", "sender_no"):
        value = settings.get(key)
        if isinstance(value, str) and value.startswith("env:"):
            value = settings[key] = _secret(value, f"[provider] {key}", required=True)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"[provider] {key}", "required for kind solapi")


def _secret(value: Any, key: str, *, required: bool) -> str | None:
    if not isinstance(value, str) or not value.startswith("env:"):
        raise ConfigError(key, "secrets come from the environment: write env:VARIABLE_NAME")
    name = value[4:]
    found = os.environ.get(name)
    if not found:
        if required:
            raise ConfigError(key, f"environment variable {name} is not set")
        return None
    return found


def _feed(index: int, f: dict[str, Any]) -> FeedConfig:
    where = f"[[feeds]] #{index + 1}"
    name = _str(f, where, "name")
    kind = _str(f, f"feeds {name}", "kind")
    if kind not in PARSERS:
        raise ConfigError(f"[[feeds]] {name} kind", f"unknown kind {kind!r} (known: {', '.join(PARSERS)})")
    options = f.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"[[feeds]] {name} options", "must be a table")
    enabled = f.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"[[feeds]] {name} enabled", "must be true or false")
    return FeedConfig(
        name=name,
        kind=kind,
        url=feed_url(f, name),
        interval_seconds=_number(f, f"feeds {name}", "interval_seconds", 300, minimum=1),
        options=options,
        max_links=int(_number(f, f"feeds {name}", "max_links", 50, minimum=0)),
        enabled=enabled,
        active_interval_seconds=(_number(f, f"feeds {name}", "active_interval_seconds", 0, minimum=1)
                                 if "active_interval_seconds" in f else None),
        push=_push(name, kind, f.get("push"), options),
    )


def _push(feed: str, kind: str, table: Any, options: dict[str, Any]) -> PushConfig | None:
    where = f"[[feeds]] {feed} push"
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(where, "must be a table such as { auth = \"token\", secret = \"env:VARIABLE\" }")
    if kind not in ("cap", "incident-json"):
        raise ConfigError(where, f"pushes are taken for kind cap or incident-json, not {kind!r}")
    auth = table.get("auth")
    if auth not in PUSH_AUTH:
        raise ConfigError(f"{where}.auth", f"must be one of {', '.join(PUSH_AUTH)}, not {auth!r}")
    secret = None
    if auth in ("token", "hmac"):
        secret = _secret(table.get("secret"), f"{where}.secret", required=True)
    elif kind != "cap" or options.get("signature") != "require":
        raise ConfigError(f"{where}.auth", 'auth = "signature" needs kind = "cap" and '
                          'options.signature = "require" with the partner\'s trusted_certs')
    max_bytes = int(_number(table, where, "max_bytes", 1_000_000, minimum=1))
    return PushConfig(auth=auth, secret=secret, max_bytes=max_bytes)


def _resolve_feed_path(feed: FeedConfig, base_dir: Path) -> FeedConfig:
    """Relative local paths are relative to the config file, so the config works from any folder."""
    certs = feed.options.get("trusted_certs")
    if isinstance(certs, list):
        feed.options = {**feed.options, "trusted_certs": [str(base_dir / c) if isinstance(c, str) else c
                                                          for c in certs]}
    url = feed.url
    if "://" in url or url.startswith("bundled:") or url == PUSH_ONLY_URL or Path(url).is_absolute():
        return feed
    feed.url = str((base_dir / url).resolve())
    return feed


def _check_parser_options(feed: FeedConfig) -> FeedConfig:
    """Options a parser checks when it is made (the signature policy reads its certificates) fail here, at
    start-up, naming the feed and option, rather than at the first poll."""
    try:
        get_parser(feed.kind, feed.options)
    except SignatureOptionError as exc:
        raise ConfigError(f"[[feeds]] {feed.name} options.{exc.option}", str(exc).split(": ", 1)[1]) from None
    return feed


def _database_url(url: str, base_dir: Path) -> str:
    url = database_url_scheme(url)
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        relative = url[len(prefix):]
        return prefix + str((base_dir / relative).resolve())
    return url


def _demo(index: int, d: dict[str, Any]) -> DemoSubscriber:
    where = f"demo.subscribers #{index + 1}"
    zones = d.get("zones", [])
    if not isinstance(zones, list) or not zones or not all(isinstance(z, str) for z in zones):
        raise ConfigError(f"[[{where}]] zones", "must be a non-empty list of zone codes")
    severity = d.get("min_severity", "Unknown")
    if severity not in SEVERITY_RANK:
        raise ConfigError(f"[[{where}]] min_severity", f"must be one of {', '.join(SEVERITY_RANK)}")
    return DemoSubscriber(phone=_str(d, where, "phone"), name=d.get("name", ""), zones=zones, min_severity=severity)


# -- additions for issue 12 (strict keys, URL schemes, secrets in feed URLs) ------------------------------

#: What ``[database] url`` may start with. ``postgres://`` and ``postgresql://`` (what hosting panels print)
#: are read as ``postgresql+psycopg://``: psycopg 3 is the driver alimcast installs.
DATABASE_SCHEMES = ("sqlite:///", "postgresql+psycopg://")
_POSTGRES_ALIASES = ("postgres://", "postgresql://")


def check_schema(raw: dict[str, Any]) -> None:
    """Unknown tables and keys are errors (see ``alerts/config_schema.py`` to register new ones)."""
    try:
        check_known_keys(raw)
    except UnknownKey as exc:
        raise ConfigError(exc.where, exc.message) from None


def database_url_scheme(url: str) -> str:
    """``env:VAR`` is read from the environment (a PostgreSQL password stays out of the file); an unknown
    scheme is one line naming the ones that work, not a traceback from SQLAlchemy."""
    if url.startswith("env:"):
        url = _secret(url, "[database] url", required=True) or ""
    for alias in _POSTGRES_ALIASES:
        if url.startswith(alias):
            return "postgresql+psycopg://" + url[len(alias):]
    if url.startswith(DATABASE_SCHEMES):
        return url
    scheme = url.split("://", 1)[0] if "://" in url else url[:20]
    raise ConfigError("[database] url", f"unsupported scheme {scheme!r}: use sqlite:///PATH or "
                      "postgresql+psycopg://USER@HOST/DB (postgres:// and postgresql:// are read as "
                      "postgresql+psycopg://)")


def feed_url(f: dict[str, Any], name: str) -> str:
    """The feed URL with secrets from the environment: ``url = "env:VAR"`` for a whole URL, or a ``params``
    table appended to the query, where a value ``env:VAR`` is read from the environment (a data.go.kr
    ``serviceKey`` never has to be written into the file)."""
    where = f"[[feeds]] {name}"
    url = _str(f, f"feeds {name}", "url")
    if url.startswith("env:"):
        url = _secret(url, f"{where} url", required=True) or ""
        register_secret(url)
    params = f.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where} params", "must be a table, e.g. { serviceKey = \"env:DATA_GO_KR_KEY\" }")
    if not params:
        return url
    from urllib.parse import quote

    parts: list[str] = []
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{where} params.{key}", "must be a string or a number")
        text = str(value)
        if text.startswith("env:"):
            text = _secret(text, f"{where} params.{key}", required=True) or ""
            register_secret(text)
        # data.go.kr hands out keys both URL-encoded and not: an encoded one is passed as it is
        parts.append(f"{quote(str(key), safe='')}={text if '%' in text else quote(text, safe='')}")
    return url + ("&" if "?" in url else "?") + "&".join(parts)


def _price_book(raw: dict[str, Any], prices: Prices) -> Prices:
    """``[[prices]]`` entries over time, or the single ``[prices]`` table as one entry effective forever;
    plus ``[baseline]``. The flat fields keep today's prices for code that reads them."""
    try:
        if isinstance(raw.get("prices"), list):
            entries = parse_price_entries(raw["prices"])
            latest = max(entries, key=lambda e: e.effective)
            prices = Prices(alimtalk=float(latest.alimtalk), sms=float(latest.sms), lms=float(latest.lms))
        else:
            mms = _table(raw, "prices").get("mms")
            if mms is not None:
                mms = _number(_table(raw, "prices"), "prices", "mms", 0.0, minimum=0)
            entries = [single_entry(prices.alimtalk, prices.sms, prices.lms, mms)]
        mode, invoices = parse_baseline(_table(raw, "baseline"))
    except PricingError as exc:
        raise ConfigError(exc.key, str(exc).split(": ", 1)[1]) from None
    prices.book = PriceBook(entries=entries, baseline_mode=mode, invoices=invoices)
    return prices


def _short_sms_forms(templates_raw: dict[str, Any], templates: dict[str, TemplateConfig]) -> None:
    """``sms = "…"`` beside ``code`` and ``text``: checked now to fit 90 EUC-KR bytes for realistic values."""
    from alerts.short_sms import short_form_problem

    for tkind, template in templates.items():
        t = templates_raw.get(tkind)
        if not isinstance(t, dict) or "sms" not in t:
            continue
        sms = t["sms"]
        if not isinstance(sms, str) or not sms.strip():
            raise ConfigError(f"[templates.{tkind}] sms", "must be a non-empty string (or left out)")
        problem = short_form_problem(sms, template.text)
        if problem:
            raise ConfigError(f"[templates.{tkind}] sms", problem)
        template.sms = sms
