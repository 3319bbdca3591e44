"""One poll of one feed: fetch (conditionally), parse, follow index links, record health.

``poll_feed`` never raises for bad documents, dead servers or bad config: every such problem becomes
one line in :attr:`PollOutcome.errors` naming the feed, and the feed's state records it. A failure of
one feed must never stop the others, and an operator reads the error lines, not tracebacks.

Retries: only transient failures (timeouts, refused connections, 429, 5xx) are tried again, with
exponential backoff and jitter, a bounded number of times and never past the poll's own deadline.
``Retry-After`` sets the minimum wait; when it would run past the deadline we stop retrying and
record it in ``next_poll_at`` so the next scheduled poll does not knock early (apprise#901: backoff
that used up all retries before ``Retry-After`` expired).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential, wait_random

from feeds.base import FeedParser, ParseError, ParseResult
from feeds.fetch import BUNDLED_PREFIX, Fetcher, FetchError, FetchResult
from feeds.model import Alert
from feeds.registry import get_parser, parser_class
from feeds.state import FeedState, FeedStateStore

log = logging.getLogger(__name__)

#: Shortest time worth starting another fetch with.
_MIN_FETCH_SECONDS = 0.5
#: A poll is early (skipped) only when ``next_poll_at`` is further ahead than this share of the
#: interval, so the scheduler's jitter never makes an ordinary poll look early.
_EARLY_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class FeedSpec:
    name: str
    kind: str
    url: str
    interval_seconds: float = 300.0
    options: Mapping[str, Any] = field(default_factory=dict)
    #: At most this many linked CAP documents are fetched per poll of an index feed.
    max_links: int = 50
    #: Whole-poll budget (fetch, retries, linked documents); default: 80 % of the interval, 10-300 s.
    deadline_seconds: float | None = None
    #: The shorter interval used while the feed has live warnings (pre-warnings included); None: no change.
    active_interval_seconds: float | None = None
    #: Whether the feed has live warnings now (set by whoever knows: the alerts side, after each poll).
    active: bool = False

    @property
    def interval_in_force(self) -> float:
        """Polling follows the weather: the active interval while warnings are live, the ordinary one after."""
        if self.active and self.active_interval_seconds is not None:
            return min(self.active_interval_seconds, self.interval_seconds)
        return self.interval_seconds

    def poll_deadline(self) -> float:
        if self.deadline_seconds is not None:
            return self.deadline_seconds
        return min(300.0, max(10.0, self.interval_in_force * 0.8))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    initial_seconds: float = 1.0
    max_seconds: float = 30.0
    jitter_seconds: float = 1.0


DEFAULT_RETRY = RetryPolicy()


@dataclass(slots=True)
class PollOutcome:
    feed: str
    alerts: list[Alert] = field(default_factory=list)
    #: One line each, naming the feed and the cause.
    errors: list[str] = field(default_factory=list)
    not_modified: bool = False
    #: The parser's ``snapshot`` flag: a live alert missing from a *complete* snapshot has ended.
    snapshot: bool = False
    #: The feed document itself was fetched and parsed. Only then may snapshot semantics be applied:
    #: an error or a 304 says nothing about which alerts ended.
    complete: bool = False
    #: The poll did not run because the server asked us to wait (``Retry-After``) until later.
    skipped: bool = False
    #: Why it was skipped: "Retry-After" only when a server sent one, else "not due yet" (after a failure
    #: the next poll waits one interval).
    skip_reason: str = ""
    #: The WebSub hub and topic the feed document advertises (Atom/RSS), for a push subscription.
    hub: str | None = None
    topic: str | None = None


def poll_feed(
    spec: FeedSpec,
    fetcher: Fetcher,
    store: FeedStateStore,
    *,
    now: datetime | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    force: bool = False,
) -> PollOutcome:
    """Poll ``spec`` once and save its new state; see the module docstring for the guarantees.

    ``force`` polls even when the server asked us to wait (an operator's manual poll).
    """
    now = now or datetime.now(UTC)
    state = store.get(spec.name)
    outcome = PollOutcome(feed=spec.name)
    deadline = time.monotonic() + spec.poll_deadline()

    early_by = timedelta(seconds=spec.interval_in_force * _EARLY_SHARE)
    if not force and state.next_poll_at is not None and now + early_by < state.next_poll_at:
        outcome.skipped = True
        sent_retry_after = state.consecutive_failures > 0 and "(Retry-After " in (state.last_error or "")
        outcome.skip_reason = "waiting (Retry-After)" if sent_retry_after else "not due yet"
        return outcome

    try:
        outcome.snapshot = parser_class(spec.kind).snapshot
        parser = get_parser(spec.kind, spec.options)
    except (ParseError, ValueError, KeyError) as exc:
        return _fail(spec, store, state, outcome, now, f"feed {spec.name}: bad configuration: {exc}", None)

    fetch = _RetryingFetch(fetcher, retry, deadline, sleep)
    try:
        result = fetch(spec.url, etag=state.etag, last_modified=state.last_modified)
    except FetchError as exc:
        _postpone(state, now, exc.retry_after)
        return _fail(spec, store, state, outcome, now, f"feed {spec.name}: {exc}", exc.status)

    if result.not_modified:
        outcome.not_modified = True
        _succeed(spec, store, state, now, result, keep_validators=False, alerts_seen=None)
        return outcome

    assert result.content is not None
    try:
        parsed = _parse(parser, result.content, result.final_url)
    except ParseError as exc:
        return _fail(spec, store, state, outcome, now, f"feed {spec.name}: {_naming(exc, result.final_url)}",
                     result.status)
    # A snapshot ("what is active now") only proves a warning has ended if every row of it was read: one
    # unreadable row must not turn into a 해제 for the warning it held.
    outcome.complete = not parsed.errors
    outcome.alerts.extend(parsed.alerts)
    outcome.hub, outcome.topic = parsed.hub, parsed.topic
    outcome.errors.extend(f"feed {spec.name}: {line}" for line in parsed.errors)

    links_ok = True
    if parsed.links:
        links_ok = _follow_links(spec, fetch, result, parsed.links, outcome, deadline)

    if not links_ok and not outcome.alerts and parsed.links:
        # Nothing usable came out of an index whose every link failed: that is a failed poll.
        return _fail(spec, store, state, outcome, now, outcome.errors[-1], result.status, record_only=True)
    if not links_ok:
        outcome.complete = False
        state.last_error, state.last_error_at = outcome.errors[-1], now
    # Validators are kept only when everything the document promised was fetched; otherwise the next
    # poll would get a 304 and never retry the linked documents that failed.
    _succeed(spec, store, state, now, result, keep_validators=links_ok, alerts_seen=len(outcome.alerts))
    return outcome


class _RetryingFetch:
    """A fetch with tenacity retries inside the poll's deadline."""

    def __init__(self, fetcher: Fetcher, policy: RetryPolicy, deadline: float,
                 sleep: Callable[[float], None]) -> None:
        self.fetcher = fetcher
        self.policy = policy
        self.deadline = deadline
        self.sleep = sleep
        # Exponential backoff plus random jitter (what wait_exponential_jitter does, spelled with
        # parts whose parameters are the same across tenacity 9.x).
        self._backoff = wait_exponential(multiplier=policy.initial_seconds, max=policy.max_seconds) + \
            wait_random(0, policy.jitter_seconds)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _wait(self, retry_state: RetryCallState) -> float:
        wait = self._backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, FetchError) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait

    def _stop(self, retry_state: RetryCallState) -> bool:
        if retry_state.attempt_number >= self.policy.attempts:
            return True
        # tenacity computes the wait before asking whether to stop, so a Retry-After that would end
        # after the deadline stops the retries now instead of sleeping into the next poll.
        return retry_state.upcoming_sleep + _MIN_FETCH_SECONDS > self.remaining()

    def __call__(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        retrying = Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, FetchError) and exc.retryable),
            sleep=self.sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                left = self.remaining()
                if left <= 0:
                    raise FetchError(f"{url}: poll deadline reached before the fetch started", url=url)
                return self.fetcher.fetch(url, etag=etag, last_modified=last_modified,
                                          deadline_seconds=left, reject_html=True)
        raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover


def _parse(parser: FeedParser, content: bytes, origin: str) -> ParseResult:
    """Run a parser; a crash inside it is reported as that document's error, with the traceback logged.

    Parsers are meant to raise only ParseError, but they read hostile input: a parser bug must cost
    one document, not the whole poll loop.
    """
    try:
        return parser.parse(content, origin=origin)
    except ParseError:
        raise
    except Exception as exc:
        log.exception("parser %s crashed on %s", type(parser).__name__, origin)
        raise ParseError(f"parser crashed: {type(exc).__name__}: {exc}") from exc


def _follow_links(spec: FeedSpec, fetch: _RetryingFetch, index: FetchResult, links: list[str],
                  outcome: PollOutcome, deadline: float) -> bool:
    """Fetch and parse the CAP documents an index lists; each failure is one line, the rest go on."""
    unique = list(dict.fromkeys(link.strip() for link in links if link.strip()))
    ok = True
    if len(unique) > spec.max_links:
        outcome.errors.append(f"feed {spec.name}: index lists {len(unique)} CAP links; "
                              f"fetched only the first {spec.max_links}")
        unique = unique[: spec.max_links]
    try:
        cap = get_parser("cap", spec.options)
    except ParseError as exc:
        outcome.errors.append(f"feed {spec.name}: cannot read linked CAP documents: {exc}")
        return False
    for number, link in enumerate(unique):
        if time.monotonic() >= deadline:
            outcome.errors.append(f"feed {spec.name}: poll deadline reached; "
                                  f"{len(unique) - number} linked documents not fetched")
            return False
        url = resolve_link(index.final_url, link)
        if url is None:
            outcome.errors.append(f"feed {spec.name}: {link}: refused link from a remote feed to a "
                                  "local file")
            ok = False
            continue
        try:
            result = fetch(url)
            assert result.content is not None
            outcome.alerts.extend(_parse(cap, result.content, result.final_url).alerts)
        except (FetchError, ParseError) as exc:
            text = str(exc) if isinstance(exc, FetchError) else _naming(exc, url)
            outcome.errors.append(f"feed {spec.name}: linked CAP {text}")
            ok = False
    return ok


def _naming(exc: ParseError, origin: str) -> str:
    """The parser's line, with the document named once (parsers usually name it already)."""
    text = str(exc)
    return text if origin in text else f"{origin}: {text}"


def resolve_link(base: str, link: str) -> str | None:
    """Resolve ``link`` against the URL it came from; ``None`` when a remote feed points at local data."""
    base_scheme = urlsplit(base).scheme.lower()
    if base.startswith(BUNDLED_PREFIX):
        if urlsplit(link).scheme:
            return link
        return BUNDLED_PREFIX + link.rsplit("/", 1)[-1]
    resolved = urljoin(base, link)
    if base_scheme in ("http", "https") and urlsplit(resolved).scheme.lower() not in ("http", "https"):
        return None
    return resolved


def _postpone(state: FeedState, now: datetime, retry_after: float | None) -> None:
    if retry_after is not None:
        state.next_poll_at = now + timedelta(seconds=retry_after)


def _fail(spec: FeedSpec, store: FeedStateStore, state: FeedState, outcome: PollOutcome, now: datetime,
          line: str, status: int | None, *, record_only: bool = False) -> PollOutcome:
    if not record_only:
        outcome.errors.append(line)
    # the caller logs outcome.errors once (the pipeline); logging here too printed every feed error twice
    log.debug("%s", line)
    state.last_error = line
    state.last_error_at = now
    state.consecutive_failures += 1
    state.last_status = status
    ordinary = now + timedelta(seconds=spec.interval_in_force)
    if state.next_poll_at is None or state.next_poll_at < ordinary:
        state.next_poll_at = ordinary
    store.save(state)
    return outcome


def _succeed(spec: FeedSpec, store: FeedStateStore, state: FeedState, now: datetime, result: FetchResult,
             *, keep_validators: bool, alerts_seen: int | None) -> None:
    if result.not_modified:
        pass  # validators we sent are still the right ones
    elif keep_validators:
        state.etag, state.last_modified = result.etag, result.last_modified
    else:
        state.etag = state.last_modified = None
    state.last_success_at = now
    state.consecutive_failures = 0
    state.last_status = result.status
    if alerts_seen is not None:
        state.alerts_seen = alerts_seen
    state.next_poll_at = now + timedelta(seconds=_next_wait(spec, result.max_age))
    store.save(state)


def _next_wait(spec: FeedSpec, max_age: float | None) -> float:
    """The interval in force, or longer when the server's ``Cache-Control: max-age`` says the document will
    not change sooner; never longer than the feed's ordinary interval, so that a careless ``max-age`` of a
    day cannot silence a warning feed."""
    if max_age is None:
        return spec.interval_in_force
    return min(max(spec.interval_in_force, max_age), spec.interval_seconds)
