"""Vessel fixes in, the warning follows the boat: one step for the running job's AIS readers and the CLI.

Both store a batch of positions (moving each vessel's zone visits) and, in the same transaction, queue the
live warnings the moved boats are now in for the people following them. Kept in one place so that the
job and ``alimcast vessels ingest-ais`` cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session

from alerts.audience import Audience
from alerts.config import Config
from alerts.fanout import FanoutReport, follow_vessels
from subscribers.ais import ReadResult
from subscribers.positions import IngestReport, ingest_positions


def store_fixes(session: Session, config: Config, audience: Audience, result: ReadResult, *, known_only: bool,
                now: datetime, zone_name: Callable[[str], str | None]) -> tuple[IngestReport, FanoutReport]:
    """Store the batch, then queue what the moved vessels sailed into (see :func:`alerts.fanout.follow_vessels`)."""
    stored = ingest_positions(session, result.positions, buffer_nm=config.vessel_buffer_nm,
                              stale_after=timedelta(hours=config.vessel_stale_after_hours), known_only=known_only,
                              names=result.names)
    followed = follow_vessels(session, config, audience, stored.moved, now=now, zone_name=zone_name)
    return stored, followed
