"""Personal links in messages: ``/a/<token>`` to read and confirm a warning, ``/u/<token>`` to manage or end
the subscription.

A token is ``secrets.token_urlsafe(24)`` (192 random bits) and only its SHA-256 is stored, so neither the
database nor a backup holds a working link. Each message gets fresh tokens (the raw token cannot be
recalled to put in a later message); every token of a person for one warning leads to the same warning
and the same confirmation. A link reveals nothing of anyone else: it names one person (and one warning),
and the pages it opens show that person's choices only, never a phone number.

Opening a link changes nothing (link previews and scanners open links); only the confirmation or the
change submitted from the page does. Acknowledgement links expire with their warning (ended, lifted,
expired), manage links after ``[subscribe] manage_link_days``.

Rendering: templates may use ``#{ack_url}`` (Severe and Extreme warnings only; empty otherwise) and
``#{manage_url}`` (every message), when ``[web] public_url`` is set. :func:`add_personal_links` is the
fan-out's hook: it fills them per person into the outbox rows. A template line whose personal variables
all came out empty is left out of the text (the SMS fallback then has no dangling "확인:" line).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, select

from alerts.config import Config
from alerts.db import sqlite_datetime
from alerts.delivery.sms import fallback_kind
from alerts.models import AlertRecord, AlertThread
from alerts.public.models import PersonalLink
from alerts.public.settings import PublicSettings, public_settings
from alerts.render import VARIABLE, fill, variables
from feeds.model import Alert
from subscribers.models import Subscriber
from subscribers.sqltypes import utcnow

ACK_VARS = ("ack_url",)
MANAGE_VARS = ("manage_url",)
PERSONAL_VARS = ACK_VARS + MANAGE_VARS
#: Warnings whose messages carry an acknowledgement link (and whose unconfirmed recipients are reminded).
ACK_SEVERITIES = ("Severe", "Extreme")
ACK_PATH = "/a/"
MANAGE_PATH = "/u/"


def new_token() -> tuple[str, str]:
    """(token for the URL, hash to store)."""
    token = secrets.token_urlsafe(24)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def needs_ack(severity: str | None) -> bool:
    return severity in ACK_SEVERITIES


# -- rendering hook -------------------------------------------------------------------------------------


def add_personal_links(session: Session, config: Config, alert: Alert, thread_id: int,
                       rows: Sequence[dict[str, Any]], *, now: datetime | None = None,
                       settings: PublicSettings | None = None) -> int:
    """Fill ``#{ack_url}`` and ``#{manage_url}`` per person in outbox rows (dicts with ``kind``,
    ``subscriber_id``, ``params``, ``text``, ``fallback_kind``) and store the links' hashes. Returns the
    number of links made. Without ``[web] public_url`` no link is made and their lines are left out."""
    settings = settings or public_settings(config)
    if not rows:
        return 0
    now = now or utcnow()
    base = settings.public_url
    ack = bool(base) and needs_ack(alert.max_severity())
    end = alert.end_time()
    links: list[dict[str, Any]] = []
    kinds: dict[tuple[str, str | None], _Plan | None] = {}
    #: Without links every row sharing a rendering (the same params object) gets the same text: done once.
    same: dict[int, tuple[dict[str, str], str, str]] = {}
    manage_until = now + settings.subscribe.manage_link_lifetime
    for row in rows:
        kind = row["kind"]
        key = (kind, row.get("template_code"))  # a translation has its own text: the row's own template
        if key not in kinds:
            kinds[key] = _plan(config, settings, kind, row.get("template_code"), ack=ack)
        known = kinds[key]
        if known is None:
            continue
        template, used, make_ack, make_manage = known
        if not (make_ack or make_manage):
            shared = same.get(id(row["params"]))
            if shared is None:
                values = {**row["params"], **{name: "" for name in used}}
                text = fill_personal(template, values)
                shared = same[id(row["params"])] = (values, text, fallback_kind(text))
            row["params"], row["text"] = dict(shared[0]), shared[1]
            if not _short_form(config, row):
                row["fallback_kind"] = shared[2]
            continue
        values = {**row["params"], **{name: "" for name in used}}
        if make_ack:
            token, digest = new_token()
            links.append({"token_hash": digest, "purpose": "ack", "subscriber_id": row["subscriber_id"],
                          "thread_id": thread_id, "created_at": now, "expires_at": end})
            values["ack_url"] = base + ACK_PATH + token
        if make_manage:
            token, digest = new_token()
            links.append({"token_hash": digest, "purpose": "manage", "subscriber_id": row["subscriber_id"],
                          "thread_id": None, "created_at": now, "expires_at": manage_until})
            values["manage_url"] = base + MANAGE_PATH + token
        row["params"] = values
        row["text"] = fill_personal(template, values)
        if not _short_form(config, row):  # a template's short SMS form (no links in it) decided already
            row["fallback_kind"] = fallback_kind(row["text"])  # SMS or LMS by cp949 length, as build_fallback
    _store(session, links)
    return len(links)


#: A row kind's template with personal variables: (text, the variables it uses, makes an ack link, makes a
#: manage link).
_Plan = tuple[str, set[str], bool, bool]


def _plan(config: Config, settings: PublicSettings, kind: str, template_code: str | None, *, ack: bool) -> _Plan | None:
    template = template_text(config, settings, kind, template_code)
    used = set(variables(template)) & set(PERSONAL_VARS) if template is not None else set()
    if template is None or not used:
        return None
    return template, used, ack and "ack_url" in used and kind != "cancel", bool(settings.public_url) and \
        "manage_url" in used


def makes_links(config: Config, alert: Alert, kind: str, template_code: str | None, *,
                settings: PublicSettings | None = None) -> bool:
    """Whether :func:`add_personal_links` makes a link (so a text of its own) for each row of this kind and
    template. When it does not, every row sharing a rendering gets the same text, and the outbox can be written
    a group at a time."""
    settings = settings or public_settings(config)
    plan = _plan(config, settings, kind, template_code,
                 ack=bool(settings.public_url) and needs_ack(alert.max_severity()))
    return plan is not None and (plan[2] or plan[3])


def _store(session: Session, links: list[dict[str, Any]]) -> None:
    """Two rows per person for a big warning: on SQLite they go to the driver directly (SQLAlchemy's per-value
    type processing would cost more than the rest of the links together); elsewhere a Core executemany."""
    if not links:
        return
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        session.execute(insert(PersonalLink.__table__), links)  # type: ignore[attr-defined]
        return
    rows = [(link["token_hash"], link["purpose"], link["subscriber_id"], link["thread_id"],
             sqlite_datetime(link["created_at"]), sqlite_datetime(link["expires_at"])) for link in links]
    connection.connection.driver_connection.executemany(  # type: ignore[union-attr]
        "INSERT INTO personal_link (token_hash, purpose, subscriber_id, thread_id, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)", rows)


def _short_form(config: Config, row: dict[str, Any]) -> bool:
    """Whether the row's fallback is its template's short SMS form (chosen by the fan-out, link-free)."""
    template = config.templates.get(row["kind"])
    return template is not None and bool(getattr(template, "sms", None)) and template.code == row.get("template_code")


def template_text(config: Config, settings: PublicSettings, kind: str, code: str | None = None) -> str | None:
    """The text the row was rendered from: the template with the row's code (a translation), else the kind's."""
    if kind in config.templates:
        template = config.templates[kind]
        if code is not None and code != template.code:
            for translation in template.languages.values():
                if translation.code == code:
                    return translation.text
        return template.text
    if kind == "reminder" and settings.reminder_template is not None:
        return settings.reminder_template.text
    return None


def fill_personal(template: str, values: dict[str, str]) -> str:
    """Fill the template; a line whose personal variables are all empty (and that has no other variable
    with a value) is dropped."""
    lines: list[str] = []
    for line in template.split("\n"):
        names = VARIABLE.findall(line)
        personal = [n for n in names if n in PERSONAL_VARS]
        if personal and not any(values.get(n) for n in names):
            continue
        lines.append(line)
    return fill("\n".join(lines), values)


# -- resolving links ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AckTarget:
    link: PersonalLink
    subscriber: Subscriber
    thread: AlertThread
    record: AlertRecord


def find_link(session: Session, token: str, purpose: str) -> PersonalLink | None:
    if not token or len(token) > 100:
        return None
    return session.exec(select(PersonalLink).where(PersonalLink.token_hash == hash_token(token),
                                                   PersonalLink.purpose == purpose)).first()


def warning_live(thread: AlertThread, record: AlertRecord | None, now: datetime) -> bool:
    """A warning can be confirmed while it is in force: thread active, current version not a 해제, not expired."""
    if thread.state != "active" or record is None or record.msg_type == "Cancel":
        return False
    return record.end_time is None or record.end_time > now


def resolve_ack(session: Session, token: str, now: datetime) -> AckTarget | None:
    """The person and warning an acknowledgement link stands for, or None (unknown, or the warning is over:
    the link expired with it)."""
    link = find_link(session, token, "ack")
    if link is None or link.thread_id is None:
        return None
    thread = session.get(AlertThread, link.thread_id)
    record = session.get(AlertRecord, thread.current_alert_id) if thread and thread.current_alert_id else None
    subscriber = session.get(Subscriber, link.subscriber_id)
    if thread is None or record is None or subscriber is None or not warning_live(thread, record, now):
        return None
    return AckTarget(link=link, subscriber=subscriber, thread=thread, record=record)


def resolve_manage(session: Session, token: str, now: datetime) -> Subscriber | None:
    """The one person a manage link stands for, or None (unknown or expired)."""
    link = find_link(session, token, "manage")
    if link is None or (link.expires_at is not None and link.expires_at <= now):
        return None
    return session.get(Subscriber, link.subscriber_id)


def issue_manage_link(session: Session, config: Config, subscriber_id: int, *, now: datetime | None = None) -> str:
    """A fresh manage link for one person (the subscription confirmation carries one). Returns the path
    ``/u/<token>`` when no public URL is configured, the absolute URL otherwise."""
    settings = public_settings(config)
    now = now or utcnow()
    token, digest = new_token()
    session.add(PersonalLink(token_hash=digest, purpose="manage", subscriber_id=subscriber_id, created_at=now,
                             expires_at=now + settings.subscribe.manage_link_lifetime))
    session.flush()
    return settings.public_url + MANAGE_PATH + token


def issue_ack_link(session: Session, config: Config, subscriber_id: int, thread_id: int, *,
                   end: datetime | None, now: datetime | None = None) -> str:
    """A fresh acknowledgement link (reminders carry one)."""
    settings = public_settings(config)
    now = now or utcnow()
    token, digest = new_token()
    session.add(PersonalLink(token_hash=digest, purpose="ack", subscriber_id=subscriber_id, thread_id=thread_id,
                             created_at=now, expires_at=end))
    session.flush()
    return settings.public_url + ACK_PATH + token
