"""Threads: the original warning, its updates and its cancel, followed as one thing.

Public aggregators send two live versions of one warning, re-publish an alert on its Cancel, or show a
cancelled warning as merely expired. Here every stored alert joins exactly one thread:

* CAP ``references`` name earlier versions: the alert joins their thread (threads are merged when an
  Update references versions that had been threaded apart).
* An original arriving after an update that references it joins the update's thread.
* Sources without references (KMA rows, NGA warnings) give ``thread_key``; the alert joins the live
  thread with that key. A level change (대치, 변경) is an Update in the same thread, 해제 a Cancel.
* The newest version (by ``sent``) is the thread's current alert; an older version arriving late is
  stored but never sent.
* Cancel closes the thread (state ``cancelled``); an end time passing closes it as ``expired``; a
  warning that vanishes from a "what is active now" snapshot closes it as ``ended``.

A poll brings hundreds of alerts and asking the database three questions per alert made ingest crawl
(~500 alerts/s on SQLite). :class:`ThreadBatch` asks each question once for the whole batch, applies the
rules above alert by alert in memory (each alert seeing the effect of the ones before it, exactly as if
they had been written one at a time) and writes the outcome back in a few bulk statements.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from alerts.db import sqlite_datetime
from alerts.models import AlertRecord, AlertReference, AlertThread, Delivery
from alerts.sqlutil import driver_rows
from feeds.model import Alert

Identity = tuple[str, str, datetime]

# The hot paths use Core statements on the tables: ORM-enabled queries cost several times more per row.
_ALERT_TABLE: Table = AlertRecord.__table__  # type: ignore[attr-defined]
_THREAD_TABLE: Table = AlertThread.__table__  # type: ignore[attr-defined]
_REFERENCE_TABLE: Table = AlertReference.__table__  # type: ignore[attr-defined]
_ALERT, _THREAD, _REFERENCE = _ALERT_TABLE.c, _THREAD_TABLE.c, _REFERENCE_TABLE.c

#: Keys or ids per ``IN (...)`` list.
IN_CHUNK = 500
#: Threads created in a batch have no id until written, but they sort after every stored thread (ids only
#: grow), in creation order: their rank is this offset plus their creation number.
NEW_RANK = 1 << 62


@dataclass(frozen=True, slots=True)
class Version:
    """What the lifecycle needs of one stored alert: its row id, identity, type and times."""

    id: int
    key: Identity
    msg_type: str
    end_time: datetime | None

    @property
    def sent(self) -> datetime:
        return self.key[2]


@dataclass(eq=False, slots=True)
class _Member:
    """A stored alert's place in a thread. A merge moves every member of the merged thread, as the
    ``UPDATE alert SET thread_id`` in the database does; an alert threaded later into the merged-away
    thread (a key lookup can return it) stays there, as it would in the database."""

    rank: int


@dataclass(eq=False, slots=True)
class _Node:
    """One thread as the batch sees it (a plain object: ORM instances cost ~100 us each to make and
    are written back one UPDATE at a time), with its place in id order and its current version."""

    rank: int
    id: int | None
    key: str | None
    state: str = "active"
    current_alert_id: int | None = None
    closed_at: datetime | None = None
    end_time: datetime | None = None
    #: (sent, msg_type) of the current alert: all that deciding the next version's effect needs
    current: tuple[datetime, str] | None = None
    #: where a new thread is opened (stored threads are not read for it)
    feed: str | None = None
    opened_at: datetime | None = None
    #: (state, current_alert_id, closed_at, end_time) as stored; None for a new thread
    stored: tuple[Any, ...] | None = None

    def mutable(self) -> tuple[Any, ...]:
        return (self.state, self.current_alert_id, self.closed_at, self.end_time)


@dataclass(slots=True)
class ThreadBatch:
    """Threads many newly stored alerts with a handful of queries.

    Use: :meth:`prefetch` with every alert of the batch, then :meth:`assign` in processing order (oldest
    first), then :meth:`write`. Until :meth:`write`, nothing but thread merges touches the database.
    """

    session: Session
    feed: str | None
    now: datetime
    _nodes: dict[int, _Node] = field(default_factory=dict)
    _new: list[_Node] = field(default_factory=list)
    #: thread rank -> the members known to the batch (for merges)
    _members: dict[int, list[_Member]] = field(default_factory=dict)
    #: identity of a stored alert -> its membership (referenced alerts, and this batch's alerts)
    _thread_of: dict[Identity, _Member] = field(default_factory=dict)
    #: identity -> memberships of the alerts that reference it
    _referrers: dict[Identity, list[_Member]] = field(default_factory=dict)
    #: thread key -> ranks of the candidate threads with that key
    _by_key: dict[str, list[int]] = field(default_factory=dict)
    _assigned: list[tuple[int, _Member]] = field(default_factory=list)  # (record id, membership)
    _references: list[tuple[int, str, str, datetime]] = field(default_factory=list)  # (alert id, *target)

    # -- loading -------------------------------------------------------------------------------------------

    def prefetch(self, batch: Sequence[tuple[Version, Alert]],
                 stored: Mapping[Identity, int | None] | None = None) -> None:
        """Load, in bulk, every stored thread the batch's alerts could join.

        ``stored`` may carry what :func:`stored_threads` said about the referenced identities before the
        batch was stored (ingest asks once for the batch's own identities and the ones they reference).
        """
        self.session.flush()  # the lookups are Core statements: they do not autoflush
        referenced = {ref.key() for _, alert in batch for ref in alert.references}
        if stored is None:
            stored = stored_threads(self.session, referenced)
        wanted: set[int] = set()
        for key in referenced:
            thread_id = stored.get(key)
            if thread_id is not None:
                self._thread_of[key] = self._member(thread_id)
                wanted.add(thread_id)
        for target, thread_id in _referrer_threads(self.session, {version.key for version, _ in batch}):
            self._referrers.setdefault(target, []).append(self._member(thread_id))
            wanted.add(thread_id)
        t = _THREAD
        for chunk in _chunks(sorted({a.thread_key for _, a in batch if a.thread_key}), IN_CHUNK):
            # what a key lookup can return: every active thread with the key, and the newest of any state
            newest = core_select(func.max(t.id)).where(t.key.in_(chunk)).group_by(t.key)
            self._load_where(t.key.in_(chunk) & ((t.state == "active") | t.id.in_(newest)))
        for chunk in _chunks(sorted(wanted - self._nodes.keys()), IN_CHUNK):
            self._load_where(t.id.in_(chunk))

    def _load_where(self, condition: Any) -> None:
        """Threads with their current version, in one query (only the columns the rules read: every
        datetime column costs a parse per row)."""
        t, a = _THREAD, _ALERT
        stmt = (core_select(t.id, t.key, t.state, t.current_alert_id, t.closed_at, t.end_time, a.sent, a.msg_type)
                .select_from(_THREAD_TABLE.outerjoin(_ALERT_TABLE, a.id == t.current_alert_id))
                .where(condition))
        for row in self.session.execute(stmt):
            if row[0] in self._nodes:
                continue
            node = _Node(row[0], *row[:6])
            node.stored = node.mutable()
            if node.current_alert_id is not None and row[6] is not None:
                node.current = (row[6], row[7])
            self._add(node)

    def _member(self, rank: int) -> _Member:
        member = _Member(rank)
        self._members.setdefault(rank, []).append(member)
        return member

    def _add(self, node: _Node) -> None:
        self._nodes[node.rank] = node
        if node.key is not None:
            self._by_key.setdefault(node.key, []).append(node.rank)

    # -- threading -----------------------------------------------------------------------------------------

    def assign(self, version: Version, alert: Alert) -> None:
        """Thread one stored alert (alerts of a batch go oldest first)."""
        references = list(dict.fromkeys(ref.key() for ref in alert.references))
        node = (self._by_references(references) or self._by_referrers(version.key)
                or self._by_thread_key(alert, version.key[2]))
        if node is None:
            node = _Node(NEW_RANK + len(self._new), None, alert.thread_key, feed=self.feed, opened_at=self.now)
            self._new.append(node)
            self._add(node)
        member = self._member(node.rank)
        self._thread_of[version.key] = member
        self._assigned.append((version.id, member))
        for ref in references:
            self._references.append((version.id, *ref))
            self._referrers.setdefault(ref, []).append(member)
        self._advance(node, version, alert.msg_type, keyed=bool(alert.thread_key))

    def _by_references(self, references: list[Identity]) -> _Node | None:
        ranks = sorted({member.rank for ref in references if (member := self._thread_of.get(ref)) is not None})
        if not ranks:
            return None
        for other in ranks[1:]:
            self._merge(keep=ranks[0], other=other)
        return self._nodes[ranks[0]]

    def _merge(self, *, keep: int, other: int) -> None:
        """An Update that references two threads proves they are one warning."""
        if other < NEW_RANK:  # a stored thread: its stored alerts and its deliveries move now
            self.session.execute(update(AlertRecord).where(col(AlertRecord.thread_id) == other)
                                 .values(thread_id=keep))
            self.session.execute(update(Delivery).where(col(Delivery.thread_id) == other).values(thread_id=keep))
        moved = self._members.pop(other, [])
        for member in moved:
            member.rank = keep
        self._members.setdefault(keep, []).extend(moved)
        node, kept = self._nodes[other], self._nodes[keep]
        if node.state == "active" and kept.state != "active":
            # the warning is still live in the thread being merged: the kept one carries it on (an
            # escalation merged into a thread lifted earlier must still go out)
            kept.state, kept.closed_at, kept.end_time = "active", None, node.end_time
            kept.current_alert_id, kept.current = node.current_alert_id, node.current
        node.state = "ended"
        node.current_alert_id = None
        node.current = None

    def _by_referrers(self, key: Identity) -> _Node | None:
        """An original arriving after an update that references it joins the update's thread."""
        members = self._referrers.get(key)
        return self._nodes[min(member.rank for member in members)] if members else None

    def _by_thread_key(self, alert: Alert, sent: datetime) -> _Node | None:
        if not alert.thread_key:
            return None
        ranks = self._by_key.get(alert.thread_key, [])
        live = max((rank for rank in ranks if self._nodes[rank].state == "active"), default=None)
        if live is not None:
            return self._nodes[live]
        if alert.msg_type == "Alert":
            # A 발표 no newer than what closed the last thread with this key is that warning's own late row
            # (a lagging snapshot, a page read late): it joins as an older version, it does not reopen it.
            closed = max((rank for rank in ranks if self._nodes[rank].current is not None), default=None)
            if closed is not None and self._nodes[closed].current[0] >= sent:  # type: ignore[index]
                return self._nodes[closed]
            return None
        # An Update or Cancel whose warning already closed (e.g. expired) still belongs to it: those told
        # about the warning must hear that it was lifted.
        return self._nodes[max(ranks)] if ranks else None

    def _advance(self, node: _Node, version: Version, msg_type: str, *, keyed: bool) -> None:
        thread, current = node, node.current
        if current is not None and current[0] > version.sent:
            return  # a late older version: stored, threaded, never current
        replaced_in_same_bulletin = (current is not None and current[1] == "Cancel"
                                     and current[0] == version.sent and msg_type == "Update")
        if keyed and current is not None and current[0] == version.sent and not replaced_in_same_bulletin:
            # Source-keyed (KMA) rows of one bulletin: the same 발표 through the other KMA channel, or the
            # 변경해제 half of a 변경 whose 변경발표 came first. Stored and threaded, never current: it must
            # neither go out twice nor lift the new level.
            return
        thread.current_alert_id = version.id
        node.current = (version.sent, msg_type)
        if replaced_in_same_bulletin:
            # KMA lifts the old level and issues the new one in one bulletin (변경해제 + 변경발표): the
            # warning goes on at the new level in the same thread.
            thread.state = "active"
            thread.closed_at = None
            thread.end_time = version.end_time
        elif msg_type == "Cancel":
            if thread.state != "cancelled":
                thread.state = "cancelled"
                thread.closed_at = self.now
        elif msg_type in ("Alert", "Update"):
            thread.end_time = version.end_time
            if thread.state == "expired" and (version.end_time is None or version.end_time > self.now):
                thread.state = "active"  # extended (연장) after it had lapsed
                thread.closed_at = None

    # -- writing -------------------------------------------------------------------------------------------

    def write(self) -> dict[int, int]:
        """New threads, changed threads, each alert's thread and its references, in bulk.

        Returns record id -> thread id.
        """
        self._insert_new_threads()
        self._update_changed_threads()
        thread_of = {rid: self._row_id(member.rank) for rid, member in self._assigned}
        self._set_record_threads(thread_of)
        self._insert_references()
        self._assigned.clear()
        self._references.clear()
        self._new.clear()
        return thread_of

    def _set_record_threads(self, thread_of: dict[int, int]) -> None:
        if thread_of:
            set_record_threads(self.session.connection(), list(thread_of.items()))

    def _insert_references(self) -> None:
        if self._references:
            insert_references(self.session.connection(), self._references)

    def _insert_new_threads(self) -> None:
        """One multi-row INSERT for the new threads.

        Each row is matched to its id through its current alert, unique to it (an alert is current in one
        thread only). ``sort_by_parameter_order`` would match by position, but SQLAlchemy can only honour it
        on SQLite by inserting row by row. A new thread without a current alert was merged away and holds
        no alert: nothing refers to its id, so it is simply inserted.
        """
        if not self._new:
            return
        by_current = {n.current_alert_id: n for n in self._new if n.current_alert_id is not None}
        for row_id, current in insert_threads(self.session.connection(), [
                (n.key, n.feed, n.opened_at, n.state, n.current_alert_id, n.closed_at, n.end_time)
                for n in self._new]):
            node = by_current.get(current)
            if node is not None:
                node.id = row_id
                node.stored = node.mutable()

    def _update_changed_threads(self) -> None:
        """One executemany UPDATE; thread objects the session already holds are given the same values, so
        that code reading them later in this transaction (fan-out) does not act on a stale state."""
        changed = [n for n in self._nodes.values() if n.id is not None and n.stored != n.mutable()]
        if not changed:
            return
        update_threads(self.session.connection(),
                       [(n.id, n.state, n.current_alert_id, n.closed_at, n.end_time) for n in changed])
        for node in changed:
            node.stored = node.mutable()
            held = self.session.identity_map.get(self.session.identity_key(AlertThread, node.id))
            if held is not None:
                for name in ("state", "current_alert_id", "closed_at", "end_time"):
                    set_committed_value(held, name, getattr(node, name))

    def _row_id(self, rank: int) -> int:
        row_id = self._nodes[rank].id
        assert row_id is not None, "threads are written before the alerts that point to them"
        return row_id


#: ``alert_thread`` columns written by :func:`insert_threads`, in its row order.
_THREAD_COLUMNS = ("key", "feed", "opened_at", "state", "current_alert_id", "closed_at", "end_time")


def insert_threads(connection: Connection, rows: Sequence[tuple[Any, ...]], *,
                   direct: bool | None = None) -> list[tuple[int, int | None]]:
    """New ``alert_thread`` rows (in :data:`_THREAD_COLUMNS` order); returns (id, current_alert_id) of each,
    in no particular order.

    On SQLite (``direct``) one multi-row INSERT per chunk goes to the driver, times in the text SQLAlchemy
    itself writes (:func:`alerts.db.sqlite_datetime`): its per-value processing cost more than the insert.
    """
    if direct is None:
        direct = connection.dialect.name == "sqlite"
    if not rows:
        return []
    if not direct:
        table = _THREAD_TABLE
        return [(row_id, current) for row_id, current in connection.execute(
            insert(table).returning(table.c.id, table.c.current_alert_id),
            [dict(zip(_THREAD_COLUMNS, row, strict=True)) for row in rows])]
    out: list[tuple[int, int | None]] = []
    group = "(" + ", ".join("?" * len(_THREAD_COLUMNS)) + ")"
    for chunk in _chunks(rows, IN_CHUNK):
        flat: list[Any] = []
        for key, feed, opened_at, state, current, closed_at, end_time in chunk:
            flat += (key, feed, sqlite_datetime(opened_at), state, current, sqlite_datetime(closed_at),
                     sqlite_datetime(end_time))
        sql = (f"INSERT INTO alert_thread ({', '.join(_THREAD_COLUMNS)}) VALUES "
               f"{', '.join([group] * len(chunk))} RETURNING id, current_alert_id")
        out.extend((row_id, current) for row_id, current in driver_rows(connection, sql, tuple(flat)))
    return out


def update_threads(connection: Connection, rows: Sequence[tuple[int, str, int | None, datetime | None,
                                                                datetime | None]], *,
                   direct: bool | None = None) -> None:
    """(id, state, current_alert_id, closed_at, end_time) of changed threads, as one executemany (direct to
    the driver on SQLite, as :func:`set_record_threads`)."""
    if direct is None:
        direct = connection.dialect.name == "sqlite"
    if direct:
        connection.exec_driver_sql(
            "UPDATE alert_thread SET state=?, current_alert_id=?, closed_at=?, end_time=? WHERE alert_thread.id = ?",
            [(state, current, sqlite_datetime(closed_at), sqlite_datetime(end_time), row_id)
             for row_id, state, current, closed_at, end_time in rows])
        return
    table = _THREAD_TABLE
    connection.execute(
        update(table).where(table.c.id == bindparam("b_id"))
        .values(state=bindparam("b_state"), current_alert_id=bindparam("b_current"),
                closed_at=bindparam("b_closed"), end_time=bindparam("b_end")),
        [{"b_id": row_id, "b_state": state, "b_current": current, "b_closed": closed_at, "b_end": end_time}
         for row_id, state, current, closed_at, end_time in rows])


def set_record_threads(connection: Connection, thread_of: Sequence[tuple[int, int]], *,
                       direct: bool | None = None) -> None:
    """``alert.thread_id`` for each (record id, thread id), as one executemany.

    On SQLite (``direct``) the integers go to the driver as they are: SQLAlchemy's per-row parameter
    handling cost more than SQLite's own update of 10,000 rows.
    """
    if direct is None:
        direct = connection.dialect.name == "sqlite"
    if direct:
        connection.exec_driver_sql("UPDATE alert SET thread_id=? WHERE alert.id = ?",
                                   [(thread_id, record_id) for record_id, thread_id in thread_of])
        return
    table = _ALERT_TABLE
    connection.execute(update(table).where(table.c.id == bindparam("b_id")).values(thread_id=bindparam("b_thread")),
                       [{"b_id": record_id, "b_thread": thread_id} for record_id, thread_id in thread_of])


def insert_references(connection: Connection, rows: Sequence[tuple[int, str, str, datetime]], *,
                      direct: bool | None = None) -> None:
    """``alert_reference`` rows (alert id, sender, identifier, sent), as one executemany.

    On SQLite (``direct``) the time is written in the text SQLAlchemy itself writes
    (:func:`alerts.db.sqlite_datetime`), so the ORM reads it back unchanged.
    """
    if direct is None:
        direct = connection.dialect.name == "sqlite"
    if direct:
        connection.exec_driver_sql(
            "INSERT INTO alert_reference (alert_id, ref_sender, ref_identifier, ref_sent) VALUES (?, ?, ?, ?)",
            [(alert_id, sender, identifier, sqlite_datetime(sent)) for alert_id, sender, identifier, sent in rows])
        return
    connection.execute(insert(_REFERENCE_TABLE),
                       [{"alert_id": alert_id, "ref_sender": sender, "ref_identifier": identifier, "ref_sent": sent}
                        for alert_id, sender, identifier, sent in rows])


def stored_threads(session: Session, keys: Iterable[Identity]) -> dict[Identity, int | None]:
    """Identity -> thread id (None if not threaded yet) of each of ``keys`` that is stored."""
    r = _ALERT
    return dict(_identity_rows(
        session, keys,
        lambda sender, chunk: core_select(r.sender, r.identifier, r.sent, r.thread_id)
        .where(r.sender == sender, r.identifier.in_(chunk)),
        "SELECT alert.sender, alert.identifier, alert.sent, alert.thread_id FROM alert "
        "WHERE alert.sender = ? AND alert.identifier IN ({})"))


def _referrer_threads(session: Session, keys: Iterable[Identity]) -> Iterator[tuple[Identity, int]]:
    """(identity, thread id) for every stored, threaded alert that references one of ``keys``."""
    ref = _REFERENCE
    return _identity_rows(  # type: ignore[return-value]
        session, keys,
        lambda sender, chunk: core_select(ref.ref_sender, ref.ref_identifier, ref.ref_sent, _ALERT.thread_id)
        .join_from(_REFERENCE_TABLE, _ALERT_TABLE, ref.alert_id == _ALERT.id)
        .where(ref.ref_sender == sender, ref.ref_identifier.in_(chunk), _ALERT.thread_id.is_not(None)),
        "SELECT alert_reference.ref_sender, alert_reference.ref_identifier, alert_reference.ref_sent, "
        "alert.thread_id FROM alert_reference JOIN alert ON alert_reference.alert_id = alert.id "
        "WHERE alert_reference.ref_sender = ? AND alert_reference.ref_identifier IN ({}) "
        "AND alert.thread_id IS NOT NULL")


def _identity_rows(session: Session, keys: Iterable[Identity], statement: Any,
                   sqlite_sql: str) -> Iterator[tuple[Identity, int | None]]:
    """(identity, thread id) rows of an identity lookup whose columns are (sender, identifier, sent,
    thread id), keeping the wanted identities.

    On SQLite the same statement goes to the driver as SQLAlchemy compiles it (``sqlite_sql``, the ``IN``
    list as ``{}``), and ``sent`` is read as SQLAlchemy's UTC column reads it: compiling the expanding
    ``IN`` and processing each row's datetime through the type layers cost more than the query itself.
    """
    direct = session.get_bind().dialect.name == "sqlite"
    for wanted, sender, chunk in _identity_chunks(keys):
        if not direct:
            for row_sender, identifier, sent, thread_id in session.execute(statement(sender, chunk)):
                if (row_sender, identifier, sent) in wanted:
                    yield (row_sender, identifier, sent), thread_id
            continue
        sql = sqlite_sql.format(", ".join("?" * len(chunk)))
        for row_sender, identifier, text, thread_id in driver_rows(session.connection(), sql, (sender, *chunk)):
            key = (row_sender, identifier, _sqlite_utc(text))
            if key in wanted:
                yield key, thread_id


def _sqlite_utc(text: str) -> datetime:
    """A ``UTCDateTime`` value as SQLAlchemy reads it back from SQLite: naive text, aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _identity_chunks(keys: Iterable[Identity]) -> Iterator[tuple[set[Identity], str, Sequence[str]]]:
    """Identity lookups as ``sender = ? AND identifier IN (...)``: an index range on (sender, identifier,
    sent) in SQLite and PostgreSQL alike, one compiled statement for any batch, and no per-key datetime
    parameters (an OR of one (sender, identifier, sent) triplet per key cost ~2 us per parameter in
    SQLAlchemy alone). Rows come back for every ``sent`` of an identifier; the caller keeps the wanted ones.
    """
    wanted = set(keys)
    by_sender: dict[str, set[str]] = {}
    for sender, identifier, _ in wanted:
        by_sender.setdefault(sender, set()).add(identifier)
    for sender, identifiers in by_sender.items():
        for chunk in _chunks(sorted(identifiers), IN_CHUNK):
            yield wanted, sender, chunk


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def expire_threads(session: Session, now: datetime) -> int:
    """Close every live thread whose end time has passed; nothing of theirs is sent afterwards."""
    result = session.execute(
        update(AlertThread)
        .where(AlertThread.state == "active", AlertThread.end_time.is_not(None),  # type: ignore[union-attr]
               AlertThread.end_time <= now)  # type: ignore[operator]
        .values(state="expired", closed_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def live_threads_of_feed(session: Session, feed: str) -> list[AlertThread]:
    return list(session.exec(select(AlertThread).where(AlertThread.feed == feed, AlertThread.state == "active")))
