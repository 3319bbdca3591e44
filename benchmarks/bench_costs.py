"""A month's cost report over 5,000,000 ledger rows, on SQLite and PostgreSQL (goal: under 1 s).

Builds a migrated database with one month of ``--rows`` ledger rows (and their deliveries: the ledger's
foreign key is real) plus a neighbouring month of a fifth as many, then times
``alerts.cost_report.monthly_summary`` (GROUP BY in the database over the ``ix_cost_entry_report`` index,
distinct recipients, failures) and, as the baseline in the same run, fetching the month's rows and summing
them in Python (what the report did before). Prints medians and the ratio.

Run: .venv/bin/python benchmarks/bench_costs.py [--rows 5000000] [--runs 5] [--no-sqlite] [--postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import subscribers.all_models  # noqa: E402, F401  (every table, so the migration's metadata is complete)
from alerts.cost_report import monthly_summary  # noqa: E402
from alerts.db import make_engine, session_scope, upgrade  # noqa: E402

GOAL_S = 1.0
CHUNK = 500  # alerts/sqlutil.insert_ignore writes 500 rows per statement
MONTH, OTHER = "2026-03", "2026-02"
PER_ALERT = 100_000  # recipients per alert: deliveries are unique per (alert, person)


def seed_sql(series: str, alerts: int) -> list[str]:
    """One thread, ``alerts`` alerts and PER_ALERT people."""
    return [
        "INSERT INTO alert_thread (id, state, opened_at) VALUES (1, 'active', '2026-03-01 00:00:00')",
        "INSERT INTO delivery_message (id, digest, template_code, params, text) VALUES (1, 'bench', 'T', '{}', '')",
        "INSERT INTO alert (id, sender, identifier, sent, status, msg_type, scope, event, severity, urgency, feed, "
        "thread_id, received_at, body) SELECT x, 'kma', 'W' || x, '2026-03-01 00:00:00', 'Actual', 'Alert', "
        "'Public', '풍랑주의보', 'Moderate', 'Expected', 'kma', 1, '2026-03-01 00:00:00', '{}' FROM "
        + series.format(lo=1, hi=alerts),
        "INSERT INTO subscriber (id, phone, name, language, status, min_severity, categories, hazards, consent_at, "
        "consent_source, consent_text, created_at, updated_at) SELECT x, '010' || (10000000 + x), '', 'ko', "
        "'active', 'Unknown', '[]', '[]', '2026-01-01 00:00:00', 'cli', '', '2026-01-01 00:00:00', "
        "'2026-01-01 00:00:00' FROM " + series.format(lo=1, hi=PER_ALERT),
    ]
# channel mix like the fan-out: 88.5% AlimTalk, 11.5% fallback (LMS, 1 in 5 as SMS), a few uncertain
CHANNEL = "CASE WHEN x % 200 < 177 THEN 'alimtalk' WHEN x % 200 < 195 THEN 'lms' ELSE 'sms' END"
STATUS = "CASE WHEN x % 200 < 176 THEN 'delivered' WHEN x % 200 < 177 THEN 'uncertain' ELSE 'fallback_sent' END"
PRICE = "CASE WHEN x % 200 < 177 THEN 80000 WHEN x % 200 < 195 THEN 390000 ELSE 120000 END"


def fill_sql(series: str, lo: int, hi: int, month: str, dry: str) -> list[str]:
    """Deliveries and ledger rows ``lo..hi`` for ``month`` (``series`` yields x)."""
    return [
        f"INSERT INTO delivery (id, alert_id, thread_id, subscriber_id, kind, priority, status, message_id, "
        f"attempts, created_at, provider, finished_at) "
        f"SELECT x, x / {PER_ALERT} + 1, 1, x % {PER_ALERT} + 1, 'alert', 0, "
        f"CASE WHEN x % 997 = 0 THEN 'failed' ELSE 'delivered' END, 1, 1, '2026-03-02 00:00:00', "
        f"'nhn', '{month}-10 00:00:00' FROM {series.format(lo=lo, hi=hi)}",
        f"INSERT INTO cost_entry (delivery_id, month, channel, price_krw, baseline_channel, baseline_krw, dry_run, "
        f"created_at, price_e4, baseline_e4, short_saving_e4, status, provider, alert_id, subscriber_id) "
        f"SELECT x, '{month}', {CHANNEL}, {PRICE} / 10000.0, 'lms', 39.0, {dry}, '{month}-10 00:00:00', {PRICE}, "
        f"390000, NULL, {STATUS}, 'nhn', x / {PER_ALERT} + 1, x % {PER_ALERT} + 1 "
        f"FROM {series.format(lo=lo, hi=hi)}",
    ]


def chunked(series: str, rows: int, false: str) -> list[str]:
    """The month and a neighbouring month, in statements of CHUNK ledger rows as the dispatcher writes them
    (so PostgreSQL's rollup holds as many delta rows as it would in production)."""
    out: list[str] = []
    for month, lo, hi in ((MONTH, 1, rows), (OTHER, rows + 1, rows + rows // 5)):
        for start in range(lo, hi + 1, CHUNK):
            out.extend(fill_sql(series, start, min(start + CHUNK - 1, hi), month, false))
    return out


def build_sqlite(path: Path, rows: int) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    series = "(WITH RECURSIVE s(x) AS (SELECT {lo} UNION ALL SELECT x + 1 FROM s WHERE x < {hi}) SELECT x FROM s)"
    for sql in seed_sql(series, (rows + rows // 5) // PER_ALERT + 1):
        conn.execute(sql)
    for sql in chunked(series, rows, "0"):
        conn.execute(sql)
    conn.commit()
    conn.execute("ANALYZE")
    # one big build transaction leaves the whole database in the WAL; production commits checkpoint as they go
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return url


def build_postgres(url: str, rows: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        raw.execute("SET synchronous_commit = off")
        series = "generate_series({lo}, {hi}) AS s(x)"
        for sql in seed_sql(series, (rows + rows // 5) // PER_ALERT + 1):
            raw.execute(sql)
        for sql in chunked(series, rows, "false"):
            raw.execute(sql)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE cost_entry")
        conn.exec_driver_sql("VACUUM ANALYZE delivery")
    engine.dispose()


def timed(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(label: str, url: str, rows: int, runs: int) -> None:
    engine = make_engine(url)

    def report() -> object:
        with session_scope(engine) as s:
            return monthly_summary(s, MONTH)

    def python_sum() -> object:
        with engine.connect() as conn:
            total = 0
            for _channel, price in conn.exec_driver_sql(
                    f"SELECT channel, price_e4 FROM cost_entry WHERE month = '{MONTH}' AND dry_run = "
                    f"{'false' if engine.dialect.name == 'postgresql' else '0'}"):
                total += price
            return total

    def ledger_group_by() -> object:
        with engine.connect() as conn:
            return conn.exec_driver_sql(
                f"SELECT dry_run, channel, status, count(*), sum(price_e4), sum(baseline_e4), "
                f"count(distinct subscriber_id) FROM cost_entry WHERE month = '{MONTH}' "
                f"GROUP BY dry_run, channel, status").all()

    report()  # warm the cache: a manager's second look, not the first disk read, is what repeats
    median, summary = timed(report, runs)
    base, total = timed(python_sum, max(1, runs // 2))
    direct, _ = timed(ledger_group_by, max(1, runs // 2))
    assert summary.messages == rows, (summary.messages, rows)  # type: ignore[attr-defined]
    assert int(summary.cost_krw * 10000) == total  # type: ignore[attr-defined]
    print(f"{label}: {rows:,} ledger rows in the month")
    print(f"  month report (GROUP BY in the database): median {median * 1000:,.0f} ms over {runs} runs; "
          f"cost {summary.cost_krw:,} KRW, {summary.recipients:,} recipients")  # type: ignore[attr-defined]
    print(f"  baseline: rows fetched and summed in Python: median {base * 1000:,.0f} ms")
    print(f"  for comparison: GROUP BY + COUNT(DISTINCT) over the ledger itself (no rollup): "
          f"median {direct * 1000:,.0f} ms")
    print(f"  ratio baseline / report: {base / median:.1f}x; goal < {GOAL_S:g} s: "
          f"{'met' if median < GOAL_S else 'NOT met'}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="also measure on a throwaway PostgreSQL")
    args = parser.parse_args()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            url = build_sqlite(Path(tmp) / "costs.db", args.rows)
            print(f"SQLite built in {time.perf_counter() - start:.0f} s")
            measure("SQLite", url, args.rows, args.runs)
    if args.postgres:
        sys.path.insert(0, str(ROOT / "tests"))
        from pgserver import PgServer

        server = PgServer()
        if server.available:
            print(f"PostgreSQL skipped: {server.available}")
            return
        server.start()
        try:
            url = server.create_database("bench_costs")
            start = time.perf_counter()
            build_postgres(url, args.rows)
            print(f"PostgreSQL (throwaway server, fsync=off) built in {time.perf_counter() - start:.0f} s")
            measure("PostgreSQL", url, args.rows, args.runs)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
