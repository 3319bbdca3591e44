"""``alimcast provider check``: the provider account, read-only, before the first real warning."""

from __future__ import annotations

import typer

from alerts.cli.common import ConfigOption, load

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(config: ConfigOption = None) -> None:
    """Credentials, sender key, each template (approved? same variables as config.toml?) and the fallback
    number, asked of the provider's API without sending anything. Exit 1 when anything is wrong."""
    cfg = load(config)
    if cfg.provider.kind == "dryrun":
        typer.echo("provider dryrun: sends nothing, nothing to check (set [provider] kind = \"nhn\")")
        return
    from alerts.delivery.providers.nhn_check import check_nhn

    results = check_nhn(cfg)
    for r in results:
        typer.echo(f"{'ok  ' if r.ok else 'FAIL'} {r.what}: {r.detail}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)
