"""The running job notices alerts that another process stored: a partner's push to ``alimcast serve``, a
notice an operator composed in the console.

Those alerts are in the database within milliseconds, but the job only matched at its next feed poll or
dispatch tick (seconds to minutes later). Watching the newest alert id costs one primary-key lookup, so the
job asks twice a second and matches at once when it moved: a pushed 지진해일경보 is matched and queued within
about half a second of the POST, on SQLite (the push server stores, this one process sends) as on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from alerts.db import session_scope
from alerts.models import AlertRecord

#: How often the running job looks.
WATCH_SECONDS = 0.5


class NewAlertWatcher:
    def __init__(self, engine: Engine, on_new: Callable[[], None]) -> None:
        self.engine = engine
        self.on_new = on_new
        self._last: int | None = None
        self._looked = False

    def check(self) -> bool:
        """Call ``on_new`` when an alert was stored since the last look (and on the first look, so nothing
        stored while the job was down waits); returns whether it did."""
        with session_scope(self.engine) as session:
            newest = session.exec(select(func.max(AlertRecord.id))).one()
        if self._looked and newest == self._last:
            return False
        self.on_new()  # should it fail, the next look tries again
        self._last, self._looked = newest, True
        return True
