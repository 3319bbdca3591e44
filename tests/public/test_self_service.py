"""A manage link's actions: ending a subscription withdraws what is queued at once; changing choices replaces
zones and preferences and keeps vessels; the migration goes down and up again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from alerts.db import make_engine, session_scope, upgrade
from alerts.models import AlertRecord, AlertThread, Delivery
from alerts.public.self_service import NewChoices, change_choices, unsubscribe_now, vessels_of
from subscribers.store import add_subscriber, zone_codes_of
from subscribers.vessels import add_vessel

NOW = datetime(2026, 12, 4, 5, 0, tzinfo=UTC)


def _queued(session, person_id: int) -> Delivery:  # type: ignore[no-untyped-def]
    thread = AlertThread(opened_at=NOW)
    session.add(thread)
    session.flush()
    alert = AlertRecord(sender="s", identifier=f"i{person_id}", sent=NOW, status="Actual", msg_type="Alert",
                        scope="Public", thread_id=thread.id, body={})
    session.add(alert)
    session.flush()
    row = Delivery(alert_id=alert.id, thread_id=thread.id, subscriber_id=person_id, text="x")  # type: ignore[arg-type]
    session.add(row)
    session.flush()
    return row


def test_unsubscribing_withdraws_what_is_queued(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine)
    with session_scope(engine) as s:
        person = add_subscriber(s, "010-8000-0001", ["S1251100"])
        other = add_subscriber(s, "010-8000-0002", ["S1251100"])
        mine, theirs = _queued(s, person.id), _queued(s, other.id)  # type: ignore[arg-type]
        assert unsubscribe_now(s, person, now=NOW) == 1
        assert unsubscribe_now(s, person, now=NOW) == 0  # twice is once
        s.refresh(mine)
        s.refresh(theirs)
        assert (mine.status, theirs.status) == ("suppressed", "queued")
        assert person.status == "unsubscribed" and person.unsubscribed_at == NOW
        with pytest.raises(ValueError, match="unsubscribed"):
            change_choices(s, person, NewChoices(zones=["S1251100"]), now=NOW)
    engine.dispose()


def test_changing_choices_replaces_zones_keeps_vessels(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine)
    with session_scope(engine) as s:
        person = add_subscriber(s, "010-8000-0003", ["S1251100", "S1251200"], quiet_hours="22:00-06:00")
        add_vessel(s, 440000009, subscribers=[person.id])  # type: ignore[list-item]
        changed = change_choices(s, person, NewChoices(zones=["서해중부먼바다"], land_region="L1100100",
                                                       min_severity="severe", language="en", quiet_hours=""), now=NOW)
        assert zone_codes_of(s, changed.id) == ["L1100100", "S1252010", "S1252020"]  # type: ignore[arg-type]
        assert (changed.min_severity, changed.language, changed.quiet_start_min) == ("Severe", "en", None)
        assert vessels_of(s, changed.id) == [440000009]  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            change_choices(s, changed, NewChoices(zones=[]), now=NOW)
        with pytest.raises(ValueError):
            change_choices(s, changed, NewChoices(zones=["S1251100"], min_severity="loud"), now=NOW)
    engine.dispose()


def test_migration_0008_down_and_up(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with session_scope(engine) as s:
        person = add_subscriber(s, "010-8000-0004", ["S1251100"])
        row = _queued(s, person.id)  # type: ignore[arg-type]
        s.add(Delivery(alert_id=row.alert_id, thread_id=row.thread_id, subscriber_id=person.id,  # type: ignore[arg-type]
                       kind="reminder", reminder_seq=1, text="again"))
    from alembic import command

    from alerts.db import alembic_config

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0007")
    upgrade(engine)
    with session_scope(engine) as s:
        assert [(d.kind, d.reminder_seq) for d in s.exec(select(Delivery))] == [("alert", 0)]
    engine.dispose()
