"""Benchmark: memory of a long continuous run under alimcast run's garbage collector settings.

Why: ``alimcast run`` freezes its start-up heap (alerts/runtime_gc.py). A frozen cycle that dies is never
collected until the next settle, so a process that froze and ran for months could leak. This runs round after
round as the continuous job does (a new warning polled, matched into the outbox, dispatched, its results
collected) against the loopback NHN server in a process of its own (its stored messages are not this process's
memory), settling the heap at start and again every ``--refreeze-every`` rounds (the hourly refreeze, made
frequent), and prints this process's resident memory, the objects the collector tracks outside the frozen heap
(before that round's settle) and the frozen ones. Stable figures after the first rounds: no growth with the uptime.

Run: .venv/bin/python benchmarks/bench_gc_memory.py [--people 2000] [--rounds 40] [--refreeze-every 10]
     [--gc runtime|default]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_dispatch import SECRETS, TEMPLATES, cap_xml, prepared_pipeline  # noqa: E402
from provider_process import ProviderProcess  # noqa: E402

from alerts.pipeline import feed_spec  # noqa: E402
from alerts.runtime_gc import GcSettings, HeapKeeper  # noqa: E402

MODES = {"runtime": GcSettings(), "default": GcSettings(freeze=False, young_threshold=700)}


def rss_mib() -> float:
    """This process's resident memory (Linux /proc)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--refreeze-every", type=int, default=10)
    parser.add_argument("--gc", choices=sorted(MODES), default="runtime")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ.update(SECRETS)
    settings = MODES[args.gc]
    with tempfile.TemporaryDirectory(prefix="bench-gc-memory-") as tmp, \
            ProviderProcess(templates=dict(TEMPLATES.values())) as server:
        folder = Path(tmp)
        pipeline = prepared_pipeline(folder, args.people, server.base_url, poll=False)
        keeper = HeapKeeper(settings)
        print(f"{args.people:,} people a round, {args.rounds} rounds, --gc {args.gc}: {keeper.settle()}")
        print(f"{'round':>5} {'RSS MiB':>8} {'tracked':>9} {'frozen':>9} {'accepted':>9}")
        for n in range(1, args.rounds + 1):
            (folder / "feed.xml").write_bytes(cap_xml(f"MEM-{uuid.uuid4().hex[:8]}", datetime.now(UTC)))
            pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
            pipeline.match()
            report = pipeline.dispatcher.dispatch_due()
            while pipeline.dispatcher.collect_results().updated:
                pass
            if n == 1 or n % 5 == 0:
                print(f"{n:5d} {rss_mib():8.1f} {len(gc.get_objects()):9,} {gc.get_freeze_count():9,} "
                      f"{report.accepted:9,}", flush=True)
            if settings.freeze and n % args.refreeze_every == 0:
                keeper.settle()
        pipeline.close()


if __name__ == "__main__":
    main()
