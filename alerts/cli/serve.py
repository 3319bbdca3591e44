"""``alimcast serve``: the operator console and the public pages (FastAPI under uvicorn)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from alerts.cli.common import ConfigOption, fail, open_context, setup_logging


def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port")] = 8080,
    workers: Annotated[int, typer.Option("--workers", help="worker processes (PostgreSQL only for more than 1)")] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    config: ConfigOption = None,
) -> None:
    """Serve the console (log in with an account made by `alimcast users add`)."""
    import uvicorn

    from alerts.config import CONFIG_ENV
    from alerts.web.app import create_app

    setup_logging(verbose)
    ctx = open_context(config)
    if workers > 1:
        if ctx.engine.dialect.name != "postgresql":
            fail("--workers above 1 needs PostgreSQL ([database] url); SQLite is served by one process")
        if ctx.config.path is not None:
            os.environ[CONFIG_ENV] = str(ctx.config.path.resolve())
        ctx.engine.dispose()
        uvicorn.run("alerts.web.server:app_factory", factory=True, host=host, port=port, workers=workers,
                    proxy_headers=False, log_level="debug" if verbose else "info")
        return
    try:
        app = create_app(ctx.config, engine=ctx.engine)
    except Exception as exc:  # noqa: BLE001 - a bad [web] table: one line
        fail(f"cannot start: {exc}", 2)
    uvicorn.run(app, host=host, port=port, proxy_headers=False, log_level="debug" if verbose else "info")
