"""Phone verification for the public subscription page: nobody subscribes a number they cannot read.

Flow: the page asks for a phone number; :func:`request_code` makes a six-digit code and a *ticket* (a
random token the browser keeps; the phone number never travels back to the page), and sends the code
through the configured provider (the AlimTalk authentication template ``[templates.verify]``, with the
SMS fallback). :func:`check_code` checks what the person typed; :func:`complete_subscription` then
records their choices and consent, once.

Why the code is sent directly through the provider and not as an outbox row: the person is looking at
the page waiting for it, so it must not queue behind a 40,000-message storm warning; it belongs to no
alert (outbox rows do); and when the provider refuses it, the page must say so at once. (It is
therefore not in the cost ledger; its outcome is logged, masked.)

Limits (``[subscribe]``): a code lives ``code_minutes`` and allows ``code_max_attempts`` tries; codes
sent per phone and per client address per hour are capped, and so are wrong codes per client and per
phone: past the cap no code is even compared, so guessing cannot continue from another ticket.

Nobody can learn whether a number is subscribed: every answer (code sent, wrong code, subscribed) is the
same whether or not the number was subscribed before, and a code is sent in both cases.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, select

from alerts.config import Config
from alerts.delivery.providers.base import OutgoingMessage, Provider, ProviderError
from alerts.delivery.sms import build_fallback
from alerts.public import throttle
from alerts.public.links import hash_token, issue_manage_link
from alerts.public.models import VerificationCode
from alerts.public.settings import PublicSettings, public_settings
from alerts.render import render
from subscribers import zones as zone_catalogue
from subscribers.geo_models import Vessel
from subscribers.models import Subscriber, Subscription
from subscribers.phone import mask, normalize
from subscribers.store import add_subscriber
from subscribers.vessels import add_vessel, check_mmsi

log = logging.getLogger("alimcast.verification")

#: After the right code, the choices must be submitted within this time.
CHOOSE_WITHIN = timedelta(minutes=30)

TOO_MANY = "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요. / Too many requests; please try again later."
NOT_SENT = "인증번호를 보내지 못했습니다. 잠시 후 다시 시도해 주세요. / The code could not be sent; try again later."

#: Sends a message to one phone; returns True when the provider accepted it.
CodeSender = Callable[[str, str, dict[str, str]], bool]


class SubscribeError(ValueError):
    """A choice the page must show back to the person (bad zone, unknown vessel name...)."""


@dataclass(frozen=True, slots=True)
class CodeRequest:
    #: "sent", "throttled", "unavailable" (provider refused or no template), "bad_phone".
    status: str
    ticket: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class CodeCheck:
    #: "ok", "wrong", "throttled", "expired" (unknown, expired, spent or out of attempts).
    status: str
    attempts_left: int = 0


def _code_hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def request_code(session: Session, config: Config, phone: str, *, client: str, now: datetime,
                 send: CodeSender, settings: PublicSettings | None = None) -> CodeRequest:
    settings = settings or public_settings(config)
    s = settings.subscribe
    try:
        number = normalize(phone)
    except ValueError:
        return CodeRequest("bad_phone", message="휴대전화 번호를 확인해 주세요. / Please check the mobile number.")
    if settings.verify_template is None:
        log.error("subscription page: no [templates.verify] configured; codes cannot be sent")
        return CodeRequest("unavailable", message="지금은 인증번호를 보낼 수 없습니다. / Codes cannot be sent now.")
    phone_key = throttle.digest("phone", number)
    client_key = throttle.digest("client", client)
    if (throttle.count(session, f"send:phone:{phone_key}", now=now) >= s.sends_per_phone_per_hour
            or throttle.count(session, f"send:client:{client_key}", now=now) >= s.sends_per_client_per_hour):
        return CodeRequest("throttled", message=TOO_MANY)
    throttle.add(session, f"send:phone:{phone_key}", f"send:client:{client_key}", now=now)
    # counted before the provider is called, and committed: a slow provider then holds no write lock (SQLite
    # has one writer, and `alimcast run` may be sending a warning), and a send that dies midway still counts
    session.commit()
    code = f"{secrets.randbelow(1_000_000):06d}"
    ticket = secrets.token_urlsafe(24)
    salt = secrets.token_hex(16)
    minutes = int(s.code_lifetime.total_seconds() // 60)
    if not send(number, settings.verify_template.code, {"code": code, "minutes": str(minutes),
                                                         "sender": config.sender_name}):
        return CodeRequest("unavailable", message=NOT_SENT)
    session.add(VerificationCode(ticket_hash=hash_token(ticket), phone=number, phone_hash=phone_key, salt=salt,
                                 code_hash=_code_hash(salt, code), client=client_key, created_at=now,
                                 expires_at=now + s.code_lifetime))
    session.flush()
    return CodeRequest("sent", ticket=ticket)


def _row(session: Session, ticket: str) -> VerificationCode | None:
    if not ticket or len(ticket) > 100:
        return None
    return session.exec(select(VerificationCode).where(VerificationCode.ticket_hash == hash_token(ticket))).first()


def check_code(session: Session, config: Config, ticket: str, code: str, *, client: str, now: datetime,
               settings: PublicSettings | None = None) -> CodeCheck:
    s = (settings or public_settings(config)).subscribe
    client_key = throttle.digest("client", client)
    if throttle.count(session, f"fail:client:{client_key}", now=now) >= s.failures_per_client_per_hour:
        return CodeCheck("throttled")
    row = _row(session, ticket)
    if row is None or row.used_at is not None or row.expires_at <= now or row.attempts >= s.code_max_attempts:
        throttle.add(session, f"fail:client:{client_key}", now=now)
        return CodeCheck("expired")
    if row.verified_at is not None:
        return CodeCheck("ok")
    if throttle.count(session, f"fail:phone:{row.phone_hash}", now=now) >= s.failures_per_phone_per_hour:
        return CodeCheck("throttled")
    row.attempts += 1
    typed = "".join(ch for ch in (code or "") if ch.isdigit())[:6]
    if not hmac.compare_digest(_code_hash(row.salt, typed), row.code_hash):
        session.add(row)
        throttle.add(session, f"fail:client:{client_key}", f"fail:phone:{row.phone_hash}", now=now)
        left = max(0, s.code_max_attempts - row.attempts)
        return CodeCheck("wrong" if left else "expired", attempts_left=left)
    row.verified_at = now
    session.add(row)
    session.flush()
    return CodeCheck("ok")


def verified_ticket(session: Session, ticket: str, *, now: datetime) -> VerificationCode | None:
    """The verified, not yet spent attempt behind a ticket (the choices page needs one)."""
    row = _row(session, ticket)
    if row is None or row.verified_at is None or row.used_at is not None or row.verified_at + CHOOSE_WITHIN <= now:
        return None
    return row


@dataclass(frozen=True, slots=True)
class Choices:
    zones: list[str]
    land_region: str = ""
    vessel: str = ""
    min_severity: str = "Unknown"
    language: str = "ko"
    quiet_hours: str = ""
    consent_version: str = ""


def complete_subscription(session: Session, config: Config, ticket: str, choices: Choices, *, now: datetime,
                          settings: PublicSettings | None = None) -> tuple[Subscriber, str]:
    """Subscribe the verified phone with these choices (they replace earlier zone choices: the person proved
    the number is theirs) and record the consent. Returns the person and their manage link.
    Raises SubscribeError for a choice to correct, LookupError when the ticket is not verified or spent."""
    settings = settings or public_settings(config)
    row = verified_ticket(session, ticket, now=now)
    if row is None:
        raise LookupError("verification expired; start again")
    if choices.consent_version != settings.subscribe.consent_version:
        raise SubscribeError("동의 내용을 읽고 동의해 주세요. / Please read and accept the consent text.")
    wanted = [z for z in [*choices.zones, choices.land_region] if z and z.strip()]
    if not wanted:
        raise SubscribeError("해역이나 지역을 하나 이상 골라 주세요. / Choose at least one sea zone or region.")
    try:
        leaves = zone_catalogue.expand_many(wanted)
    except ValueError as exc:
        raise SubscribeError(str(exc)) from None
    mmsi = _vessel(session, choices.vessel)
    consent = f"[{settings.subscribe.consent_version}] {settings.subscribe.consent_text}"
    existing = session.exec(select(Subscriber).where(Subscriber.phone == row.phone)).first()
    if existing is not None and existing.status != "unsubscribed":
        # proven owner: the page's choices are the whole choice (an unsubscribed row is reset by add itself)
        session.execute(delete(Subscription).where(Subscription.subscriber_id == existing.id,
                                                   Subscription.kind == "zone"))
        existing.status = "active"
        existing.consent_at = now
        existing.consent_source = "web"
        existing.consent_text = consent
        session.add(existing)
        session.flush()
    try:
        person = add_subscriber(session, row.phone, leaves, min_severity=choices.min_severity,
                                language=choices.language, consent_source="web", consent_text=consent,
                                consent_at=now, quiet_hours=choices.quiet_hours or "")
    except ValueError as exc:
        raise SubscribeError(str(exc)) from None
    if mmsi is not None:
        add_vessel(session, mmsi, subscribers=[person.id])  # type: ignore[list-item]
    row.used_at = now
    row.phone = ""  # the attempt is over: the number lives on the subscriber row only
    session.add(row)
    session.flush()
    link = issue_manage_link(session, config, person.id, now=now)  # type: ignore[arg-type]
    log.info("subscribed %s from the web page (%d zones, consent %s)", mask(person.phone), len(leaves),
             settings.subscribe.consent_version)
    return person, link


def _vessel(session: Session, value: str) -> int | None:
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        try:
            return check_mmsi(text)
        except ValueError as exc:
            raise SubscribeError(str(exc)) from None
    found = session.exec(select(Vessel.mmsi).where(Vessel.name == text)).all()
    if len(found) != 1:
        raise SubscribeError(f"선박 {text!r}: 찾지 못했습니다. MMSI를 입력해 주세요. / "
                             f"Vessel {text!r} not found (or several): give its MMSI.")
    return int(found[0])


def provider_sender(config: Config, provider: Provider, settings: PublicSettings | None = None) -> CodeSender:
    """Send one templated message to one phone through the provider (verification codes, confirmations)."""
    settings = settings or public_settings(config)
    templates = {t.code: t.text for t in (settings.verify_template, settings.subscribed_template) if t is not None}

    def send(phone: str, template_code: str, values: dict[str, str]) -> bool:
        out = render(templates[template_code], values)
        fallback = build_fallback(out.text)[0] if config.provider.settings.get("fallback", True) else None
        message = OutgoingMessage(delivery_id=0, recipient_no=phone, template_code=template_code,
                                  parameters=out.parameters, text=out.text, fallback=fallback)
        try:
            outcomes = provider.send([message], idempotency_key=uuid.uuid4().hex)
        except ProviderError as exc:
            log.warning("message %s to %s not sent: %s", template_code, mask(phone), exc)
            return False
        ok = bool(outcomes) and outcomes[0].accepted
        if not ok:
            log.warning("message %s to %s refused: %s", template_code, mask(phone),
                        outcomes[0].result_code if outcomes else "no answer")
        return ok

    return send


def send_confirmation(config: Config, send: CodeSender, person: Subscriber, manage_url: str, zone_codes: Iterable[str],
                      settings: PublicSettings | None = None) -> bool:
    """The "you are subscribed" message, when ``[templates.subscribed]`` is configured."""
    settings = settings or public_settings(config)
    template = settings.subscribed_template
    if template is None:
        return False
    names = ", ".join(dict.fromkeys(_zone_label(c) for c in zone_codes))
    if len(names) > 200:
        names = names[:197] + "…"
    return send(person.phone, template.code, {"zones": names, "manage_url": manage_url, "sender": config.sender_name})


def _zone_label(code: str) -> str:
    try:
        return zone_catalogue.name(code)
    except ValueError:
        return code
