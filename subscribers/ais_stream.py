"""A live AIS receiver feed: NMEA lines over TCP (AIS-catcher, rtl-ais, a coast station's server) or UDP.

The warning follows the boat only if the boat's position is fresh, so ``alimcast run`` keeps a reader
per configured source in a thread: lines are decoded as they arrive (time-stamped on receipt when the
sentence has no tag block) and handed to a sink in batches every ``flush_seconds``. A dropped connection
is re-opened with exponential backoff (tenacity, waiting on the stop event so Ctrl-C is never delayed);
each failure is one log line naming the source; bad lines are reported by the decoder and skipped.

Sources: ``tcp://host:port`` (we connect and read), ``udp://host:port`` (we bind and receive datagrams),
or a file path / ``file://`` URL (read once, for replays and ``run --once``).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from subscribers.ais import AisDecoder, ReadResult

log = logging.getLogger("alimcast.subscribers.ais_stream")

SCHEMES = ("tcp", "udp", "file")
#: A line longer than this is not NMEA (82 characters plus a tag block): the buffer is cut there.
MAX_LINE = 4096
_POLL_S = 0.5
#: Positions kept while the store refuses them (a database outage); a vessel's latest fix is what matters.
MAX_UNSENT = 200_000


class SourceError(ValueError):
    """A source URL that cannot be used (the message names it)."""


@dataclass(frozen=True, slots=True)
class AisSource:
    url: str
    scheme: str
    host: str = ""
    port: int = 0
    path: Path | None = None

    @property
    def streaming(self) -> bool:
        return self.scheme != "file"


def parse_source(url: str) -> AisSource:
    """``tcp://host:port``, ``udp://host:port`` or a file; raises :class:`SourceError` naming the URL."""
    text = url.strip()
    if "://" not in text:
        return AisSource(url, "file", path=Path(text))
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES:
        raise SourceError(f"AIS source {url!r}: scheme must be one of {', '.join(SCHEMES)}")
    if parts.scheme == "file":
        return AisSource(url, "file", path=Path(parts.path))
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or not port:
        raise SourceError(f"AIS source {url!r}: expected {parts.scheme}://host:port")
    return AisSource(url, parts.scheme, parts.hostname, port)


Sink = Callable[[AisSource, ReadResult], None]


class AisStream:
    """Reads one source until stopped, handing decoded batches to ``sink`` (called from the reader thread)."""

    def __init__(self, source: AisSource, sink: Sink, *, flush_seconds: float = 5.0,
                 backoff_max_seconds: float = 60.0) -> None:
        self.source = source
        self.sink = sink
        self.flush_seconds = flush_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.decoder = AisDecoder(source="ais")
        self.stop_event = threading.Event()
        self.connections = 0
        self._thread: threading.Thread | None = None
        self._last_flush = time.monotonic()
        self._unsent: ReadResult | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"ais {self.source.url}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Read until stopped (a file: until its end), reconnecting after failures.

        Backoff grows while connections fail and starts again after one that delivered data, so a receiver
        that drops now and then over weeks is not left waiting the maximum each time.
        """
        if not self.source.streaming:
            self.read_file()
            return
        try:
            while not self.stop_event.is_set():
                retrying = Retrying(
                    retry=retry_if_exception_type(Exception),
                    wait=wait_exponential(multiplier=1, min=1, max=self.backoff_max_seconds),
                    sleep=self._wait,
                    before_sleep=self._log_retry,
                    reraise=True,
                )
                try:
                    retrying(self._session_until_stopped)
                except Exception:  # noqa: BLE001 - only when stopped while failing
                    break
                self._wait(1.0)  # a session that delivered data ended: reconnect soon, backoff reset
        finally:
            self.flush(force=True)

    def _wait(self, seconds: float) -> None:
        """Tenacity's sleep between reconnects: wakes at once on stop, and keeps handing over batches (one
        the store refused goes again while the receiver is down)."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set() and (left := deadline - time.monotonic()) > 0:
            self.stop_event.wait(min(left, self.flush_seconds))
            self.flush()

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("AIS %s: %s; reconnecting in %.0f s", self.source.url, error or "failed", wait)

    def _session_until_stopped(self) -> None:
        """One connection (or bound socket). Returns when it delivered data before it ended (or on stop);
        raises when it failed or ended empty, so the backoff grows. Anything unexpected is a failure to
        retry, never the end of the reader."""
        if self.stop_event.is_set():
            return
        lines_before = self.decoder.lines_seen
        if self.source.scheme == "tcp":
            self._read_tcp()
        else:
            self._read_udp()
        if not self.stop_event.is_set() and self.decoder.lines_seen == lines_before:
            raise ConnectionResetError("the sender closed the connection")

    # -- readers ---------------------------------------------------------------------------------------
    def read_file(self) -> None:
        assert self.source.path is not None
        try:
            with self.source.path.open("rb") as handle:
                for line in handle:
                    self.decoder.feed(line, datetime.now(UTC))
        except OSError as exc:
            log.error("AIS %s: cannot read: %s", self.source.url, exc.strerror or exc)
        result = self.decoder.finish()
        self._hand_over(result)

    def _read_tcp(self) -> None:
        with socket.create_connection((self.source.host, self.source.port), timeout=10) as sock:
            self.connections += 1
            log.info("AIS %s: connected", self.source.url)
            sock.settimeout(_POLL_S)
            buffer = b""
            while not self.stop_event.is_set():
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    self.flush()
                    continue
                if not chunk:
                    break
                buffer = self._lines(buffer + chunk)
                self.flush()
            if buffer.strip():
                self.decoder.feed(buffer, datetime.now(UTC))

    def _read_udp(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.source.host, self.source.port))
            sock.settimeout(_POLL_S)
            self.connections += 1
            log.info("AIS %s: listening", self.source.url)
            while not self.stop_event.is_set():
                try:
                    datagram = sock.recv(65536)
                except TimeoutError:
                    self.flush()
                    continue
                rest = self._lines(datagram)
                if rest.strip():
                    self.decoder.feed(rest, datetime.now(UTC))  # a datagram ends its last line
                self.flush()

    def _lines(self, data: bytes) -> bytes:
        """Feed the complete lines; return the unfinished tail (cut if it can no longer be NMEA)."""
        *lines, rest = data.split(b"\n")
        received = datetime.now(UTC)
        for line in lines:
            self.decoder.feed(line, received)
        if len(rest) > MAX_LINE:
            self.decoder.feed(rest[:MAX_LINE], received)  # reported as a bad line, never buffered forever
            return b""
        return rest

    # -- hand-over -------------------------------------------------------------------------------------
    def flush(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_flush < self.flush_seconds:
            return
        self._last_flush = time.monotonic()
        self._hand_over(self.decoder.drain(datetime.now(UTC)))

    def _hand_over(self, result: ReadResult) -> None:
        if self._unsent is not None:
            self._unsent.extend(result)
            result, self._unsent = self._unsent, None
        if not (result.positions or result.bad or result.names):
            return
        try:
            self.sink(self.source, result)
        except Exception as exc:  # noqa: BLE001 - a failing store must not kill the reader
            # nothing is lost: the batch goes again with the next one (bounded, a receiver never stops)
            log.error("AIS %s: storing %d positions failed (%s); kept for the next batch", self.source.url,
                      len(result.positions), exc)
            result.bad.clear()  # already reported once
            if len(result.positions) <= MAX_UNSENT:
                self._unsent = result
            else:
                log.error("AIS %s: %d unsent positions is over the %d kept; the oldest are dropped",
                          self.source.url, len(result.positions), MAX_UNSENT)
                result.positions = result.positions[-MAX_UNSENT:]
                self._unsent = result
