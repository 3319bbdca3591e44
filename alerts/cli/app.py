"""The top-level ``alimcast`` app: sub-apps are registered here, each in a module of its own."""

from __future__ import annotations

import importlib
import sys

import typer

from alerts.cli import costs, db, feeds, run, serve

app = typer.Typer(help="alimcast: warnings from CAP/KMA feeds to KakaoTalk AlimTalk, with SMS/LMS fallback.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.command("run")(run.run)
app.add_typer(feeds.app, name="feeds", help="Parse feeds and see their health.")
app.add_typer(costs.app, name="costs", help="Monthly cost against the SMS/LMS baseline.")
app.add_typer(db.app, name="db", help="Database schema (Alembic migrations).")
app.command("serve")(serve.serve)

#: Sub-apps living in their own modules; a missing one only hides its commands.
OPTIONAL = {"subscribers": "People and their zones.", "zones": "KMA warning zones and their polygons.",
            "vessels": "Vessels and AIS positions.",
            "templates": "Message templates as the recipient reads them.",
            "provider": "Check the provider account, sender key and templates without sending.",
            "users": "Console accounts (argon2 passwords, roles).",
            "acks": "Who confirmed a warning; the unconfirmed boats; reminders."}
OPTIONAL["alerts"] = "Recent alerts and what became of one alert's messages."
OPTIONAL["workers"] = "The alimcast run workers sharing this database."
for _name, _help in OPTIONAL.items():
    try:
        _module = importlib.import_module(f"alerts.cli.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"alerts.cli.{_name}":
            raise
        continue
    app.add_typer(_module.app, name=_name, help=_help)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"alimcast {version('alimcast')}")
        except PackageNotFoundError:
            typer.echo("alimcast (not installed as a package)")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """alimcast: warnings from CAP/KMA feeds to KakaoTalk AlimTalk, with SMS/LMS fallback."""


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
