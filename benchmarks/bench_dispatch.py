"""Benchmark: dispatching an outbox as fast as the wire, and writing the outbox.

Prints medians of ``--runs`` repetitions, each on a fresh SQLite file created by the shipped Alembic migration:
- dispatch: ``Dispatcher.dispatch_due`` for ``--recipients`` queued deliveries (one warning, one zone, batches
  of 1,000) against the loopback NHN server (alerts/testing/nhn_server.py) with no rate limit, then
  ``collect_results`` until every delivery has its result;
- the baseline measured in the same run against the same server: a bare httpx loop POSTing the same batches
  (the adapter's own request bodies, a fresh idempotency key each) and GETting their results by requestId
  (the same list calls the adapter makes), with nothing written anywhere;
- the ratio dispatch / bare loop (goal >= 0.8x, floor 5,000 recipients/s);
- ``--server``: where the loopback provider runs for these figures, ``process`` (a process of its own, as a
  real provider runs on other machines: benchmarks/provider_process.py) and/or ``thread`` (in this process,
  where its parsing and storing of every recipient take the same GIL as the dispatcher's threads); both by
  default, each ratio against the bare loop on the same kind of server;
- poll to first request: from the poll of a feed holding one warning for ``--outbox`` people to the loopback
  server receiving the first send request, with the dispatch loop running as in ``alimcast run`` (poll, match
  into the outbox, first claim; goal < 1 s);
- the outbox write: ``fan_out_pending`` for one warning reaching ``--outbox`` people (matching, rendering and
  the INSERT ... SELECT of every Delivery row a group at a time, in one transaction; goal < 1 s on SQLite).

- ``--runtime``: the interpreter's settings, ``alimcast`` (what ``alimcast run`` sets after start-up: the
  garbage collector of alerts/runtime_gc.py, the start-up heap frozen and a higher young threshold, and the
  1 ms thread switch interval of alerts/runtime_switch.py) or ``cpython`` (CPython's own: nothing frozen, a
  5 ms switch interval). The same function settles them right before the bare loop AND right before the
  dispatcher, in the same process, so the ratio compares like with like; the settings are printed.

Run: .venv/bin/python benchmarks/bench_dispatch.py [--recipients 20000] [--outbox 100000] [--runs 3]
     [--server process,thread] [--runtime alimcast|cpython]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
from sqlalchemy import func
from sqlmodel import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from outbox_batches import same_batches  # noqa: E402
from provider_process import ProviderProcess  # noqa: E402

from alerts.config import load_config  # noqa: E402
from alerts.db import session_scope  # noqa: E402
from alerts.delivery.loop import DispatchLoop  # noqa: E402
from alerts.delivery.providers.base import OutgoingMessage  # noqa: E402
from alerts.delivery.providers.nhn import NhnProvider  # noqa: E402
from alerts.fanout import fan_out_pending  # noqa: E402
from alerts.models import Delivery  # noqa: E402
from alerts.pipeline import Pipeline, feed_spec, zone_name  # noqa: E402
from alerts.runtime_gc import GcSettings, describe, settle_heap  # noqa: E402
from alerts.runtime_switch import SwitchInterval  # noqa: E402
from alerts.testing.nhn_server import NhnTestServer  # noqa: E402
from subscribers.csv_import import import_csv  # noqa: E402

GOAL_RATIO = 0.8
FLOOR_PER_S = 5_000
GOAL_OUTBOX_S = 1.0
GOAL_FIRST_S = 1.0
ZONE = "S1251100"
KST = timezone(timedelta(hours=9))
TEMPLATES = {
    "alert": ("BENCH_ALERT_01", "[#{hazard} #{level}] #{action}\n구역: #{zones}\n발효: #{effective}\n"
                                "종료: #{expires}\n#{instruction}"),
    "update": ("BENCH_UPDATE_01", "[#{hazard} #{level}] 변경\n구역: #{zones}\n종료: #{expires}"),
    "cancel": ("BENCH_CANCEL_01", "[#{hazard} #{level}] 해제\n구역: #{zones}\n해제: #{sent}"),
}
SECRETS = {"BENCH_APP_KEY": "test-appkey", "BENCH_SECRET_KEY": "test-secret", "BENCH_SENDER_KEY": "s" * 40}


def config_file(folder: Path, db_url: str, base_url: str) -> Path:
    lines = [f'[database]\nurl = "{db_url}"\n',
             f'[provider]\nkind = "nhn"\nbase_url = "{base_url}"\napp_key = "env:BENCH_APP_KEY"',
             'secret_key = "env:BENCH_SECRET_KEY"\nsender_key = "env:BENCH_SENDER_KEY"',
             # "no rate limit": a bucket far above anything one process reaches
             'resend_send_no = "0212345678"\nrate_per_second = 100000000\nbatch_size = 1000\ntimeout_seconds = 30\n',
             f'[[feeds]]\nname = "bench"\nkind = "cap"\nurl = "{folder / "feed.xml"}"\ninterval_seconds = 60\n']
    for kind, (code, text) in TEMPLATES.items():
        lines.append(f'[templates.{kind}]\ncode = "{code}"\ntext = """{text}"""\n')
    path = folder / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def cap_xml(identifier: str, sent: datetime) -> bytes:
    t = sent.astimezone(KST).isoformat(timespec="seconds")
    return (f'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
            f"<identifier>{identifier}</identifier><sender>kma@kma.go.kr</sender><sent>{t}</sent>"
            f"<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>"
            f"<info><language>ko-KR</language><category>Met</category><event>풍랑주의보</event>"
            f"<urgency>Expected</urgency><severity>Moderate</severity><certainty>Likely</certainty>"
            f"<effective>{t}</effective><headline>풍랑주의보 발표</headline>"
            f"<instruction>조업 선박은 안전한 곳으로 대피하십시오.</instruction><area><areaDesc>{ZONE}</areaDesc>"
            f"<geocode><valueName>KMA_ZONE</valueName><value>{ZONE}</value></geocode></area></info></alert>").encode()


def prepared_pipeline(folder: Path, people: int, base_url: str, *, poll: bool = True) -> Pipeline:
    """A migrated SQLite file with ``people`` subscribers in one zone and (``poll``) a warning for it polled (not
    matched); without ``poll`` the warning is written to the feed file, not yet polled."""
    csv = folder / "people.csv"
    with csv.open("w", encoding="utf-8") as out:
        out.write("phone,name,zones,min_severity\n")
        for i in range(people):
            out.write(f"0105{i:07d},p{i},{ZONE},\n")
    config = load_config(config_file(folder, f"sqlite:///{folder / 'bench.db'}", base_url))
    config.provider.settings["retry_attempts"] = 1
    pipeline = Pipeline(config)
    report = import_csv(pipeline.engine, csv)
    assert report.inserted == people and not report.errors, report.errors[:3]
    (folder / "feed.xml").write_bytes(cap_xml(f"BENCH-{uuid.uuid4().hex[:8]}", datetime.now(UTC)))
    if poll:
        pipeline.poll(feed_spec(config.feeds[0]), force=True)
    pipeline.warm_up()
    return pipeline


def queued(pipeline: Pipeline) -> int:
    with session_scope(pipeline.engine) as s:
        return int(s.exec(select(func.count()).select_from(Delivery).where(Delivery.status == "queued")).one())


def statuses(pipeline: Pipeline) -> dict[str, int]:
    with session_scope(pipeline.engine) as s:
        return dict(s.exec(select(Delivery.status, func.count()).group_by(Delivery.status)).all())


def bare_loop(provider: NhnProvider, batches: Sequence[Sequence[OutgoingMessage]]) -> tuple[float, float, float, float]:
    """POST every batch, then GET every request's results: plain httpx, nothing stored. Returns (send s, poll s,
    send CPU s, poll CPU s): the CPU time of this whole process (with ``--server thread``, the server's too)."""
    url = provider._messages_url  # noqa: SLF001 - the same endpoint the adapter uses
    bodies = [provider.build_body(b, uuid.uuid4().hex) for b in batches]
    headers = {"X-Secret-Key": SECRETS["BENCH_SECRET_KEY"], "Content-Type": "application/json;charset=UTF-8"}
    with httpx.Client(timeout=30, headers=headers) as client:
        t0, c0 = time.perf_counter(), time.process_time()
        request_ids = []
        for body in bodies:
            key = body["senderGroupingKey"]
            answer = client.post(url, json=body, headers={"X-NC-API-IDEMPOTENCY-KEY": key}).json()
            assert answer["header"]["isSuccessful"], answer["header"]
            request_ids.append(answer["message"]["requestId"])
        t1, c1 = time.perf_counter(), time.process_time()
        for request_id in request_ids:
            page = 1
            while True:
                answer = client.get(url, params={"requestId": request_id, "pageNum": page, "pageSize": 1000}).json()
                assert answer["header"]["isSuccessful"], answer["header"]
                if page * 1000 >= answer["messageSearchResultResponse"]["totalCount"]:
                    break
                page += 1
        t2, c2 = time.perf_counter(), time.process_time()
    return t1 - t0, t2 - t1, c1 - c0, c2 - c1


#: ``--runtime``: what is settled before each timed loop (``alimcast``: alimcast run's own settings; ``cpython``:
#: CPython's own, its switch interval 5 ms).
RUNTIMES = {"alimcast": (GcSettings(), SwitchInterval()),
            "cpython": (GcSettings(freeze=False, young_threshold=700), SwitchInterval(ms=5.0))}
runtime = "alimcast"


def settle() -> str:
    """The interpreter settled as ``alimcast run`` settles it after start-up (or CPython's defaults and a
    collection, with ``--runtime cpython``): called right before the bare loop and right before the dispatcher."""
    gc_settings, switch = RUNTIMES[runtime]
    switch.restore()
    line = f"{settle_heap(gc_settings)}; {switch.apply()}"
    if not gc_settings.freeze:
        gc.collect()
    return line


def _server(where: str) -> NhnTestServer | ProviderProcess:
    """The loopback NHN server in this process (``thread``) or in a process of its own (``process``)."""
    if where == "process":
        return ProviderProcess(templates=dict(TEMPLATES.values()))
    return NhnTestServer(templates=dict(TEMPLATES.values()))


def one_dispatch_run(people: int, where: str) -> tuple[float, ...]:
    """(dispatch s, collect s, bare send s, bare poll s, then the same four as this process's CPU seconds) for
    ``people`` recipients, in one run, the loopback server running ``where`` (both loops against the same kind)."""
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp, \
            _server(where) as server, _server(where) as bare_server:
        pipeline = prepared_pipeline(Path(tmp), people, server.base_url)
        assert pipeline.match().queued == people
        batches = same_batches(pipeline, pipeline.dispatcher.batch_size)
        # the same server code, a second instance so each loop starts on an empty message store
        # (its list call scans every stored message)
        bare_provider = NhnProvider({**pipeline.provider.settings, "base_url": bare_server.base_url})
        settle()
        bare_send, bare_poll, bare_send_cpu, bare_poll_cpu = bare_loop(bare_provider, batches)
        bare_provider.close()
        settle()
        dispatcher = pipeline.dispatcher
        t0, c0 = time.perf_counter(), time.process_time()
        report = dispatcher.dispatch_due()
        t1, c1 = time.perf_counter(), time.process_time()
        assert report.accepted == people and not report.errors, (report.accepted, report.errors[:3])
        collected = 0
        while collected < people:
            step = dispatcher.collect_results(limit=people)
            if not step.updated:
                raise AssertionError(f"results stopped at {collected} of {people}")
            collected += step.updated
        t2, c2 = time.perf_counter(), time.process_time()
        final = statuses(pipeline)
        assert final == {"delivered": people}, final
        pipeline.close()
    return t1 - t0, t2 - t1, bare_send, bare_poll, c1 - c0, c2 - c1, bare_send_cpu, bare_poll_cpu


def one_outbox_run(people: int) -> float:
    """Seconds for fan_out_pending to write the outbox of one warning reaching ``people``."""
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        pipeline = prepared_pipeline(Path(tmp), people, "http://127.0.0.1:9")
        gc.collect()
        t0 = time.perf_counter()
        with pipeline.lock, session_scope(pipeline.engine) as session:
            report = fan_out_pending(session, pipeline.config, pipeline.audience, now=datetime.now(UTC),
                                     zone_name=zone_name)
        seconds = time.perf_counter() - t0
        assert report.queued == people and queued(pipeline) == people, report
        pipeline.close()
    return seconds


def one_first_request_run(people: int) -> tuple[float, float]:
    """(seconds from the poll seeing a warning for ``people`` to the loopback server receiving the first send
    request, seconds from the poll to the match's return), as a running ``alimcast run`` does it: the dispatch
    loop is a thread of its own woken by the match. Timed on the server's clock."""
    with tempfile.TemporaryDirectory(prefix="bench-first-") as tmp, \
            NhnTestServer(templates=dict(TEMPLATES.values())) as server:
        pipeline = prepared_pipeline(Path(tmp), people, server.base_url, poll=False)
        # a job already running: its previous match step took in the import (the catch-up of people imported
        # while a job starts is alerts/catchup.py's START_WINDOW, measured on its own)
        pipeline.match()
        loop = DispatchLoop(pipeline.dispatcher, pipeline.dispatch, pipeline.wake, idle_seconds=5.0)
        pipeline.dispatch_loop_running = True
        loop.start()
        gc.collect()
        t0 = time.monotonic()
        pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
        report = pipeline.match()
        t1 = time.monotonic()
        deadline = t0 + 60
        while not server.send_requests() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert report.queued == people and server.send_requests(), report
        first = server.send_requests()[0].received_at
        loop.stop(timeout=30)
        pipeline.close()
    return first - t0, t1 - t0


#: How the figures name where the loopback server ran.
where_text = {"process": "a process of its own", "thread": "this process"}


def report_dispatch(n: int, runs_wanted: int, where: str) -> None:
    """Dispatch and collect against the bare loop, the loopback server running ``where``; medians printed."""
    runs = [one_dispatch_run(n, where) for _ in range(runs_wanted)]
    dispatch, collect, bare_send, bare_poll, *cpu = (statistics.median(r[i] for r in runs) for i in range(8))
    ratio = statistics.median(r[2] / r[0] for r in runs)
    collect_ratio = statistics.median(r[3] / r[1] for r in runs)
    spread = min(r[2] / r[0] for r in runs), max(r[2] / r[0] for r in runs)
    collect_spread = min(r[3] / r[1] for r in runs), max(r[3] / r[1] for r in runs)
    print(f"dispatch: {n:,} recipients, batches of 1,000, loopback NHN server in {where_text[where]}, "
          f"no rate limit (median of {runs_wanted} runs, load {os.getloadavg()[0]:.1f})")
    print(f"  settled before each loop with --runtime {runtime}: {describe()}; thread switch interval "
          f"{sys.getswitchinterval() * 1000:g} ms")
    print(f"  Dispatcher.dispatch_due          {n / dispatch:9,.0f} recipients/s  ({dispatch:.2f} s)")
    print(f"  bare httpx loop, same batches    {n / bare_send:9,.0f} recipients/s  ({bare_send:.2f} s)")
    print(f"  ratio dispatch / bare loop       {ratio:9.2f}x  (goal >= {GOAL_RATIO}x and >= {FLOOR_PER_S:,}/s: "
          f"{'met' if ratio >= GOAL_RATIO and n / dispatch >= FLOOR_PER_S else 'NOT met'}; "
          f"runs {spread[0]:.2f}-{spread[1]:.2f}x)")
    print(f"  Dispatcher.collect_results       {n / collect:9,.0f} results/s     ({collect:.2f} s)")
    print(f"  bare httpx loop, same lists      {n / bare_poll:9,.0f} results/s     ({bare_poll:.2f} s)")
    print(f"  CPU s of this process            dispatch {cpu[0]:.2f} vs bare {cpu[2]:.2f}; collect {cpu[1]:.2f} vs "
          f"bare {cpu[3]:.2f}  (a steadier figure than wall time on a loaded machine)")
    print(f"  ratio collect / bare loop        {collect_ratio:9.2f}x  (goal >= {GOAL_RATIO}x: "
          f"{'met' if collect_ratio >= GOAL_RATIO else 'NOT met'}; "
          f"runs {collect_spread[0]:.2f}-{collect_spread[1]:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--outbox", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server", default="process,thread",
                        help="where the loopback provider runs for the dispatch and collect figures: process "
                             "(its own, as a real provider runs elsewhere), thread (in this process, sharing its "
                             "GIL), or both")
    parser.add_argument("--runtime", choices=sorted(RUNTIMES), default="alimcast",
                        help="the garbage collector and thread switch interval before each timed loop: alimcast "
                             "(alimcast run's, alerts/runtime_gc.py and alerts/runtime_switch.py) or cpython "
                             "(CPython's own)")
    parser.add_argument("--only-dispatch", action="store_true",
                        help="print only the dispatch and collect figures (skip poll-to-first-request and outbox)")
    args = parser.parse_args()
    global runtime
    runtime = args.runtime
    logging.disable(logging.WARNING)
    os.environ.update(SECRETS)

    for where in args.server.split(","):
        report_dispatch(args.recipients, args.runs, where)
    if args.only_dispatch:
        return
    firsts = [one_first_request_run(args.outbox) for _ in range(args.runs)]
    first, match = (statistics.median(r[i] for r in firsts) for i in range(2))
    print(f"poll to first request: one warning reaching {args.outbox:,} people on SQLite (median of {args.runs} runs)")
    print(f"  {first:.2f} s (the match step returned after {match:.2f} s)  "
          f"(goal < {GOAL_FIRST_S:.0f} s: {'met' if first < GOAL_FIRST_S else 'NOT met'})")
    outbox = statistics.median(one_outbox_run(args.outbox) for _ in range(args.runs))
    print(f"outbox: fan_out_pending for one warning reaching {args.outbox:,} people on SQLite "
          f"(median of {args.runs} runs)")
    print(f"  {outbox:.2f} s  ({args.outbox / outbox:,.0f} rows/s; goal < {GOAL_OUTBOX_S:.0f} s: "
          f"{'met' if outbox < GOAL_OUTBOX_S else 'NOT met'})")


if __name__ == "__main__":
    main()
