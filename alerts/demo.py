"""The demo must never reach a real provider, and what it created can be removed in one command.

Why: with the shipped config and only ``kind = "nhn"`` changed, alimcast sent the invented sample warning
to the four invented demo numbers (real numbers of somebody). ``alimcast run`` refuses to start with a real
provider while ``[[demo.subscribers]]`` or a ``bundled:`` sample feed is configured, naming both, unless
the operator writes ``[demo] allow_real_provider = true``. People created by the demo have
``consent_source = "demo"``; ``alimcast subscribers remove-demo`` unsubscribes all of them.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from alerts.config import Config
from subscribers import store
from subscribers.models import Subscriber

DEMO_SOURCE = "demo"


def demo_conflicts(config: Config) -> list[str]:
    """What of the demo is configured alongside a real provider (empty when safe or explicitly allowed)."""
    if config.provider.kind == "dryrun":
        return []
    demo = config.raw.get("demo", {})
    if isinstance(demo, dict) and demo.get("allow_real_provider") is True:
        return []
    found: list[str] = []
    if config.demo_subscribers:
        found.append(f"[[demo.subscribers]] ({len(config.demo_subscribers)} demo people)")
    bundled = [f.name for f in config.feeds if f.enabled and f.url.startswith("bundled:")]
    if bundled:
        found.append(f"bundled sample feed {', '.join(bundled)}")
    return found


def demo_refusal(config: Config) -> str | None:
    """One line for the operator, or None when the run may start."""
    found = demo_conflicts(config)
    if not found:
        return None
    return (f"[provider] kind {config.provider.kind!r} is a real provider, but the demo is configured: "
            f"{' and '.join(found)}; remove them (and run `alimcast subscribers remove-demo`), "
            "or set [demo] allow_real_provider = true")


def remove_demo_people(session: Session) -> int:
    """Unsubscribe everyone the demo created (rows kept, as for any unsubscription: outbox rows refer to
    them); returns how many were still subscribed."""
    people = session.exec(select(Subscriber).where(col(Subscriber.consent_source) == DEMO_SOURCE,
                                                   col(Subscriber.status) != "unsubscribed")).all()
    for person in people:
        store.remove(session, person.phone)
    return len(people)
