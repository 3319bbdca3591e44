"""What every CLI command shares: the --config option, opening the database, and one-line errors.

Operators see ``error: <why>`` and an exit code (1 bad input, 2 bad config), never a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from alerts.config import Config, ConfigError, load_config, resolve_config_path
from alerts.db import make_engine, session_scope, upgrade
from alerts.urlmask import install_log_masking
from alerts.websub import WebSubSettings

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="config.toml to use (default: $ALIMCAST_CONFIG, then ./config.toml)"),
]

EXIT_BAD_INPUT = 1
EXIT_BAD_CONFIG = 2


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print one line on stderr and exit: the contract for every rejected input."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


@dataclass
class AppContext:
    config: Config
    engine: Engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.engine) as session:
            yield session


def load(config_path: Path | None) -> Config:
    try:
        config = load_config(config_path)
        WebSubSettings.from_config(config)  # its keys fail here too, with the rest of the config
        return config
    except ConfigError as exc:
        path = resolve_config_path(config_path)
        where = "config" if path is None or exc.key == "config" else path.name  # "config" lines name the path
        fail(f"{where}: {exc}", EXIT_BAD_CONFIG)


def open_context(config_path: Path | None, *, migrate: bool = True) -> AppContext:
    """Load the config and open the database, applying the shipped migrations first (idempotent)."""
    config = load(config_path)
    engine = make_engine(config.database_url)
    if migrate:
        try:
            upgrade(engine)
        except Exception as exc:  # noqa: BLE001 - one line for the operator, details in the log
            logging.getLogger("alimcast").debug("migration failed", exc_info=True)
            fail(f"database {engine.url.render_as_string(hide_password=True)}: cannot migrate: {exc}", 1)
    return AppContext(config=config, engine=engine)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    install_log_masking()
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
