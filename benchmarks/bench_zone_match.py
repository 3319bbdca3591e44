"""Benchmark: bulk CSV import and zone matching for 1,000,000 subscribers on SQLite.

Prints medians and ratios against baselines measured in the same run:
- CSV import (subscribers.csv_import, Core bulk inserts) vs a naive ORM-per-row import
  (store.add_subscriber for each row) of a 20,000-row sample, extrapolated to the full size;
- ZoneIndex.lookup for one zone-code alert vs the SQL query (matching_ids_sql) for the same alert,
  with the index build time;
- LiveZoneIndex.ids, what the running pipeline calls: the snapshot plus its check of the change log the
  database triggers fill (empty, then after one person subscribed since the snapshot).
Databases are created by the shipped migrations, so the import pays for the change-log triggers.

Run: .venv/bin/python benchmarks/bench_zone_match.py [--rows 1000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import subscribers.all_models  # noqa: E402, F401
from alerts.db import make_engine, upgrade  # noqa: E402
from subscribers import store, zones  # noqa: E402
from subscribers.csv_import import import_csv  # noqa: E402
from subscribers.live_zone_index import LiveZoneIndex  # noqa: E402
from subscribers.matching import ZoneIndex, match_zones, matching_ids_sql  # noqa: E402

SAMPLE_ROWS = 20_000
ALERTS = {
    "leaf S1251100": ["S1251100"],
    "group S1251000 (4 leaves)": ["S1251000"],
    "land group 경기도": ["L1010000"],
}


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def write_csv(path: Path, rows: int, seed: int = 1) -> None:
    """Realistic mix: most people one zone, some two, some a group or a broad bulletin name."""
    rng = random.Random(seed)
    leaves = [z.code for z in zones.list_zones() if zones.is_leaf(z.code)]
    extras = ["S1251000", "서해중부먼바다", "제주도남쪽먼바다", "파주시", "S1330000", "L1010000"]
    severities = ["", "", "Minor", "Moderate", "Severe"]
    with path.open("w", encoding="utf-8") as handle:
        handle.write("phone,name,zones,min_severity\n")
        for i in range(rows):
            n = f"0102{i:07d}"
            phone = n if i % 3 else f"{n[:3]}-{n[3:7]}-{n[7:]}"
            roll = rng.random()
            if roll < 0.6:
                zone_text = rng.choice(leaves)
            elif roll < 0.9:
                zone_text = " ".join(rng.sample(leaves, 2))
            else:
                zone_text = rng.choice(extras)
            handle.write(f"{phone},P{i},{zone_text},{rng.choice(severities)}\n")


def naive_import(engine_url: str, csv_path: Path) -> int:
    engine = make_engine(engine_url)
    upgrade(engine)
    count = 0
    with Session(engine) as session, csv_path.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            phone, name, zone_text, severity = line.rstrip("\n").split(",")
            store.add_subscriber(session, phone, zone_text.split(), name=name, min_severity=severity or None,
                                 consent_source="csv")
            count += 1
        session.commit()
    engine.dispose()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_zone_match_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = args.rows

    csv_path = workdir / "subscribers.csv"
    started = time.perf_counter()
    write_csv(csv_path, rows)
    print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s ({csv_path})")

    # -- import ------------------------------------------------------------------------------------
    sample = workdir / "sample.csv"
    with csv_path.open(encoding="utf-8") as src, sample.open("w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i > min(SAMPLE_ROWS, rows):
                break
            dst.write(line)
    sample_rows = min(SAMPLE_ROWS, rows)
    naive_db = workdir / "naive.db"
    naive_db.unlink(missing_ok=True)
    started = time.perf_counter()
    naive_import(f"sqlite:///{naive_db}", sample)
    naive_s = (time.perf_counter() - started) * rows / sample_rows

    db_path = workdir / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{db_path}")
    upgrade(engine)
    started = time.perf_counter()
    report = import_csv(engine, csv_path)
    import_s = time.perf_counter() - started
    started = time.perf_counter()
    again = import_csv(engine, csv_path)
    reimport_s = time.perf_counter() - started
    print(f"\nCSV import of {rows:,} rows (SQLite): {import_s:.1f} s "
          f"(inserted {report.inserted:,}, skipped {report.skipped:,})")
    print(f"  re-import of the same file: {reimport_s:.1f} s (inserted {again.inserted}, "
          f"unchanged {again.unchanged:,})")
    print(f"  baseline ORM per row, {sample_rows:,}-row sample extrapolated: {naive_s:.1f} s")
    print(f"  speed-up: {naive_s / import_s:.1f}x")

    # -- matching -----------------------------------------------------------------------------------
    build_s = median_time(lambda: ZoneIndex.build(engine), 3)
    index = ZoneIndex.build(engine)
    print(f"\nZoneIndex build (median of 3): {build_s:.2f} s for {index.subscription_count():,} zone rows")
    print(f"{'alert':<28} {'matched':>9} {'index':>10} {'SQL':>10} {'ratio':>8}")
    for label, codes in ALERTS.items():
        ids = index.lookup(codes)
        assert (ids == matching_ids_sql(engine, codes)).all()
        lookup_s = median_time(lambda c=codes: index.lookup(c), 200)
        sql_s = median_time(lambda c=codes: matching_ids_sql(engine, c), 5)
        print(f"{label:<28} {len(ids):>9,} {lookup_s * 1e3:>8.3f}ms {sql_s * 1e3:>8.1f}ms {sql_s / lookup_s:>7.0f}x")

    live = LiveZoneIndex(max_age_s=3600)
    print("\nLiveZoneIndex.ids (snapshot + change-log check), as the pipeline matches:")
    for label, codes in ALERTS.items():
        assert (live.ids(engine, codes) == matching_ids_sql(engine, codes)).all()
        live_s = median_time(lambda c=codes: live.ids(engine, c), 200)
        print(f"  {label:<28} no change since the snapshot: {live_s * 1e3:7.3f} ms")
    with Session(engine) as session:
        store.add_subscriber(session, "01099998888", ["S1251100", "L1010200"])
        session.commit()
    for label, codes in ALERTS.items():
        assert (live.ids(engine, codes) == matching_ids_sql(engine, codes)).all()
        live_s = median_time(lambda c=codes: live.ids(engine, c), 200)
        print(f"  {label:<28} one person changed since:     {live_s * 1e3:7.3f} ms")
    assert live.builds == 1

    from datetime import UTC, datetime

    codes = ALERTS["group S1251000 (4 leaves)"]
    at = datetime.now(UTC)
    full_index = median_time(lambda: match_zones(engine, codes, severity="Severe", urgency="Expected", at=at,
                                                 index=index), 3)
    full_sql = median_time(lambda: match_zones(engine, codes, severity="Severe", urgency="Expected", at=at), 3)
    print(f"\nmatch_zones incl. preferences and recipient rows, {codes[0]}: index {full_index * 1e3:.0f} ms, "
          f"SQL {full_sql * 1e3:.0f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
