"""``alimcast users``: console accounts (argon2-hashed passwords; roles admin, operator, viewer)."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import select

from alerts.cli.common import ConfigOption, fail, open_context
from alerts.web import audit
from alerts.web.auth import add_user
from alerts.web.models import ROLES, WebSession, WebUser
from subscribers.sqltypes import utcnow

app = typer.Typer(no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[str, typer.Option("--role", help="admin, operator or viewer")] = "viewer",
    password_env: Annotated[str | None, typer.Option("--password-env", help="read the password from this "
                                                     "environment variable instead of a prompt")] = None,
    config: ConfigOption = None,
) -> None:
    """Add an account, or reset the password and role of an existing one (its sessions end)."""
    if role not in ROLES:
        fail(f"--role {role!r}: must be one of {', '.join(ROLES)}")
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            fail(f"--password-env {password_env}: environment variable is not set")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    ctx = open_context(config)
    try:
        with ctx.session() as session:
            user = add_user(session, name, password, role)
            audit.record(session, at=utcnow(), actor=f"cli:{os.environ.get('USER', '?')}", action="user.add",
                         target=user.name, detail={"role": role})
    except ValueError as exc:
        fail(str(exc))
    print(f"user {name}: {role}")


@app.command("list")
def list_users(config: ConfigOption = None) -> None:
    """Accounts and their roles."""
    ctx = open_context(config)
    table = Table("name", "role", "disabled", "sessions")
    with ctx.session() as session:
        for user in session.exec(select(WebUser).order_by(WebUser.name)):
            sessions = len(list(session.exec(select(WebSession.id).where(WebSession.user_id == user.id))))
            table.add_row(user.name, user.role, "yes" if user.disabled else "", str(sessions))
    Console().print(table)


@app.command("disable")
def disable(name: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """Disable an account (its sessions end at once)."""
    ctx = open_context(config)
    with ctx.session() as session:
        user = session.exec(select(WebUser).where(WebUser.name == name)).first()
        if user is None:
            fail(f"user {name!r}: no such account")
        user.disabled = True
        session.add(user)
        for row in session.exec(select(WebSession).where(WebSession.user_id == user.id)):
            session.delete(row)
        audit.record(session, at=utcnow(), actor=f"cli:{os.environ.get('USER', '?')}", action="user.disable",
                     target=name)
    print(f"user {name}: disabled")
