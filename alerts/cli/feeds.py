"""``alimcast feeds parse|status|list``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alerts.cli.common import ConfigOption, fail, load, open_context
from alerts.db import session_scope
from alerts.feedstate import DbFeedStateStore
from alerts.pipeline import feed_spec
from alerts.urlmask import mask_secrets
from alerts.weather_polling import live_feeds
from feeds.base import ParseError, ParseResult
from feeds.fetch import Fetcher, FetchError
from feeds.model import Alert
from feeds.poller import resolve_link
from feeds.registry import detect_kind, get_parser, kinds

app = typer.Typer(no_args_is_help=True)
MAX_LINKS = 50


@app.command("parse")
def parse(
    source: Annotated[str, typer.Argument(help="a path, file:// URL, http(s) URL or bundled:NAME")],
    kind: Annotated[str | None, typer.Option("--kind", help=f"one of: {', '.join(kinds())}")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the canonical alerts as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Parse a feed or CAP document without storing anything."""
    if kind is not None and kind not in kinds():
        fail(f"--kind {kind!r}: known kinds are {', '.join(kinds())}")
    url = source if "://" in source or source.startswith("bundled:") else str(Path(source))
    with Fetcher() as fetcher:
        try:
            fetched = fetcher.fetch(url, etag=None, last_modified=None)
        except FetchError as exc:
            fail(_named(source, exc))
        content = fetched.content or b""
        try:
            chosen = kind or detect_kind(content)
            result = get_parser(chosen).parse(content, origin=source)
            alerts = list(result.alerts) + _linked(fetcher, fetched.final_url, result)
        except ParseError as exc:
            fail(_named(source, exc))
    for line in result.errors:
        typer.echo(f"warning: {_named(source, line)}", err=True)
    if as_json:
        typer.echo(json.dumps([a.to_json() for a in alerts], ensure_ascii=False, indent=2))
        return
    _print_alerts(alerts, chosen)


def _named(source: str, problem: object) -> str:
    """One line naming the input once (parsers already start their messages with it)."""
    text = " ".join(str(problem).split())
    return text if text.startswith(source) else f"{source}: {text}"


def _linked(fetcher: Fetcher, base: str, result: ParseResult) -> list[Alert]:
    """Index feeds only point at CAP documents: fetch and parse them with the same limits."""
    out: list[Alert] = []
    cap = get_parser("cap")
    for link in result.links[:MAX_LINKS]:
        target = resolve_link(base, link)
        if target is None:
            result.errors.append(f"link {link!r}: not a fetchable URL")
            continue
        try:
            doc = fetcher.fetch(target, etag=None, last_modified=None)
            out.extend(cap.parse(doc.content or b"", origin=target).alerts)
        except (FetchError, ParseError) as exc:
            result.errors.append(f"{target}: {exc}")
    return out


def _print_alerts(alerts: list[Alert], kind: str) -> None:
    table = Table(title=f"{len(alerts)} alerts ({kind})")
    for column in ("sent", "sender", "identifier", "status/type", "event", "severity", "areas"):
        table.add_column(column)
    for a in alerts:
        info = a.infos[0] if a.infos else None
        areas = ", ".join(x.desc for x in info.areas) if info else ""
        table.add_row(a.sent.isoformat(), a.sender, a.identifier, f"{a.status}/{a.msg_type}",
                      info.event if info else "", a.max_severity(), areas[:60])
    Console().print(table)


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOption = None,
) -> None:
    """Health of every configured feed: last success, last error, failures in a row, last HTTP status."""
    ctx = open_context(config)
    store = DbFeedStateStore(ctx.engine)
    with session_scope(ctx.engine) as session:
        live = live_feeds(session)
    rows = []
    for feed in ctx.config.feeds:
        s = store.get(feed.name)
        in_force = dataclasses.replace(feed_spec(feed), active=feed.name in live)
        rows.append({
            "interval_seconds": in_force.interval_in_force, "live_warnings": feed.name in live,
            "next_poll_at": s.next_poll_at.isoformat() if s.next_poll_at else None,
            "name": feed.name, "kind": feed.kind, "url": mask_secrets(feed.url), "enabled": feed.enabled,
            "healthy": s.consecutive_failures == 0 and s.last_success_at is not None,
            "last_success_at": s.last_success_at.isoformat() if s.last_success_at else None,
            "last_error": mask_secrets(s.last_error) if s.last_error else None,
            "last_error_at": s.last_error_at.isoformat() if s.last_error_at else None,
            "consecutive_failures": s.consecutive_failures, "last_status": s.last_status,
            "alerts_seen": s.alerts_seen,
        })
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title="feeds")
    for column in ("name", "kind", "health", "every", "last success", "failures", "HTTP", "alerts", "last error"):
        table.add_column(column)
    for r in rows:
        health = "ok" if r["healthy"] else ("never polled" if r["last_success_at"] is None and
                                             not r["last_error"] else "failing")
        every = f"{r['interval_seconds']:g}s" + (" (live warnings)" if r["live_warnings"] else "")
        table.add_row(r["name"], r["kind"], health, every, r["last_success_at"] or "-",
                      str(r["consecutive_failures"]), str(r["last_status"] or "-"), str(r["alerts_seen"]),
                      (r["last_error"] or "")[:80])
    Console().print(table)


@app.command("list")
def list_feeds(config: ConfigOption = None) -> None:
    """The feeds configured in config.toml."""
    cfg = load(config)
    for feed in cfg.feeds:
        typer.echo(f"{feed.name}\t{feed.kind}\tevery {feed.interval_seconds:g}s\t{mask_secrets(feed.url)}")
