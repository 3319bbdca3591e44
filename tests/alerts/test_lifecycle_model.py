"""Alert threading (ingest + lifecycle) against an in-memory model of the original per-alert algorithm.

The batched :class:`alerts.lifecycle.ThreadBatch` exists for speed; what it must do is what the simple
version did alert by alert (``git show 4ae4ed0:alerts/lifecycle.py``). :class:`Model` is that simple
version without a database, so a speed change that alters behaviour shows up as a difference on a random
scenario: polls of alerts with references (to versions seen, unseen or never sent), thread keys,
duplicates, ``sent`` ties and end times around ``now``, with threads expired between polls.

Every example uses its own sender and thread keys, so one migrated SQLite file serves a whole test.
Threads are compared by creation order: the batch relies on new threads taking ids in the order it
opened them (``NEW_RANK``), which the model's numbering reproduces.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import subscribers.all_models  # noqa: F401  (every table, so the migration's metadata is complete)
from alerts.db import make_engine, upgrade
from alerts.ingest import ingest
from alerts.lifecycle import expire_threads
from alerts.models import AlertRecord, AlertReference, AlertThread
from feeds.model import Alert, Info, Reference

Identity = tuple[str, str, datetime]

T0 = datetime(2026, 5, 1, tzinfo=UTC)
KST = timezone(timedelta(hours=9))
_senders = itertools.count()


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


# -- the reference model ------------------------------------------------------------------------------------

#: Rules a mutant model can leave out (to show the comparison notices each one).
RULES = ("cancel_first", "merge", "referrers", "closed_key", "late_older", "same_bulletin", "reopen_expired",
         "same_time", "late_alert", "merge_keeps_live")


@dataclass
class MThread:
    key: str | None
    feed: str | None
    opened_at: datetime
    state: str = "active"
    current: Identity | None = None
    closed_at: datetime | None = None
    end_time: datetime | None = None


@dataclass
class MRecord:
    msg_type: str
    end_time: datetime | None
    refs: tuple[Identity, ...]
    thread: int | None = None
    keyed: bool = False


@dataclass
class Model:
    """The original per-alert threading, in memory; thread ids are list positions (creation order)."""

    without: frozenset[str] = frozenset()
    records: dict[Identity, MRecord] = field(default_factory=dict)  # in storage (id) order
    threads: list[MThread] = field(default_factory=list)

    def ingest(self, alerts: list[Alert], *, feed: str, now: datetime) -> tuple[list[Identity], int]:
        if "cancel_first" in self.without:
            ordered = sorted(alerts, key=lambda a: a.key()[2])
        else:
            ordered = sorted(alerts, key=lambda a: (a.key()[2], a.msg_type != "Cancel"))
        new: list[Identity] = []
        duplicates = 0
        for alert in ordered:
            key = alert.key()
            if key in self.records:
                duplicates += 1
                continue
            refs = tuple(dict.fromkeys(r.key() for r in alert.references))
            record = self.records[key] = MRecord(alert.msg_type, alert.end_time(), refs, keyed=bool(alert.thread_key))
            tid = self._by_references(refs)
            if tid is None:
                tid = self._by_referrers(key)
            if tid is None:
                tid = self._by_key(alert, key[2])
            if tid is None:
                self.threads.append(MThread(alert.thread_key, feed, now))
                tid = len(self.threads) - 1
            record.thread = tid
            self._advance(self.threads[tid], key, record, now)
            new.append(key)
        return new, duplicates

    def _by_references(self, refs: tuple[Identity, ...]) -> int | None:
        tids = sorted({t for r in refs if r in self.records and (t := self.records[r].thread) is not None})
        if not tids:
            return None
        keep = tids[0]
        if "merge" not in self.without:
            for other in tids[1:]:
                for record in self.records.values():
                    if record.thread == other:
                        record.thread = keep
                o, k = self.threads[other], self.threads[keep]
                if o.state == "active" and k.state != "active" and "merge_keeps_live" not in self.without:
                    k.state, k.closed_at, k.end_time, k.current = "active", None, o.end_time, o.current
                o.state = "ended"
                o.current = None
        return keep

    def _by_referrers(self, key: Identity) -> int | None:
        if "referrers" in self.without:
            return None
        tids = [r.thread for r in self.records.values() if key in r.refs and r.thread is not None]
        return min(tids, default=None)

    def _by_key(self, alert: Alert, sent: datetime) -> int | None:
        if not alert.thread_key:
            return None
        keyed = [tid for tid, t in enumerate(self.threads) if t.key == alert.thread_key]
        live = max((tid for tid in keyed if self.threads[tid].state == "active"), default=None)
        if live is not None:
            return live
        if alert.msg_type == "Alert":
            if "late_alert" in self.without:
                return None
            closed = max((tid for tid in keyed if self.threads[tid].current is not None), default=None)
            if closed is not None and self.threads[closed].current[2] >= sent:  # type: ignore[index]
                return closed
            return None
        if "closed_key" in self.without:
            return None
        return max(keyed, default=None)

    def _advance(self, thread: MThread, key: Identity, record: MRecord, now: datetime) -> None:
        current = self.records[thread.current] if thread.current is not None else None
        current_sent = thread.current[2] if thread.current is not None else None
        if current_sent is not None and current_sent > key[2] and "late_older" not in self.without:
            return  # a late older version: stored, threaded, never current
        same_bulletin = (current is not None and current.msg_type == "Cancel" and current_sent == key[2]
                         and record.msg_type == "Update" and "same_bulletin" not in self.without)
        if (record.keyed and current_sent == key[2] and not same_bulletin
                and "same_time" not in self.without):
            return  # one bulletin's other row (the other KMA channel, or the lift half of a 변경)
        thread.current = key
        if same_bulletin:
            thread.state, thread.closed_at, thread.end_time = "active", None, record.end_time
        elif record.msg_type == "Cancel":
            if thread.state != "cancelled":
                thread.state, thread.closed_at = "cancelled", now
        elif record.msg_type in ("Alert", "Update"):
            thread.end_time = record.end_time
            if (thread.state == "expired" and (record.end_time is None or record.end_time > now)
                    and "reopen_expired" not in self.without):
                thread.state, thread.closed_at = "active", None

    def expire(self, now: datetime) -> None:
        for t in self.threads:
            if t.state == "active" and t.end_time is not None and t.end_time <= now:
                t.state, t.closed_at = "expired", now


# -- scenarios ----------------------------------------------------------------------------------------------

Ref = tuple[str, int, bool]  # (identifier, sent minute, sent written in KST)


@dataclass(frozen=True)
class Spec:
    """One alert, sender-free: each example gives it its own sender and key prefix."""

    identifier: str
    minute: int
    msg_type: str = "Alert"
    key: int | None = None
    refs: tuple[Ref, ...] = ()
    end: int | None = None  # minutes from T0; None: no stated end
    kst: bool = False  # the same instant written with +09:00: still the same identity


@dataclass(frozen=True)
class Poll:
    alerts: tuple[Spec, ...]
    now: int
    expire_before: int | None = None  # run expire_threads at this minute before the poll


def _sent(minute: int, kst: bool) -> datetime:
    return at(minute).astimezone(KST) if kst else at(minute)


def build(spec: Spec, sender: str) -> Alert:
    return Alert(
        sender=sender, identifier=spec.identifier, sent=_sent(spec.minute, spec.kst), msg_type=spec.msg_type,
        references=[Reference(sender, i, _sent(m, k)) for i, m, k in spec.refs],
        thread_key=None if spec.key is None else f"{sender}/k{spec.key}",
        infos=[Info(event="풍랑", expires=None if spec.end is None else at(spec.end))],
    )


MSG_TYPES = ("Alert", "Update", "Cancel", "Update", "Alert", "Cancel", "Ack")


@st.composite
def scenarios(draw: st.DrawFn) -> list[Poll]:
    keys = st.none() | st.integers(0, draw(st.integers(2, 4)) - 1)
    identifiers = st.sampled_from("abcde"[:draw(st.integers(2, 5))])
    minute = st.integers(0, 8)  # a narrow window: ``sent`` ties are common
    any_ref = st.tuples(identifiers, minute, st.booleans())
    specs: list[Spec] = []
    size = draw(st.integers(1, 25))
    while len(specs) < size:
        shape = draw(st.integers(0, 9))
        if specs and shape == 0:
            specs.append(draw(st.sampled_from(specs)))  # the same alert again (re-poll, second feed)
            continue
        earlier = st.sampled_from([(s.identifier, s.minute, not s.kst) for s in specs]) if specs else any_ref
        sent = draw(minute) + len(specs) // 4  # later alerts tend to be newer, not always
        spec = Spec(identifier=draw(identifiers), minute=sent, msg_type=draw(st.sampled_from(MSG_TYPES)),
                    key=draw(st.sampled_from([s.key for s in specs]) | keys if specs else keys),
                    refs=tuple(draw(st.lists(earlier | any_ref, max_size=3))),
                    end=draw(st.none() | st.integers(sent - 2, sent + 15)), kst=draw(st.booleans()))
        if shape == 1 and len(specs) + 2 <= size:  # KMA level change: 해제 and 발표 in one bulletin
            cancel = Spec(draw(identifiers), sent, "Cancel", spec.key, spec.refs, kst=draw(st.booleans()))
            specs += draw(st.permutations([cancel, replace(spec, msg_type="Update")]))
        elif shape == 2 and specs:  # extended (연장) later, perhaps after it lapsed
            sent = max(s.minute for s in specs) + draw(st.integers(0, 3))
            specs.append(replace(spec, minute=sent, msg_type="Update", end=sent + draw(st.integers(5, 30))))
        else:
            specs.append(spec)
    polls = min(draw(st.integers(1, 5)), len(specs))
    cuts = sorted(draw(st.permutations(range(1, len(specs))))[:polls - 1])
    bounds = [0, *cuts, len(specs)]
    nows = sorted(draw(st.lists(st.integers(0, 25), min_size=polls, max_size=polls)))
    # the worker expires threads before each poll, at its ``now``; here sometimes not, or at another time
    return [Poll(tuple(specs[a:b]), now, draw(st.sampled_from([now, now, None]) | st.integers(0, 30)))
            for a, b, now in zip(bounds[:-1], bounds[1:], nows, strict=True)]


# -- running both and comparing ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('lifecycle') / 'model.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def snapshot_model(model: Model, reports: list[tuple[list[Identity], int]]) -> dict[str, Any]:
    return {
        "reports": reports,
        "thread_of": {key: r.thread for key, r in model.records.items()},
        "references": sorted((key, ref) for key, r in model.records.items() for ref in r.refs),
        "threads": [(t.key, t.feed, t.opened_at, t.state, t.current, t.closed_at, t.end_time)
                    for t in model.threads],
    }


def run_real(engine: Engine, sender: str, polls: list[Poll]) -> dict[str, Any]:
    with Session(engine) as session:
        watermark = session.exec(select(func.max(AlertThread.id))).one() or 0
    raw: list[tuple[list[int], int]] = []
    for n, poll in enumerate(polls):
        with Session(engine) as session:
            if poll.expire_before is not None:
                expire_threads(session, at(poll.expire_before))
            alerts = [build(s, sender) for s in poll.alerts]
            report = ingest(session, alerts, feed=f"feed{n % 2}", now=at(poll.now))
            session.commit()
        raw.append((report.new_ids, report.duplicates))
    with Session(engine) as session:
        records = list(session.exec(select(AlertRecord).where(AlertRecord.sender == sender)
                                    .order_by(col(AlertRecord.id))))
        identity = {r.id: (r.sender, r.identifier, r.sent) for r in records}
        threads = list(session.exec(select(AlertThread).where(col(AlertThread.id) > watermark)
                                    .order_by(col(AlertThread.id))))
        position = {t.id: n for n, t in enumerate(threads)}
        references = session.exec(select(AlertReference).where(col(AlertReference.alert_id).in_(identity)))
        return {
            "reports": [([identity[i] for i in ids], duplicates) for ids, duplicates in raw],
            "thread_of": {identity[r.id]: position.get(r.thread_id)  # type: ignore[arg-type]
                          for r in records},
            "references": sorted((identity[r.alert_id], (r.ref_sender, r.ref_identifier, r.ref_sent))
                                 for r in references),
            "threads": [(t.key, t.feed, t.opened_at, t.state,
                         identity.get(t.current_alert_id) if t.current_alert_id is not None else None,
                         t.closed_at, t.end_time) for t in threads],
        }


def run_model(polls: list[Poll], sender: str, without: frozenset[str] = frozenset()) -> dict[str, Any]:
    model = Model(without)
    reports = []
    for n, poll in enumerate(polls):
        if poll.expire_before is not None:
            model.expire(at(poll.expire_before))
        reports.append(model.ingest([build(s, sender) for s in poll.alerts], feed=f"feed{n % 2}",
                                    now=at(poll.now)))
    return snapshot_model(model, reports)


def assert_same(real: dict[str, Any], model: dict[str, Any]) -> None:
    for part in ("reports", "thread_of", "threads", "references"):
        assert real[part] == model[part], part


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polls=scenarios())
def test_threading_matches_the_per_alert_model(engine: Engine, polls: list[Poll]) -> None:
    sender = f"s{next(_senders)}@model.test"
    assert_same(run_real(engine, sender, polls), run_model(polls, sender))


# -- each rule matters: a model without it disagrees with ingest on a scenario made for it ------------------

S = Spec
RULE_SCENARIOS: list[tuple[str, list[Poll]]] = [
    # same sent: the Cancel goes first, so the Update continues the warning
    ("cancel_first", [Poll((S("u", 1, "Update", key=0), S("c", 1, "Cancel", key=0)), 0,),
                      Poll((S("a", 0, "Alert", key=0),), 0)]),
    # two threads proven one by an Update referencing both
    ("merge", [Poll((S("a", 0), S("b", 0)), 0),
               Poll((S("u", 1, "Update", refs=(("a", 0, False), ("b", 0, True))),), 1)]),
    # the original arrives after the update that references it
    ("referrers", [Poll((S("u", 2, "Update", refs=(("a", 0, False),)),), 2), Poll((S("a", 0),), 3)]),
    # a Cancel for a warning that already expired still joins its thread
    ("closed_key", [Poll((S("a", 0, key=1, end=5),), 0),
                    Poll((S("c", 9, "Cancel", key=1),), 9, expire_before=6)]),
    # an older version arriving late does not become current
    ("late_older", [Poll((S("b", 5, "Update", key=0, end=30),), 5), Poll((S("a", 0, key=0, end=20),), 6)]),
    # KMA: lift and re-issue in one bulletin
    ("same_bulletin", [Poll((S("a", 0, key=0),), 0),
                       Poll((S("c", 3, "Cancel", key=0), S("u", 3, "Update", key=0)), 3)]),
    # extended (연장) after it lapsed
    ("reopen_expired", [Poll((S("a", 0, key=0, end=5),), 0), Poll((S("u", 8, "Update", key=0, end=30),), 8,
                                                                  expire_before=6)]),
    # a 변경 split over two polls, 변경발표 first: the 변경해제 row must not lift the new level
    ("same_time", [Poll((S("a", 0, key=0),), 0), Poll((S("u", 3, "Update", key=0),), 3),
                   Poll((S("c", 3, "Cancel", key=0),), 4)]),
    # the warning's own older 발표 row read after its 해제 joins the closed thread
    ("late_alert", [Poll((S("a", 0, key=0),), 0), Poll((S("c", 5, "Cancel", key=0),), 5),
                    Poll((S("a2", 1, key=0),), 6)]),
    # an escalation referencing a lifted thread and a live one continues the live one
    ("merge_keeps_live", [Poll((S("a", 0), S("b", 1)), 1),
                          Poll((S("ca", 2, "Cancel", refs=(("a", 0, False),)),), 2),
                          Poll((S("u", 3, "Update", refs=(("a", 0, False), ("b", 1, False))),), 3)]),
]


@pytest.mark.parametrize(("rule", "polls"), RULE_SCENARIOS, ids=[r for r, _ in RULE_SCENARIOS])
def test_each_rule_is_observed(engine: Engine, rule: str, polls: list[Poll]) -> None:
    sender = f"s{next(_senders)}@rule.test"
    real = run_real(engine, sender, polls)
    assert_same(real, run_model(polls, sender))
    with pytest.raises(AssertionError):
        assert_same(real, run_model(polls, sender, frozenset({rule})))


def test_every_rule_has_a_scenario() -> None:
    assert sorted(r for r, _ in RULE_SCENARIOS) == sorted(RULES)

