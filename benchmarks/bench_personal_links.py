"""Benchmark: what the personal links (#{ack_url}, #{manage_url}) cost the fan-out of a Severe warning.

One Severe 풍랑경보 for S1251100 is fanned out (alerts.fanout.fan_out: matching, rendering, outbox insert) to
N subscribers of that zone on a migrated SQLite file, inside a transaction rolled back after each run:
- baseline: the shipped templates with their #{ack_url}/#{manage_url} lines removed (the fan-out as before);
- no public_url: the shipped templates without [web] public_url (no links; their lines are left out);
- links: the same with [web] public_url set (two hashed tokens per person, per-person text, link rows).
Prints the medians and the ratios against the baseline.

Run: .venv/bin/python benchmarks/bench_personal_links.py [--people 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from sqlmodel import Session, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import alerts.public.models  # noqa: E402, F401
import subscribers.all_models  # noqa: E402, F401
from alerts.audience import Audience  # noqa: E402
from alerts.config import parse_config  # noqa: E402
from alerts.db import make_engine, upgrade  # noqa: E402
from alerts.fanout import fan_out  # noqa: E402
from alerts.ingest import ingest  # noqa: E402
from alerts.models import AlertRecord  # noqa: E402
from alerts.pipeline import zone_name  # noqa: E402
from feeds.model import KMA_ZONE, Alert, Area, Info  # noqa: E402
from subscribers.csv_import import import_csv  # noqa: E402

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "people.csv"
        csv_path.write_text("phone,name,zones,min_severity\n" + "".join(
            f"0105{n:07d},,S1251100,\n" for n in range(args.people)), encoding="utf-8")
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        with Session(engine) as session:
            import_csv(session, csv_path)
            alert = Alert(sender="kma@kma.go.kr", identifier="bench-1", sent=NOW, msg_type="Alert", source="bench",
                          infos=[Info(event="풍랑경보", category=["Met"], urgency="Expected", severity="Severe",
                                      certainty="Likely", language="ko-KR", headline="풍랑경보",
                                      instruction="조업 선박은 안전한 곳으로 대피하십시오.",
                                      expires=NOW + timedelta(hours=6),
                                      areas=[Area(desc="S1251100", geocodes={KMA_ZONE: ["S1251100"]})])])
            ingest(session, [alert], feed="bench", now=NOW)
            session.commit()
        shipped = tomllib.loads(resources.files("alerts").joinpath("defaults", "config.toml").read_text("utf-8"))
        shipped["database"] = {"url": str(engine.url)}
        with_links = copy.deepcopy(shipped)
        with_links["web"] = {"public_url": "https://alert.example.kr"}
        plain = copy.deepcopy(shipped)
        for kind in ("alert", "update", "cancel"):
            plain["templates"][kind]["text"] = "\n".join(
                line for line in shipped["templates"][kind]["text"].split("\n") if "_url}" not in line)
        configs = {"baseline (no link variables)": parse_config(plain),
                   "no public_url (lines left out)": parse_config(shipped),
                   "links (public_url set)": parse_config(with_links)}
        audience = Audience(engine, buffer_nm=1.0, stale_after=timedelta(hours=6))
        medians: dict[str, float] = {}
        for name, config in configs.items():
            times: list[float] = []
            for _ in range(args.runs + 1):  # the first run warms the zone index
                with Session(engine) as session:
                    record = session.exec(select(AlertRecord)).one()
                    started = time.perf_counter()
                    report = fan_out(session, record, config, audience, now=NOW + timedelta(minutes=1),
                                     zone_name=zone_name)
                    session.flush()
                    times.append(time.perf_counter() - started)
                    assert report.queued == args.people, report
                    session.rollback()
            medians[name] = statistics.median(times[1:])
            print(f"{name:32s} median {medians[name] * 1000:8.1f} ms for {args.people:,} people "
                  f"({args.people / medians[name]:,.0f} messages/s)")
        base, unset, links = medians.values()
        print(f"ratio no public_url / baseline: {unset / base:.2f}; links / baseline: {links / base:.2f}")
        engine.dispose()


if __name__ == "__main__":
    main()
