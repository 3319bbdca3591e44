"""``alimcast db upgrade|current``."""

from __future__ import annotations

import typer

from alerts.cli.common import ConfigOption, open_context
from alerts.db import current_revision

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema to the newest migration."""
    ctx = open_context(config)
    typer.echo(f"database at revision {current_revision(ctx.engine)}")


@app.command("current")
def current_cmd(config: ConfigOption = None) -> None:
    """Show the schema revision without changing anything."""
    ctx = open_context(config, migrate=False)
    typer.echo(current_revision(ctx.engine) or "empty (run: alimcast db upgrade)")
