"""Benchmark (issue 11): the subscriber CSV import of 1,000,000 rows on SQLite and on PostgreSQL (COPY there).

Goal: < 30 s on each engine. For each engine, on a fresh database created by the shipped migrations (so the
change-log triggers are there) and the same deterministic file (``bench_zone_match.write_csv``: most people one
zone, some two, some a group or a broad bulletin name), prints the median of ``--runs`` imports
(``subscribers.csv_import.import_csv``), rows per second, and the ratio against the floor measured in the same
run: the same rows, already parsed into tuples (parsing not timed), written by the bare driver into the same
tables and indexes in chunks of the same size, with nothing decided (no lookup of who exists, no
comparison): ``executemany`` with the change-log trigger set aside and one log row per person (SQLite), ``COPY``
straight into ``subscriber`` and ``subscription`` (PostgreSQL). A re-import of the same file (everyone
unchanged) is timed once.

PostgreSQL is a throwaway server (``tests/pgserver.py``: fsync off, as the test suite runs it).

Run: .venv/bin/python benchmarks/bench_csv_import.py [--rows 1000000] [--runs 3] [--no-sqlite] [--no-postgres]
     [--workdir DIR] [--parse-here]

The import parses the file in a child process (``subscribers.parse_process``); ``--parse-here`` parses it in the
importing process instead, for a comparison in the same conditions. "CPU seconds of this process" does not count
the child's (the parse): that is the point of it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.append(str(ROOT / "tests"))  # after the checkout: tests/alerts must not shadow the package

import orjson  # noqa: E402
from bench_zone_match import write_csv  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

import subscribers.all_models  # noqa: E402, F401
from alerts.db import make_engine, upgrade  # noqa: E402
from subscribers import zones  # noqa: E402
from subscribers.bulk_writers import CHANGE_TRIGGER, PERSON_COLUMNS  # noqa: E402
from subscribers.csv_import import CHUNK_ROWS, import_csv  # noqa: E402
from subscribers.phone import normalize  # noqa: E402
from subscribers.preferences import check_severity  # noqa: E402

CONSENT = ("csv", "imported from subscribers.csv")


def parsed_rows(path: Path) -> tuple[list[tuple[Any, ...]], list[list[str]]]:
    """The file's people as ``PERSON_COLUMNS`` tuples and each one's leaf zones (the floor's input)."""
    people: list[tuple[Any, ...]] = []
    leaves: list[list[str]] = []
    expanded: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            phone, name, zone_text, severity = line.rstrip("\n").split(",")
            if zone_text not in expanded:
                expanded[zone_text] = zones.expand_many(zone_text.split())
            people.append((normalize(phone), name, "ko", check_severity(severity or None), "[]", "[]", None, None))
            leaves.append(expanded[zone_text])
    return people, leaves


def floor_sqlite(engine: Engine, people: list[tuple[Any, ...]], leaves: list[list[str]], chunk: int) -> None:
    raw: Any = engine.raw_connection()
    try:
        raw.execute("PRAGMA cache_size=-262144")  # as the import's connection
        trigger = raw.execute("SELECT sql FROM sqlite_master WHERE name = ?", (CHANGE_TRIGGER,)).fetchone()[0]
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        columns = ("id", *PERSON_COLUMNS, "consent_at", "consent_source", "consent_text", "status", "created_at",
                   "updated_at")
        person_sql = f"INSERT INTO subscriber ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        for start in range(0, len(people), chunk):
            ids = range(start + 1, min(start + chunk, len(people)) + 1)
            raw.execute("DELETE FROM subscription_change WHERE 0")  # opens the transaction (then DDL is in it)
            raw.execute(f"DROP TRIGGER {CHANGE_TRIGGER}")
            raw.executemany(person_sql, [(sid, *people[sid - 1], now, *CONSENT, "active", now, now) for sid in ids])
            raw.executemany("INSERT INTO subscription (subscriber_id, kind, zone_code) VALUES (?, 'zone', ?)",
                            [(sid, code) for sid in ids for code in leaves[sid - 1]])
            raw.execute("INSERT INTO subscription_change (subscriber_id, changed_at) SELECT value, "
                        "(julianday('now') - 2440587.5) * 86400.0 FROM json_each(?)",
                        (orjson.dumps(list(ids)).decode(),))
            raw.execute(trigger)
            raw.commit()
    finally:
        raw.close()


def floor_postgres(engine: Engine, people: list[tuple[Any, ...]], leaves: list[list[str]], chunk: int) -> None:
    raw: Any = engine.raw_connection()
    try:
        now = datetime.now(UTC)
        columns = ("id", *PERSON_COLUMNS, "consent_at", "consent_source", "consent_text", "status", "created_at",
                   "updated_at")
        cursor = raw.cursor()
        for start in range(0, len(people), chunk):
            ids = range(start + 1, min(start + chunk, len(people)) + 1)
            with cursor.copy(f"COPY subscriber ({', '.join(columns)}) FROM STDIN") as copy:
                for sid in ids:
                    copy.write_row((sid, *people[sid - 1], now, *CONSENT, "active", now, now))
            with cursor.copy("COPY subscription (subscriber_id, kind, zone_code) FROM STDIN") as copy:
                for sid in ids:
                    for code in leaves[sid - 1]:
                        copy.write_row((sid, "zone", code))
            raw.commit()
        cursor.execute("SELECT setval(pg_get_serial_sequence('subscriber', 'id'), %s)", (len(people),))
        raw.commit()
    finally:
        raw.close()


#: ``import_csv(parse_process=...)``: None (the default: a child process parses a file this big), False with
#: ``--parse-here`` (this process parses, beside its writer thread, as before the child process existed).
PARSE_PROCESS: bool | None = None
CPU: list[float] = []  # this process's CPU seconds (every thread) of each timed call, in order
CHILD_CPU: list[float] = []  # the CPU seconds of the import's parser process (a child), of each timed call
SERVER_CPU: list[float] = []  # the PostgreSQL backends' CPU seconds of each timed call (0 on SQLite)


def server_cpu(database: str | None) -> float:
    """CPU seconds spent so far by the live backends of ``database`` (the throwaway server runs on this machine).

    Why: the machine is shared, so wall time alone mixes our work with everyone else's; the server's own CPU
    seconds, beside this process's, say what the import itself cost the database."""
    if database is None:
        return 0.0
    tag, total = f" {database} ".encode(), 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                title = handle.read().replace(b"\0", b" ")
            if title.startswith(b"postgres: ") and tag in title:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of this process's ended children (the import's parser process)."""
    times = os.times()
    return times.children_user + times.children_system


def timed(fn: Callable[[], object], database: str | None = None) -> float:
    started, cpu, server = time.perf_counter(), time.process_time(), server_cpu(database)
    children = children_cpu()
    fn()
    CPU.append(time.process_time() - cpu)
    CHILD_CPU.append(children_cpu() - children)
    SERVER_CPU.append(server_cpu(database) - server)
    return time.perf_counter() - started


def database_of(engine: Engine) -> str | None:
    return engine.url.database if engine.dialect.name == "postgresql" else None


def measure(label: str, fresh: Callable[[int], Engine], csv_path: Path, rows: int, runs: int,
            floor: Callable[[Engine, list[tuple[Any, ...]], list[list[str]], int], None],
            parsed: tuple[list[tuple[Any, ...]], list[list[str]]]) -> None:
    imports, floors = [], []
    import_cpu, floor_cpu, import_server, floor_server = [], [], [], []
    import_child: list[float] = []
    engine = None
    for run in range(runs):
        engine = fresh(2 * run)
        report = None

        def one(target: Engine = engine) -> None:
            nonlocal report
            report = import_csv(target, csv_path, parse_process=PARSE_PROCESS)

        imports.append(timed(one, database_of(engine)))
        import_cpu.append(CPU[-1])
        import_child.append(CHILD_CPU[-1])
        import_server.append(SERVER_CPU[-1])
        assert report is not None and report.inserted == rows and report.skipped == 0, report
        print(f"  {label} run {run + 1}: import {imports[-1]:.1f} s", flush=True)
        if run < runs - 1:
            engine.dispose()
        floor_engine = fresh(2 * run + 1)
        floors.append(timed(lambda e=floor_engine: floor(e, parsed[0], parsed[1], CHUNK_ROWS),
                            database_of(floor_engine)))
        floor_cpu.append(CPU[-1])
        floor_server.append(SERVER_CPU[-1])
        floor_engine.dispose()
        print(f"  {label} run {run + 1}: floor  {floors[-1]:.1f} s", flush=True)
    assert engine is not None
    again = None

    def reimport() -> None:
        nonlocal again
        again = import_csv(engine, csv_path, parse_process=PARSE_PROCESS)

    reimport_s = timed(reimport, database_of(engine))
    assert again is not None and again.unchanged == rows
    engine.dispose()
    median, floor_median = statistics.median(imports), statistics.median(floors)
    verdict = ("met" if median < 30 else "NOT met") if rows >= 1_000_000 else "for 1,000,000 rows"
    print(f"{label}: import of {rows:,} rows, median of {runs}: {median:.1f} s ({rows / median:,.0f} rows/s); "
          f"goal < 30 s: {verdict}")
    print(f"{label}:   floor (bare {'COPY' if label == 'PostgreSQL' else 'executemany'} of the parsed rows), "
          f"median of {runs}: {floor_median:.1f} s ({rows / floor_median:,.0f} rows/s); "
          f"import / floor = {median / floor_median:.2f}x")
    print(f"{label}:   re-import of the same file (all unchanged): {reimport_s:.1f} s")
    # the machine may be shared: what this process itself spent (SQLite's work included; PostgreSQL's server not)
    print(f"{label}:   CPU seconds of this process, median: import {statistics.median(import_cpu):.1f}, "
          f"floor {statistics.median(floor_cpu):.1f}; re-import {CPU[-1]:.1f}; load average now "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{label}:   CPU seconds of the parser process (a child), median: import "
          f"{statistics.median(import_child):.1f}; re-import {CHILD_CPU[-1]:.1f}")
    if label == "PostgreSQL":
        print(f"{label}:   server CPU seconds (the database's backends), median: import "
              f"{statistics.median(import_server):.1f}, floor {statistics.median(floor_server):.1f}; "
              f"re-import {SERVER_CPU[-1]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--parse-here", action="store_true",
                        help="parse in this process, not in a child process (the import before the child process)")
    args = parser.parse_args()
    global PARSE_PROCESS
    PARSE_PROCESS = False if args.parse_here else None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_csv_import_"))
    workdir.mkdir(parents=True, exist_ok=True)
    csv_path = workdir / f"subscribers-{args.rows}.csv"
    if not csv_path.exists():
        write_csv(csv_path, args.rows)
    parsed = parsed_rows(csv_path)
    zone_rows = sum(len(z) for z in parsed[1])
    print(f"{args.rows:,} rows ({zone_rows:,} zone rows), {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the start ({csv_path})", flush=True)

    if not args.no_sqlite:
        def fresh_sqlite(n: int) -> Engine:
            path = workdir / f"import-{n}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            engine = make_engine(f"sqlite:///{path}")
            upgrade(engine)
            return engine

        measure("SQLite", fresh_sqlite, csv_path, args.rows, args.runs, floor_sqlite, parsed)

    if not args.no_postgres:
        from pgserver import PgServer

        server = PgServer()
        reason = server.available
        if reason:
            print(f"PostgreSQL: skipped ({reason})")
            return
        server.start()
        try:
            def fresh_postgres(n: int) -> Engine:
                engine = make_engine(server.create_database(f"bench_csv_{n}"))
                upgrade(engine)
                return engine

            measure("PostgreSQL", fresh_postgres, csv_path, args.rows, args.runs, floor_postgres, parsed)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
