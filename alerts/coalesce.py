"""Storms: several new warnings for one person within a short window go as one message listing them.

Five zone warnings at once, or a typhoon crossing several seas, would otherwise reach a skipper as a burst of
near-identical messages (each one costed). Modelled on Prometheus Alertmanager's grouping, with the group
being *one person*:

* ``group_wait`` (``[coalesce] group_wait_seconds``): a person's first non-urgent new warning waits this long
  for others; every new warning for that person arriving meanwhile joins the same message. It is the only
  wait: there is no ``group_interval`` (a warning arriving after the group went starts a new group and waits
  ``group_wait`` again), because a warning must not wait on an earlier message's schedule.
* ``max_alerts``: a full group goes as it is at its time; the next warning starts a new group.
* An Extreme or Immediate warning never waits and never joins a group; updates and 해제 are never grouped
  (they are follow-ups of one warning, with their own templates).

The outbox keeps one row per (alert, person), so every guarantee of the engine stays per warning. One row
of a group (its *head*, the oldest) carries the grouped message as its text and template (``[templates.group]``);
the others are ``carried`` with ``carried_by`` = the head. A carried row counts as told exactly when its head
does (:func:`notified_carried`), so follow-ups reach everyone the grouped message reached.

A grouped message never carries a warning that has ended: :func:`regroup` (run at every matching pass and
by the dispatcher just before a head goes) takes ended (cancelled, superseded, expired) warnings out of
groups not yet sent, moves the head to the next live warning when the head itself ended, and renders the
message again (a group left with one warning goes as that warning's own message).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from alerts.config import Config
from alerts.delivery.sms import build_fallback
from alerts.models import NOTIFIED_STATUSES, AlertRecord, AlertThread, Delivery
from alerts.render import group_parameters, parameters_for, render
from feeds.model import Alert
from subscribers import zones
from subscribers.models import Subscriber

log = logging.getLogger("alimcast.coalesce")

#: A group whose time is this close is no longer joined: a dispatcher may be about to claim it.
JOIN_MARGIN = timedelta(seconds=1)
CHUNK = 500


def zone_name(code: str) -> str | None:
    try:
        return zones.name(code)
    except Exception:  # noqa: BLE001 - unknown code: the area description is used instead
        return None


def urgent(alert: Alert) -> bool:
    """Extreme or Immediate: never waits for company."""
    return alert.max_severity() == "Extreme" or alert.max_urgency() == "Immediate"


def never_grouped(config: Config, alert: Alert) -> bool:
    """Whether :func:`gather` leaves this warning's rows alone (they go as they are, at once)."""
    return not config.coalesce.enabled or urgent(alert) or "group" not in config.templates


def gather(session: Session, config: Config, record: AlertRecord, alert: Alert, now: datetime,
           names: Callable[[str], str | None] = zone_name) -> int:
    """After a version's rows were queued: each new-warning row joins its person's open group (re-rendered),
    or opens one that goes at ``now + group_wait``. Returns how many rows joined a group."""
    settings = config.coalesce
    if never_grouped(config, alert):
        return 0
    fresh = list(session.exec(select(Delivery.id, Delivery.subscriber_id).where(
        Delivery.alert_id == record.id, Delivery.kind == "alert", Delivery.status == "queued",
        col(Delivery.next_attempt_at).is_(None), col(Delivery.carried_by).is_(None))))
    if not fresh:
        return 0
    heads: dict[int, Delivery] = {}
    # a head's hold is its next_attempt_at too: the (status, next_attempt_at) index finds open groups. On
    # PostgreSQL a head a dispatcher is claiming is skipped (locked): a warning only joins a message that
    # has not been taken for sending, so "carried" always means "listed in the message that went".
    open_heads = select(Delivery).where(
        Delivery.status == "queued", col(Delivery.next_attempt_at) > now + JOIN_MARGIN,
        col(Delivery.grouped_until) > now + JOIN_MARGIN, Delivery.alert_id != record.id).order_by(col(Delivery.id))
    for head in session.exec(_locked(session, open_heads)):
        heads.setdefault(head.subscriber_id, head)
    sizes = _sizes(session, [h.id for h in heads.values() if h.id is not None])
    joined: list[tuple[int, int]] = []  # (row id, head id)
    opened: list[int] = []
    for row_id, subscriber_id in fresh:
        head = heads.get(subscriber_id)
        if head is not None and head.id is not None and sizes.get(head.id, 1) < settings.max_alerts:
            joined.append((row_id, head.id))  # type: ignore[arg-type]
            sizes[head.id] = sizes.get(head.id, 1) + 1
        else:
            opened.append(row_id)  # type: ignore[arg-type]
    until = now + timedelta(seconds=settings.group_wait_seconds)
    for chunk in _chunks(opened):
        session.execute(update(Delivery).where(col(Delivery.id).in_(chunk))
                        .values(next_attempt_at=until, grouped_until=until))
    for row_id, head_id in joined:
        session.execute(update(Delivery).where(Delivery.id == row_id)
                        .values(status="carried", carried_by=head_id))
    if joined:
        session.flush()
        _render_heads(session, config, sorted({h for _, h in joined}), names)
    return len(joined)


def regroup(session: Session, config: Config, now: datetime, heads: Iterable[int] | None = None,
            names: Callable[[str], str | None] = zone_name) -> list[int]:
    """Take ended warnings out of groups not yet sent (all of them, or those of ``heads``); returns the ids
    of the heads that changed (their message was rendered again, or moved to another row)."""
    stmt = select(Delivery).where(Delivery.status == "carried")
    wanted = None if heads is None else list(heads)
    if wanted is not None:
        if not wanted:
            return []
        stmt = stmt.where(col(Delivery.carried_by).in_(wanted))
    carried = list(session.exec(stmt.order_by(col(Delivery.id))))
    if not carried:
        return []
    head_rows = {h.id: h for h in _rows(session, {c.carried_by for c in carried if c.carried_by is not None},
                                        lock=True)}
    groups: dict[int, list[Delivery]] = {}
    for row in carried:
        head = head_rows.get(row.carried_by)
        if head is not None and head.status in ("queued", "suppressed"):  # not sent yet (or never will be)
            groups.setdefault(head.id, []).append(row)  # type: ignore[arg-type]
    if not groups:
        return []
    rows = [r for members in groups.values() for r in members] + [head_rows[h] for h in groups]
    records = {a.id: a for a in _alerts(session, {r.alert_id for r in rows})}
    threads = {t.id: t for t in _threads(session, {r.thread_id for r in rows})}
    changed: list[int] = []
    for head_id, members in groups.items():
        head = head_rows[head_id]
        group = ([head] if head.status == "queued" else []) + members
        live = []
        for row in group:
            why = ended(records.get(row.alert_id), threads.get(row.thread_id), now)
            if why is None:
                live.append(row)
            else:
                row.status, row.last_error, row.finished_at = "suppressed", f"{why} (grouped)", now
                session.add(row)
        if len(live) == len(group) and head.status == "queued":
            continue
        if not live:
            continue
        other = _open_head(session, head.subscriber_id, now, exclude={r.id for r in group})
        if other is not None and _sizes(session, [other.id])[other.id] + len(live) <= config.coalesce.max_alerts:
            # the person has another group still gathering (e.g. opened by the new version of a warning that
            # superseded this head): the survivors join it rather than go as a second message
            new_head = other
        else:
            new_head = min(live, key=lambda r: r.id or 0)
            when = head.grouped_until or now
            new_head.status, new_head.carried_by = "queued", None
            new_head.grouped_until = new_head.next_attempt_at = max(when, now)
        session.add(new_head)
        for row in live:
            if row is not new_head:
                row.status, row.carried_by = "carried", new_head.id
                session.add(row)
        changed.append(new_head.id)  # type: ignore[arg-type]
        log.info("group of delivery %s: %d warning(s) ended before it went; %d left, now carried by %s",
                 head_id, len(group) - len(live), len(live), new_head.id)
    if changed:
        session.flush()
        _render_heads(session, config, changed, names)
    return changed


def _open_head(session: Session, subscriber_id: int, now: datetime, exclude: set[int | None]) -> Delivery | None:
    for head in session.exec(select(Delivery).where(
            Delivery.subscriber_id == subscriber_id, Delivery.status == "queued",
            col(Delivery.grouped_until) > now + JOIN_MARGIN).order_by(col(Delivery.id))):
        if head.id not in exclude:
            return head
    return None


def ended(record: AlertRecord | None, thread: AlertThread | None, now: datetime) -> str | None:
    """Why a new warning must no longer go out (the dispatcher's rule for a new warning), or None."""
    if record is None or thread is None:
        return "alert no longer stored"
    if thread.state != "active":
        return f"warning {thread.state} before it was sent"
    if thread.current_alert_id != record.id:
        return "superseded by a newer version before it was sent"
    if record.end_time is not None and record.end_time <= now:
        return "expired before it was sent"
    return None


def heads_with_ended_members(session: Session, rows: Sequence[Delivery], now: datetime) -> set[int]:
    """Of ``rows`` about to be sent, the heads whose group carries a warning that has ended since it was
    formed (a warning expiring between the matching pass and the send)."""
    ids = [r.id for r in rows if r.id is not None and r.grouped_until is not None]  # heads only: no query otherwise
    if not ids:
        return set()
    carried = list(session.exec(select(Delivery).where(Delivery.status == "carried",
                                                       col(Delivery.carried_by).in_(ids))))
    if not carried:
        return set()
    records = {a.id: a for a in _alerts(session, {r.alert_id for r in carried})}
    threads = {t.id: t for t in _threads(session, {r.thread_id for r in carried})}
    return {r.carried_by for r in carried  # type: ignore[misc]
            if ended(records.get(r.alert_id), threads.get(r.thread_id), now) is not None}


def notified_carried(session: Session, thread_id: int) -> set[int]:
    """People told about the thread by another row's grouped message (its head was sent)."""
    head = Delivery.__table__.alias("head")  # type: ignore[attr-defined]
    rows = session.execute(
        select(Delivery.subscriber_id).join(head, head.c.id == Delivery.carried_by)
        .where(Delivery.thread_id == thread_id, Delivery.status == "carried",
               head.c.status.in_(NOTIFIED_STATUSES)))
    return {sid for (sid,) in rows}


def _render_heads(session: Session, config: Config, head_ids: Sequence[int],
                  names: Callable[[str], str | None]) -> None:
    """Each head's message again, from its group's warnings in the person's language."""
    heads = _rows(session, set(head_ids))
    members: dict[int, list[Delivery]] = {h.id: [h] for h in heads if h.id is not None}
    for chunk in _chunks(list(members)):
        for row in session.exec(select(Delivery).where(Delivery.status == "carried",
                                                       col(Delivery.carried_by).in_(chunk))):
            members[row.carried_by].append(row)  # type: ignore[index]
    languages = dict(session.exec(select(Subscriber.id, Subscriber.language).where(
        col(Subscriber.id).in_(list({h.subscriber_id for h in heads})))).all())
    records = {a.id: a for a in _alerts(session, {r.alert_id for group in members.values() for r in group})}
    alerts: dict[int, Alert] = {}
    params: dict[tuple[int, str], dict[str, str]] = {}
    texts: dict[tuple[tuple[int, ...], str], tuple[str, dict[str, str], str, str | None]] = {}
    for head in heads:
        group = sorted(members[head.id], key=lambda r: (records[r.alert_id].sent, r.id))  # type: ignore[index]
        key = (tuple(r.alert_id for r in group), languages.get(head.subscriber_id) or "ko")
        if key not in texts:
            kind = "group" if len(group) > 1 else "alert"
            language, template = config.templates[kind].for_language(key[1])
            each = []
            for aid in key[0]:
                if aid not in alerts:
                    alerts[aid] = Alert.from_json(records[aid].body)
                if (aid, language) not in params:
                    params[(aid, language)] = parameters_for(alerts[aid], "alert", language, config.zone_value_names,
                                                             names, config.sender_name)
                each.append(params[(aid, language)])
            values = group_parameters(each) if kind == "group" else each[0]
            out = render(template.text, values, language=language,
                         about=", ".join(records[a].identifier for a in key[0]))
            fallback, _ = build_fallback(out.text)
            texts[key] = (out.text, out.parameters, template.code, fallback.kind)
        head.text, head.params, head.template_code, head.fallback_kind = texts[key]
        session.add(head)


def _sizes(session: Session, head_ids: list[int]) -> dict[int, int]:
    sizes = dict.fromkeys(head_ids, 1)
    for chunk in _chunks(head_ids):
        for (head_id,) in session.execute(select(Delivery.carried_by).where(
                Delivery.status == "carried", col(Delivery.carried_by).in_(chunk))):
            sizes[head_id] += 1
    return sizes


def _rows(session: Session, ids: set[int], *, lock: bool = False) -> list[Delivery]:
    """``lock``: on PostgreSQL, rows a dispatcher holds are left out (a head being claimed is not touched)."""
    out: list[Delivery] = []
    for chunk in _chunks(sorted(ids)):
        stmt = select(Delivery).where(col(Delivery.id).in_(chunk))
        out.extend(session.exec(_locked(session, stmt) if lock else stmt))
    return out


def _locked(session: Session, stmt: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt


def _alerts(session: Session, ids: set[int]) -> list[AlertRecord]:
    out: list[AlertRecord] = []
    for chunk in _chunks(sorted(ids)):
        out.extend(session.exec(select(AlertRecord).where(col(AlertRecord.id).in_(chunk))))
    return out


def _threads(session: Session, ids: set[int]) -> list[AlertThread]:
    out: list[AlertThread] = []
    for chunk in _chunks(sorted(ids)):
        out.extend(session.exec(select(AlertThread).where(col(AlertThread.id).in_(chunk))))
    return out


def _chunks(items: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]
