"""``/metrics`` in the Prometheus text format: what an operator alerts on during a storm.

Two kinds of numbers, because several workers share one database:

* read from the database (the same for whichever worker or web process is scraped): alerts ingested, the
  outbox's depth by priority, deliveries by status (sends and their results), feed errors, the live workers.
  A custom collector, so nothing drifts between processes. What moves during a storm (the queue, rows in
  flight or awaiting their result) is read at every scrape from the status index, so its cost follows the
  work outstanding, not the table; the figures that need the whole table (final statuses, alerts ingested)
  are cached per process and refreshed in the background at most every ``WHOLE_TABLE_SECONDS`` (a GROUP BY
  over millions of delivery rows took seconds per scrape).
* counted in this process (each ``alimcast run`` exposes its own, ``[metrics] port``): provider requests
  and recipients by outcome, the provider's latency, 429s, batches recovered from a dead worker's lease.
  Prometheus sums them over the workers (``sum without (instance)``).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alerts.delivery.providers.base import OutgoingMessage, PreparedSend, Provider, ProviderError, SendOutcome
from alerts.models import AlertRecord, Delivery, FeedStateRow
from alerts.workers import fleet_status

log = logging.getLogger("alimcast.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: This process's registry (not the library's global one: tests and the web app build their own views).
REGISTRY = CollectorRegistry(auto_describe=True)

PROVIDER_REQUESTS = Counter("alimcast_provider_requests", "Send requests to the provider, by outcome "
                            "(accepted: answered with per-recipient results; refused: the whole request "
                            "refused; unknown: no answer, it may have arrived)", ["outcome"], registry=REGISTRY)
PROVIDER_RECIPIENTS = Counter("alimcast_provider_recipients", "Recipients in send requests, by outcome "
                              "(accepted, rejected: refused one by one, retry: refused for now, "
                              "refused/unknown: as their whole request)", ["outcome"], registry=REGISTRY)
PROVIDER_LATENCY = Histogram("alimcast_provider_latency_seconds", "Time from a send request's start to its "
                             "answer (or failure), with the adapter's own retries",
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60), registry=REGISTRY)
RATE_LIMITED = Counter("alimcast_provider_rate_limited", "Send requests the provider refused with HTTP 429 "
                       "(too many requests): none are expected with the shared window", registry=REGISTRY)
LEASES_RECOVERED = Counter("alimcast_leases_recovered", "Batches taken over from a worker that died or lost "
                           "its answer (re-sent under the same idempotency key)", registry=REGISTRY)


class DatabaseCollector(Collector):
    """Numbers read from the shared database at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Metric]:
        return []  # collected lazily: a scrape, not the registration, reads the database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("alimcast_database_up", "1 when the database answered this scrape")
        try:
            metrics = list(self._read())
        except Exception:  # noqa: BLE001 - a scrape during a database restart says so instead of failing
            log.warning("metrics: database unavailable", exc_info=log.isEnabledFor(logging.DEBUG))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _read(self) -> Iterator[Metric]:
        whole = _whole_table(self.engine)
        with Session(self.engine) as session:
            live = session.exec(select(Delivery.status, Delivery.priority, func.count())
                                .where(col(Delivery.status).in_(LIVE_STATUSES))
                                .group_by(Delivery.status, Delivery.priority)).all()
            feeds = list(session.exec(select(FeedStateRow)))
        by_priority = [(priority, count) for status, priority, count in live if status == "queued"]
        live_by_status: dict[str, int] = {}
        for status, _priority, count in live:
            live_by_status[status] = live_by_status.get(status, 0) + int(count)
        by_status = [*live_by_status.items(), *whole.final_by_status.items()]
        alerts = whole.alerts
        ingested = CounterMetricFamily("alimcast_alerts_ingested", "Alerts stored (every version of a warning; "
                                       f"read at most every {WHOLE_TABLE_SECONDS:.0f} s)")
        ingested.add_metric([], int(alerts))
        yield ingested
        depth = GaugeMetricFamily("alimcast_queue_depth", "Outbox rows waiting to be sent, by priority "
                                  "(higher goes first)", labels=["priority"])
        for priority, count in by_priority:
            depth.add_metric([str(priority)], int(count))
        yield depth
        deliveries = GaugeMetricFamily("alimcast_deliveries", "Outbox rows by status (queued; sending: in "
                                       "flight; accepted: sent, awaiting the result; carried: went in another "
                                       "row's message; these read at every scrape. delivered, fallback_sent, "
                                       "failed, uncertain, suppressed: final, read at most every "
                                       f"{WHOLE_TABLE_SECONDS:.0f} s)", labels=["status"])
        for status, count in by_status:
            deliveries.add_metric([str(status)], int(count))
        yield deliveries
        failures = GaugeMetricFamily("alimcast_feed_consecutive_failures", "Failed polls in a row, per feed "
                                     "(0 when its last poll worked)", labels=["feed"])
        last_ok = GaugeMetricFamily("alimcast_feed_last_success_timestamp_seconds", "When a feed was last "
                                    "polled successfully (Unix time)", labels=["feed"])
        for feed in feeds:
            failures.add_metric([feed.name], feed.consecutive_failures)
            if feed.last_success_at is not None:
                last_ok.add_metric([feed.name], feed.last_success_at.timestamp())
        yield failures
        yield last_ok
        workers = GaugeMetricFamily("alimcast_workers", "Workers in the registry, by state", labels=["state"])
        fleet = fleet_status(self.engine, include_stopped=False)
        states = {"alive": 0, "dead": 0}
        for w in fleet.workers:
            states[w.state] = states.get(w.state, 0) + 1
        for state, count in states.items():
            workers.add_metric([state], count)
        yield workers
        poller = GaugeMetricFamily("alimcast_polling_workers", "Live workers holding the polling lease "
                                   "(alert when not 1)")
        poller.add_metric([], sum(1 for w in fleet.workers if w.polls))
        yield poller


#: Statuses an outbox row passes through before its final one: counted at every scrape (the status index).
LIVE_STATUSES = ("queued", "sending", "accepted", "carried")
#: The whole-table figures (final statuses, alerts ingested) are at most this old (refreshed in the background).
WHOLE_TABLE_SECONDS = 30.0


@dataclass(slots=True)
class _WholeTable:
    """Figures that need a pass over whole tables, as last read, and when."""

    alerts: int
    final_by_status: dict[str, int]
    read_at: float


class _WholeTableCache:
    """One engine's whole-table figures: read in the scrape that first needs them, then refreshed in a
    background thread (one at a time) when a scrape finds them older than ``WHOLE_TABLE_SECONDS``, so a scrape
    never waits for the pass itself. A failed refresh keeps the last figures and is tried at a later scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.figures: _WholeTable | None = None
        self.lock = threading.Lock()
        self.refreshing = False

    def get(self) -> _WholeTable:
        with self.lock:
            figures = self.figures
            stale = figures is not None and time.monotonic() - figures.read_at >= WHOLE_TABLE_SECONDS
            start = stale and not self.refreshing
            if start:
                self.refreshing = True
        if figures is None:
            figures = self.figures = _read_whole_table(self.engine)
        elif start:
            threading.Thread(target=self._refresh, name="metrics-refresh", daemon=True).start()
        return figures

    def _refresh(self) -> None:
        try:
            self.figures = _read_whole_table(self.engine)
        except Exception:  # noqa: BLE001 - the last figures stay; the next stale scrape tries again
            log.warning("metrics: could not refresh the outbox totals", exc_info=log.isEnabledFor(logging.DEBUG))
        finally:
            with self.lock:
                self.refreshing = False


def _read_whole_table(engine: Engine) -> _WholeTable:
    with Session(engine) as session:
        alerts = session.exec(select(func.count()).select_from(AlertRecord)).one()
        # every status (the plainest pass: an index-only scan where the planner can), the live ones then left out
        by_status = session.exec(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    final = {str(status): int(count) for status, count in by_status if status not in LIVE_STATUSES}
    return _WholeTable(int(alerts), final, time.monotonic())


_caches: weakref.WeakKeyDictionary[Engine, _WholeTableCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _whole_table(engine: Engine) -> _WholeTable:
    with _caches_lock:
        cache = _caches.get(engine)
        if cache is None:
            cache = _caches[engine] = _WholeTableCache(engine)
    return cache.get()


def forget_cached(engine: Engine) -> None:
    """Drop this engine's cached whole-table figures (the next scrape reads them again): for tests and tools
    that need the exact figure now."""
    with _caches_lock:
        _caches.pop(engine, None)


def registry_for(engine: Engine) -> CollectorRegistry:
    """This process's counters plus the database's numbers, as one registry to expose."""
    combined = CollectorRegistry(auto_describe=False)
    combined.register(_Forward(REGISTRY))
    combined.register(DatabaseCollector(engine))
    return combined


def exposition(engine: Engine) -> bytes:
    """The text a scrape of ``/metrics`` returns (content type :data:`CONTENT_TYPE`)."""
    return generate_latest(registry_for(engine))


def serve(engine: Engine, port: int, host: str = "127.0.0.1") -> int:
    """``[metrics] port``: serve ``/metrics`` from this process on ``host:port`` (0: any free port), in a
    daemon thread; returns the port."""
    server, _thread = start_http_server(port, addr=host, registry=registry_for(engine))
    return int(server.server_address[1])


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(self.registry.collect())


class InstrumentedProvider(Provider):
    """The configured provider, its requests counted and timed (wraps it; changes nothing it does)."""

    def __init__(self, inner: Provider) -> None:  # noqa: D107 - no settings of its own
        self.inner = inner
        self.settings = inner.settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.inner.kind

    @property
    def max_batch(self) -> int:  # type: ignore[override]
        return self.inner.max_batch

    def send(self, messages: Sequence[OutgoingMessage], *, idempotency_key: str) -> list[SendOutcome]:
        return self._timed(messages, lambda: self.inner.send(messages, idempotency_key=idempotency_key))

    def prepare(self, messages: Sequence[OutgoingMessage], *, idempotency_key: str) -> PreparedSend:
        """The inner provider's prepared request, its send counted and timed; its answer's time passed on."""
        inner = self.inner.prepare(messages, idempotency_key=idempotency_key)

        def run(prepared: PreparedSend) -> list[SendOutcome]:
            try:
                return self._timed(messages, inner.send)
            finally:
                prepared.answered_at = inner.answered_at

        return PreparedSend(messages, idempotency_key, run)

    def _timed(self, messages: Sequence[OutgoingMessage], send: Callable[[], list[SendOutcome]]) -> list[SendOutcome]:
        started = time.monotonic()
        try:
            outcomes = send()
        except ProviderError as exc:
            PROVIDER_LATENCY.observe(time.monotonic() - started)
            outcome = "unknown" if exc.unknown_outcome else "refused"
            PROVIDER_REQUESTS.labels(outcome).inc()
            PROVIDER_RECIPIENTS.labels(outcome).inc(len(messages))
            if "429" in str(exc):
                RATE_LIMITED.inc()
            raise
        except Exception:
            PROVIDER_LATENCY.observe(time.monotonic() - started)
            PROVIDER_REQUESTS.labels("unknown").inc()
            PROVIDER_RECIPIENTS.labels("unknown").inc(len(messages))
            raise
        PROVIDER_LATENCY.observe(time.monotonic() - started)
        PROVIDER_REQUESTS.labels("accepted").inc()
        for o in outcomes:
            PROVIDER_RECIPIENTS.labels("accepted" if o.accepted else "retry" if o.retryable else "rejected").inc()
        return outcomes

    def poll_results(self, pending):  # type: ignore[no-untyped-def]
        return self.inner.poll_results(pending)

    def lookup(self, messages, *, idempotency_key, sent_after):  # type: ignore[no-untyped-def]
        return self.inner.lookup(messages, idempotency_key=idempotency_key, sent_after=sent_after)


def metrics_port(raw: dict[str, Any]) -> tuple[int | None, str]:
    """``[metrics] port`` (and ``host``, default 127.0.0.1) from the config: where ``alimcast run`` serves
    ``/metrics``; no port, no server. A bad value raises ValueError naming the key."""
    table = raw.get("metrics") or {}
    if not isinstance(table, dict):
        raise ValueError("[metrics]: must be a table")
    port = table.get("port")
    host = table.get("host", "127.0.0.1")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        raise ValueError(f"[metrics] port: must be a whole number 0..65535, not {port!r}")
    if not isinstance(host, str) or not host:
        raise ValueError(f"[metrics] host: must be an address, not {host!r}")
    return port, host
