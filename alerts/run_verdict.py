"""Did ``alimcast run --once`` do its job? The exit code cron and systemd see.

Why: a run whose feeds mostly failed, or whose every message was put back in the outbox (provider down,
wrong key), used to exit 0, so a timer or a monitoring check saw success while nothing reached anyone.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from alerts.feedstate import DbFeedStateStore
from alerts.pipeline import RunSummary

#: Exit code of a run that did not do its job (1 is bad input, 2 a bad config).
EXIT_RUN_FAILED = 3


@dataclass(slots=True)
class Verdict:
    code: int
    reasons: list[str]


def run_verdict(summary: RunSummary, engine: Engine, feed_names: list[str]) -> Verdict:
    """Non-zero when more than half of the feeds polled failed (their stored state has a failure in a row)
    or when messages were taken from the outbox and not one was accepted (all put back or refused)."""
    reasons: list[str] = []
    store = DbFeedStateStore(engine)
    failed = [name for name in feed_names if store.get(name).consecutive_failures > 0]
    if feed_names and len(failed) * 2 > len(feed_names):
        reasons.append(f"{len(failed)} of {len(feed_names)} feeds failed ({', '.join(failed)})")
    d = summary.dispatch
    if d.stopped or (d.accepted == 0 and (d.requeued > 0 or d.rejected > 0)):
        reasons.append(f"no message was accepted: {d.requeued} put back, {d.rejected} refused"
                       + (" (the provider refused the configuration)" if d.stopped else ""))
    return Verdict(code=EXIT_RUN_FAILED if reasons else 0, reasons=reasons)


def exit_if_failed(verdict: Verdict) -> None:
    """Print the reasons on stderr and exit with ``EXIT_RUN_FAILED`` (the summary table is already shown)."""
    if verdict.code:
        import typer

        for reason in verdict.reasons:
            typer.echo(f"error: run --once did not do its job: {reason}", err=True)
        raise typer.Exit(verdict.code)
