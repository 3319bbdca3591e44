"""Accounts, passwords, sessions and roles.

- Passwords are hashed with argon2id (argon2-cffi's RFC 9106 defaults); hashes made with older parameters
  are upgraded at the next successful login.
- A session is a random 256-bit token in an HttpOnly, SameSite=Lax cookie; the database keeps only its
  SHA-256, with an absolute expiry and an idle timeout. Logging in always issues a NEW token and deletes the
  one the browser presented (session fixation: an id planted before login is worthless after it).
- Failed logins are counted in the database per account name and per client address over a sliding window;
  past the limit the login is refused before the password is even checked. Unknown names cost the same
  argon2 verification as known ones, and answer the same, so the form does not reveal who has an account.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from alerts.db import session_scope
from alerts.web.context import client_address, web_context
from alerts.web.models import ROLE_RANK, ROLES, LoginAttempt, WebSession, WebUser
from alerts.web.settings import WebSettings

SESSION_COOKIE = "alimcast_session"
MIN_PASSWORD_LENGTH = 10
#: last_seen_at is written at most this often (one write per request would serialise SQLite readers).
TOUCH_EVERY = timedelta(seconds=60)

_hasher = PasswordHasher()
_dummy_hash: str | None = None


class LoginRequired(Exception):
    """No valid session: pages redirect to /login, JSON and fragment requests get 401."""


class Forbidden(Exception):
    """Logged in, but the role does not allow this."""

    def __init__(self, needed: str) -> None:
        super().__init__(f"needs the {needed} role")
        self.needed = needed


class LoginRefused(Exception):
    def __init__(self, message: str, *, throttled: bool = False) -> None:
        super().__init__(message)
        self.throttled = throttled


@dataclass(frozen=True, slots=True)
class CurrentUser:
    id: int
    name: str
    role: str
    session_id: str
    csrf_token: str

    def has(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# -- passwords and accounts -------------------------------------------------------------------------
def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password: at least {MIN_PASSWORD_LENGTH} characters")


def add_user(session: Session, name: str, password: str, role: str) -> WebUser:
    """Create the account, or reset the password and role of an existing one (``users add`` is idempotent)."""
    name = name.strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise ValueError(f"user name {name!r}: 1-64 characters, no spaces")
    if role not in ROLES:
        raise ValueError(f"role {role!r}: must be one of {', '.join(ROLES)}")
    check_password_rules(password)
    user = session.exec(select(WebUser).where(WebUser.name == name)).first() or WebUser(name=name)
    user.password_hash = hash_password(password)
    user.role = role
    user.disabled = False
    session.add(user)
    session.flush()
    # a new password ends the account's other sessions
    session.execute(delete(WebSession).where(col(WebSession.user_id) == user.id))
    return user


def _verify(password_hash: str | None, password: str) -> bool:
    global _dummy_hash
    if password_hash is None:
        _dummy_hash = _dummy_hash or _hasher.hash(secrets.token_urlsafe(16))
        password_hash = _dummy_hash
        password = password + "\x00never"
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def throttled(session: Session, *, username: str, client: str, now: datetime, settings: WebSettings) -> str | None:
    """Why a login must be refused without checking the password, or None."""
    since = now - timedelta(minutes=settings.login_window_minutes)
    failures = select(func.count()).select_from(LoginAttempt).where(
        col(LoginAttempt.at) >= since, col(LoginAttempt.success).is_(False))
    by_account = session.exec(failures.where(LoginAttempt.username == username)).one()
    if by_account >= settings.login_max_failures_per_account:
        return "too many failed logins for this account: try again later"
    by_client = session.exec(failures.where(LoginAttempt.client == client)).one()
    if by_client >= settings.login_max_failures_per_client:
        return "too many failed logins from this address: try again later"
    return None


def authenticate(session: Session, *, username: str, password: str, client: str, now: datetime,
                 settings: WebSettings) -> WebUser:
    username = username.strip()[:64]
    reason = throttled(session, username=username, client=client, now=now, settings=settings)
    if reason:
        raise LoginRefused(reason, throttled=True)
    user = session.exec(select(WebUser).where(WebUser.name == username)).first()
    ok = _verify(user.password_hash if user else None, password)
    ok = ok and user is not None and not user.disabled
    session.add(LoginAttempt(at=now, username=username, client=client, success=ok))
    # attempts older than a day count for nothing: keep the table small
    session.execute(delete(LoginAttempt).where(col(LoginAttempt.at) < now - timedelta(days=1)))
    if not ok or user is None:
        raise LoginRefused("wrong name or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.add(user)
    return user


# -- sessions ---------------------------------------------------------------------------------------
def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: WebUser, *, old_token: str | None, client: str, user_agent: str,
                  now: datetime, settings: WebSettings) -> str:
    """A fresh token for a fresh login; the presented one (if any) is deleted, never reused."""
    if old_token:
        session.execute(delete(WebSession).where(col(WebSession.id) == token_id(old_token)))
    session.execute(delete(WebSession).where(col(WebSession.expires_at) < now))
    token = secrets.token_urlsafe(32)
    assert user.id is not None
    session.add(WebSession(id=token_id(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32), created_at=now,
                           last_seen_at=now, expires_at=now + timedelta(hours=settings.session_hours),
                           client=client, user_agent=user_agent[:200]))
    return token


def end_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(col(WebSession.id) == token_id(token)))


def load_user(request: Request) -> CurrentUser | None:
    """The logged-in user of this request (cached on ``request.state``), or None.

    An expired or idle session is deleted on sight.
    """
    if hasattr(request.state, "user"):
        return request.state.user
    user: CurrentUser | None = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        ctx = web_context(request)
        now = ctx.now()
        with session_scope(ctx.engine) as db:
            row = db.get(WebSession, token_id(token))
            account = db.get(WebUser, row.user_id) if row is not None else None
            if row is not None and (account is None or account.disabled or row.expires_at <= now
                                    or row.last_seen_at + timedelta(minutes=ctx.settings.idle_minutes) <= now):
                db.delete(row)
            elif row is not None and account is not None and account.id is not None:
                if now - row.last_seen_at >= TOUCH_EVERY:
                    row.last_seen_at = now
                    db.add(row)
                user = CurrentUser(id=account.id, name=account.name, role=account.role, session_id=row.id,
                                   csrf_token=row.csrf_token)
    request.state.user = user
    return user


def current_user(request: Request) -> CurrentUser:
    """Dependency: the logged-in user, or LoginRequired (every non-public router carries it)."""
    user = load_user(request)
    if user is None:
        raise LoginRequired()
    return user


def require_role(role: str):  # noqa: ANN201 - a FastAPI dependency factory
    """Dependency factory: ``Depends(require_role("operator"))`` refuses viewers with 403."""
    if role not in ROLE_RANK:
        raise ValueError(role)

    def dependency(user: CurrentUser = Depends(current_user)) -> CurrentUser:
        if not user.has(role):
            raise Forbidden(role)
        return user

    return dependency


def client_of(request: Request) -> str:
    return client_address(request)
