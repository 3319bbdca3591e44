"""One provider account, one rate, several real workers: counted on the provider's side.

Three ``alimcast run`` processes on one PostgreSQL database send one fan-out to a loopback NHN account whose
limit equals the configured rate (a request over it is refused with 429, counted on arrival per rolling
second). Each worker kept its own window before: together they attempted three times the rate. Now the
window is shared through the database (alerts/delivery/shared_rate.py): zero 429s, no rolling second over
the rate, every recipient exactly once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet import Fleet, limited_server  # noqa: E402


@pytest.mark.slow
def test_three_workers_share_one_account_rate(tmp_path: Path, pg_url: str) -> None:
    rate, people = 200, 800
    with limited_server(rate) as srv:
        fleet = Fleet(tmp_path, pg_url, srv, rate=rate)
        fleet.queue(people)
        fleet.start(3)
        try:
            fleet.wait_all_sent(120)
        finally:
            fleet.stop_all()
        delivered = fleet.delivered()
        assert srv.rate_refusals == 0, "\n".join(w.tail() for w in fleet.workers)
        assert srv.max_recipients_per_second() <= rate
        assert len(delivered) == people and max(delivered.values()) == 1
        print(f"achieved {fleet.achieved_rate():.0f}/s of {rate}/s with 3 workers")
