"""Benchmark: the achieved send rate against the configured one, and an urgent warning's wait during a fan-out.

Against the loopback NHN server (alerts/testing/nhn_server.py) with the account's limit set to the configured
rate, counted by the server on arrival per rolling second:

1. For each ``--rates`` value, a long fan-out (``--seconds`` of the rate) is dispatched by
   ``Pipeline.dispatch``; printed: the achieved rate measured on the server's side (recipients over the time
   from the first arrival to one second after the last) and its ratio to the configured rate (goal:
   within 2%), the worst rolling second, the 429s (goal: 0). The median over ``--runs`` is printed. Beside it
   the steady pace (``steady_rate``: the slope of recipients over arrival time), which does not depend on how a
   second's requests are spread within the second.
   Baseline in the same run: the same batches posted by a bare loop (the NHN adapter and the same
   ``SendWindow``; the batches the dispatcher would send, read from the outbox after the same match, so the same
   request sizes; no claims, no records): what the rate rule alone allows on this machine, so the gap between
   the two lines is the dispatcher's own work per batch. Beside it the median time a request holds its place
   in flight (the provider's answer time, which the rule must count: a ceiling of ``1 / (1 + that)``).
   Both loops (and the dispatch loop of 2.) run with the garbage collector settled as ``alimcast run`` settles
   it after start-up (alerts/runtime_gc.py: the heap frozen, young collections rarer), right before each.
   ``--server``: where the loopback provider runs. ``process`` (a process of its own, as a real provider runs
   on other machines: benchmarks/provider_process.py) or ``thread`` (in the sender's process, taking its GIL
   and growing its heap: a floor); both by default, each printed.
2. With the dispatch loop of ``alimcast run`` sending a bulk fan-out at ``--urgent-rate``, an Extreme warning
   is polled and matched on another feed ``--trials`` times; printed: the time from the start of the poll that
   sees it to the provider accepting its first recipient (goal: < 1 s), median and worst.

Run: .venv/bin/python benchmarks/bench_send_rate.py [--rates 500,1000,2000] [--seconds 15] [--runs 1]
     [--switch-ms 1]
     [--server process,thread] [--urgent-rate 1000,2000] [--trials 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from alimcast_testkit import TEMPLATES, cap_xml, config_text  # noqa: E402
from outbox_batches import same_batches  # noqa: E402
from provider_process import ProviderProcess  # noqa: E402

from alerts.config import load_config  # noqa: E402
from alerts.delivery.loop import DispatchLoop  # noqa: E402
from alerts.delivery.rate import SendWindow  # noqa: E402
from alerts.pipeline import Pipeline, feed_spec  # noqa: E402
from alerts.runtime_gc import GcSettings, settle_heap  # noqa: E402
from alerts.runtime_switch import SWITCH_INTERVAL_MS, SwitchInterval  # noqa: E402
from alerts.testing.nhn_server import NhnTestServer  # noqa: E402
from subscribers.csv_import import import_csv  # noqa: E402


def make_pipeline(work: Path, srv: NhnTestServer | ProviderProcess, rate: float) -> Pipeline:
    os.environ.update({"T_APP_KEY": srv.app_key, "T_SECRET_KEY": srv.secret_key, "T_SENDER_KEY": srv.sender_key})
    feeds = [("bulk", "cap", str(work / "bulk.xml")), ("urgent", "cap", str(work / "urgent.xml"))]
    text = config_text(f"sqlite:///{work / 'a.db'}", feeds, provider="nhn", base_url=srv.base_url)
    (work / "config.toml").write_text(text.replace("rate_per_second = 1000", f"rate_per_second = {rate}"),
                                      encoding="utf-8")
    config = load_config(work / "config.toml")
    config.provider.settings["retry_attempts"] = 1  # a 429 must show
    return Pipeline(config)


def add_people(pipeline: Pipeline, work: Path, prefix: str, count: int, zone: str) -> None:
    csv = work / f"{prefix}.csv"
    with csv.open("w", encoding="utf-8") as out:
        out.write("phone,name,zones,min_severity\n")
        for i in range(count):
            out.write(f"{prefix}{i:07d},p{i},{zone},\n")
    import_csv(pipeline.engine, csv)


def queue(pipeline: Pipeline, work: Path, name: str, identifier: str, zone: str, **kw: str) -> None:
    (work / f"{name}.xml").write_bytes(cap_xml(identifier, sent=datetime.now(UTC).replace(microsecond=0),
                                               zones=[zone], **kw))
    spec = next(feed_spec(f) for f in pipeline.config.feeds if f.name == name)
    pipeline.poll(spec, force=True)
    pipeline.match()


def provider(server: str, rate: float) -> NhnTestServer | ProviderProcess:
    """The loopback account limited to ``rate``, in this process (``thread``) or in its own (``process``)."""
    kind = ProviderProcess if server == "process" else NhnTestServer
    return kind(templates={c: t for c, t in TEMPLATES.values()}, account_limit_per_second=int(rate))


def achieved_rate(rate: float, seconds: float, server: str = "process") -> tuple[float, int, int]:
    people = int(rate * seconds)
    with tempfile.TemporaryDirectory() as tmp, provider(server, rate) as srv:
        work = Path(tmp)
        pipeline = make_pipeline(work, srv, rate)
        add_people(pipeline, work, "0105", people, "S1251100")
        queue(pipeline, work, "bulk", "BULK", "S1251100")
        settle_heap(GcSettings())  # as alimcast run after start-up; the bare loop alike
        report = pipeline.dispatch()
        pipeline.close()
        arrivals = sorted(srv.arrivals())
        assert report.accepted == people, report
        # N recipients used the account from the first arrival until one second after the last: a sender at
        # exactly the rate (a full second every second) scores 1.0 on any schedule within the second
        measured = sum(n for _, n in arrivals) / (arrivals[-1][0] - arrivals[0][0] + 1.0)
        return measured, srv.max_recipients_per_second(), srv.rate_refusals, steady_rate(arrivals)


def steady_rate(arrivals: list[tuple[float, int]]) -> float:
    """The fan-out's pace at the provider: the slope of the least-squares line through (arrival time, recipients
    that arrived before it). Why beside "recipients over (first to last arrival + 1 s)": that figure depends on how
    the last second's requests are spread, not only on the pace. A sender at exactly the rate in bursts of a
    second's worth scores 1.0 on it, the same sender in four even requests a second scores (S - 0.25) / (S + 0.75)
    over S seconds (0.975 over 30 s) though the provider sees the same rate. The slope of a periodic schedule is
    its recipients per period over the period, whatever the schedule within the period."""
    times: list[float] = []
    before: list[float] = []
    total = 0
    for at, recipients in arrivals:
        times.append(at)
        before.append(total)
        total += recipients
    if len(times) < 2:
        return float("nan")
    return statistics.linear_regression(times, before).slope


def bare_rate(rate: float, seconds: float, server: str = "process") -> tuple[float, int, int, float, float]:
    """The same fan-out through the adapter and the window only: the batches the dispatcher would send (read from
    the outbox after the same match: the same rendered parameters and SMS/LMS fallback, so the same request sizes
    and the provider's same answer time), each request built before its place is taken and counted until its
    answer begins, as the dispatcher does; no claims, no records. Also returned: the median time a request held
    its place in flight (taken -> answer began), which the rate rule must count: its ceiling is
    ``rate / (1 + that)`` (alerts/delivery/rate.py)."""
    people = int(rate * seconds)
    with tempfile.TemporaryDirectory() as tmp, provider(server, rate) as srv:
        work = Path(tmp)
        pipeline = make_pipeline(work, srv, rate)
        add_people(pipeline, work, "0105", people, "S1251100")
        queue(pipeline, work, "bulk", "BULK", "S1251100")
        batches = same_batches(pipeline, pipeline.dispatcher.batch_size)
        assert sum(len(b) for b in batches) == people
        window = SendWindow(rate)
        counted: list[float] = []
        settle_heap(GcSettings())
        for chunk in batches:
            prepared = pipeline.provider.prepare(chunk, idempotency_key=uuid.uuid4().hex)
            ticket = window.acquire(len(chunk))
            assert ticket is not None
            taken = time.monotonic()
            try:
                prepared.send()
            finally:
                answered = prepared.answered_at
                window.finish(ticket, ago=0.0 if answered is None else time.monotonic() - answered)
                counted.append((answered if answered is not None else time.monotonic()) - taken)
        pipeline.close()
        arrivals = sorted(srv.arrivals())
        measured = sum(n for _, n in arrivals) / (arrivals[-1][0] - arrivals[0][0] + 1.0)
        return (measured, srv.max_recipients_per_second(), srv.rate_refusals, steady_rate(arrivals),
                statistics.median(counted))


def urgent_waits(rate: float, trials: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp, NhnTestServer(
            templates={c: t for c, t in TEMPLATES.values()}, account_limit_per_second=int(rate)) as srv:
        work = Path(tmp)
        pipeline = make_pipeline(work, srv, rate)
        add_people(pipeline, work, "0105", int(rate * (trials * 2 + 6)), "S1251100")
        add_people(pipeline, work, "0106", 50, "S1131100")
        queue(pipeline, work, "bulk", "BULK", "S1251100")
        loop = DispatchLoop(pipeline.dispatcher, pipeline.dispatch, pipeline.wake)
        pipeline.dispatch_loop_running = True
        settle_heap(GcSettings())
        loop.start()
        waits: list[float] = []
        phases = random.Random(7)
        try:
            while len(srv.messages) < rate * 2:
                time.sleep(0.05)
            for trial in range(trials):
                before = sum(1 for m in srv.messages if m.recipient_no.startswith("0106"))
                started = time.monotonic()
                queue(pipeline, work, "urgent", f"TSU-{trial}", "S1131100", event="지진해일경보",
                      severity="Extreme", urgency="Immediate")
                while sum(1 for m in srv.messages if m.recipient_no.startswith("0106")) == before:
                    time.sleep(0.005)
                waits.append(time.monotonic() - started)
                # a pause of random length: after a fixed 1.0 s every trial began at the same point of the bulk
                # send's schedule (the urgent batch's own place frees 1 s plus its latency after it started, and
                # a bulk batch had just taken it), so five trials measured one phase five times
                time.sleep(1.0 + phases.random() * 0.5)
            bulk_left = sum(1 for m in srv.messages if m.recipient_no.startswith("0105")) < rate * (trials * 2 + 6)
            assert bulk_left, "the bulk send ended before the last trial: raise its size"
        finally:
            loop.stop()
            pipeline.close()
        return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="500,1000,2000")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--server", default="process,thread",
                        help="where the loopback provider runs: process, thread, or both (comma-separated)")
    parser.add_argument("--urgent-rate", default="1000",
                        help="bulk rates (comma-separated) for the urgent-warning trials; empty: none")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--switch-ms", type=float, default=SWITCH_INTERVAL_MS,
                        help="the thread switch interval, as alimcast run sets it (alerts/runtime_switch.py; "
                             "0 keeps CPython's 5 ms)")
    args = parser.parse_args()
    threading.current_thread().name = "bench"
    print(SwitchInterval(ms=args.switch_ms).apply(), flush=True)  # the dispatcher and the bare loop alike
    for server, rate in ((s, float(r)) for s in args.server.split(",") for r in args.rates.split(",") if r):
        results = [achieved_rate(rate, args.seconds, server) for _ in range(args.runs)]
        measured = statistics.median(r[0] for r in results)
        worst = max(r[1] for r in results)
        refusals = sum(r[2] for r in results)
        bare = [bare_rate(rate, args.seconds, server) for _ in range(args.runs)]
        bare_measured = statistics.median(r[0] for r in bare)
        steady = statistics.median(r[3] for r in results)
        bare_steady = statistics.median(r[3] for r in bare)
        in_flight = statistics.median(r[4] for r in bare)
        print(f"[provider in its own {server}] "
              f"rate {rate:>7.0f}/s over {args.seconds:.0f} s: dispatcher {measured:8.1f}/s at the provider "
              f"= {measured / rate:.3f}x configured (worst rolling second {worst}, 429s {refusals}); "
              f"bare loop, same window {bare_measured:8.1f}/s = {bare_measured / rate:.3f}x "
              f"(worst {max(r[1] for r in bare)}, 429s {sum(r[2] for r in bare)}); "
              f"dispatcher/bare {measured / bare_measured:.3f}; steady pace (slope): dispatcher "
              f"{steady / rate:.3f}x, bare {bare_steady / rate:.3f}x, dispatcher/bare {steady / bare_steady:.3f}; "
              f"a request in flight (taken -> answer began, bare loop) median {in_flight * 1e3:.1f} ms: the rate "
              f"rule's ceiling 1 / (1 + that) = {1 / (1 + in_flight):.3f}x; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for urgent_rate in (float(r) for r in args.urgent_rate.split(",") if r):
        waits = urgent_waits(urgent_rate, args.trials)
        print(f"Extreme warning during a fan-out at {urgent_rate:.0f}/s: poll -> first accepted median "
              f"{statistics.median(waits):.3f} s, worst {max(waits):.3f} s over {len(waits)} trials "
              f"({', '.join(f'{w:.3f}' for w in waits)}); load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
