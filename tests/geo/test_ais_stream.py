"""Live AIS receivers: a loopback TCP server and UDP datagrams feed the stream reader, which stores batches.

What a receiver does in the field is scripted here: lines split across packets, a multi-sentence message
split across reads, a garbage line, the sender hanging up (the reader reconnects), a store that fails
once (the batch is kept and goes again), and ``alimcast run``'s pipeline storing what it reads.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyais.encode import encode_dict

from subscribers.ais import AisDecoder, ReadResult, read_positions
from subscribers.ais_stream import AisSource, AisStream, SourceError, parse_source


def position_lines(mmsi: int, lat: float, lon: float) -> list[bytes]:
    return [(s + "\r\n").encode() for s in encode_dict({"type": 1, "mmsi": mmsi, "lat": lat, "lon": lon},
                                                        talker_id="AI", sentence_type="VDM")]


def static_lines(mmsi: int, name: str) -> list[bytes]:
    """A type 5 message: two sentences (reassembled by the decoder)."""
    lines = encode_dict({"type": 5, "mmsi": mmsi, "shipname": name, "callsign": "D7AB"}, talker_id="AI",
                        sentence_type="VDM", seq_id=3)
    assert len(lines) == 2
    return [(s + "\r\n").encode() for s in lines]


class ScriptedTcpServer:
    """Accepts connections one after another; connection N gets ``scripts[N]`` (chunks, with pauses)."""

    def __init__(self, scripts: list[list[bytes | float]]) -> None:
        self.scripts = scripts
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for script in self.scripts:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                for step in script:
                    if isinstance(step, float):
                        time.sleep(step)
                    else:
                        conn.sendall(step)
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


class Collector:
    def __init__(self, fail_first: int = 0) -> None:
        self.batches: list[ReadResult] = []
        self.fail_first = fail_first
        self.calls = 0

    def __call__(self, source: AisSource, result: ReadResult) -> None:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise RuntimeError("database is locked")
        self.batches.append(result)

    @property
    def positions(self) -> list[tuple[int, float, float]]:
        return [(p.mmsi, round(p.lat, 3), round(p.lon, 3)) for b in self.batches for p in b.positions]

    @property
    def bad(self) -> list[str]:
        return [line for b in self.batches for line in b.bad]


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def stop_streams() -> Iterator[list[AisStream]]:
    streams: list[AisStream] = []
    yield streams
    for stream in streams:
        stream.stop()


@pytest.mark.parametrize(("url", "expected"), [
    ("tcp://127.0.0.1:10110", ("tcp", "127.0.0.1", 10110)),
    ("udp://0.0.0.0:10110", ("udp", "0.0.0.0", 10110)),
    ("positions.nmea", ("file", "", 0)),
    ("file:///var/ais/replay.nmea", ("file", "", 0)),
])
def test_source_urls(url: str, expected: tuple[str, str, int]) -> None:
    source = parse_source(url)
    assert (source.scheme, source.host, source.port) == expected


@pytest.mark.parametrize(("url", "reason"), [
    ("http://example.org/ais", "scheme must be one of tcp, udp, file"),
    ("tcp://127.0.0.1", "expected tcp://host:port"),
    ("udp://:notaport", "expected udp://host:port"),
])
def test_bad_source_urls_name_the_url(url: str, reason: str) -> None:
    with pytest.raises(SourceError, match=reason) as info:
        parse_source(url)
    assert url in str(info.value)


def test_decoder_fed_in_pieces_equals_reading_the_whole() -> None:
    received = datetime(2026, 5, 1, 3, tzinfo=UTC)
    lines = [*position_lines(440000001, 35.1, 129.0), *static_lines(440000001, "HAENAM 7"),
             b"garbage\r\n", *position_lines(440000002, 34.0, 126.5)]
    whole = read_positions(lines, received_at=received)
    decoder = AisDecoder()
    batches = []
    for line in lines:  # a drain after every line: the type-5 fragments straddle two drains
        decoder.feed(line, received)
        batches.append(decoder.drain(received))
    batches.append(decoder.finish())
    merged = ReadResult()
    for batch in batches:
        merged.extend(batch)
    assert merged.positions == whole.positions and merged.names == whole.names == {440000001: "HAENAM 7"}
    assert merged.bad == whole.bad == ["line 4: not an NMEA sentence"]


def test_a_lone_fragment_is_given_up_after_the_timeout() -> None:
    first, _second = static_lines(440000003, "JEJU")
    decoder = AisDecoder()
    t0 = datetime(2026, 5, 1, 3, tzinfo=UTC)
    decoder.feed(first, t0)
    assert decoder.drain(t0.replace(second=30)).bad == []
    assert decoder.drain(t0.replace(minute=2)).bad == ["line 1: multi-sentence message incomplete (1 of 2 fragments)"]


def test_tcp_stream_reads_across_packets_and_reconnects(stop_streams: list[AisStream]) -> None:
    a = b"".join(position_lines(440000011, 35.5, 129.5))
    b5 = static_lines(440000011, "DOKDO")
    server = ScriptedTcpServer([
        [a[:20], 0.05, a[20:], b5[0], 0.05, b5[1], b"not nmea at all\r\n"],  # then the sender hangs up
        [b"".join(position_lines(440000012, 34.25, 127.75)), 0.3],
    ])
    collector = Collector()
    stream = AisStream(parse_source(f"tcp://127.0.0.1:{server.port}"), collector, flush_seconds=0.1,
                       backoff_max_seconds=1)
    stop_streams.append(stream)
    stream.start()
    wait_for(lambda: len(collector.positions) == 2)
    assert collector.positions == [(440000011, 35.5, 129.5), (440000012, 34.25, 127.75)]
    assert server.accepted == 2 and stream.connections == 2
    assert [b.names for b in collector.batches if b.names] == [{440000011: "DOKDO"}]
    assert collector.bad == ["line 4: not an NMEA sentence"]
    server.close()


def test_udp_datagrams(stop_streams: list[AisStream]) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    collector = Collector()
    stream = AisStream(parse_source(f"udp://127.0.0.1:{port}"), collector, flush_seconds=0.1)
    stop_streams.append(stream)
    stream.start()
    wait_for(lambda: stream.connections == 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"".join(position_lines(440000021, 33.5, 126.5)), ("127.0.0.1", port))
        # no trailing newline: a datagram ends its last line
        sender.sendto(b"".join(position_lines(440000022, 33.25, 126.25)).rstrip(), ("127.0.0.1", port))
    wait_for(lambda: len(collector.positions) == 2)
    assert collector.positions == [(440000021, 33.5, 126.5), (440000022, 33.25, 126.25)]


def test_a_refused_batch_goes_again_with_the_next(stop_streams: list[AisStream]) -> None:
    server = ScriptedTcpServer([[b"".join(position_lines(440000031, 35.0, 129.0)), 0.4,
                                 b"".join(position_lines(440000032, 35.0, 129.25)), 0.5]])
    collector = Collector(fail_first=1)
    stream = AisStream(parse_source(f"tcp://127.0.0.1:{server.port}"), collector, flush_seconds=0.1)
    stop_streams.append(stream)
    stream.start()
    wait_for(lambda: len(collector.positions) == 2)
    assert collector.calls >= 2 and [m for m, _, _ in collector.positions] == [440000031, 440000032]
    server.close()


def test_stop_is_prompt_while_the_receiver_is_down() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.close()  # nothing listens: every connection is refused
    stream = AisStream(parse_source(f"tcp://127.0.0.1:{port}"), Collector(), backoff_max_seconds=60)
    stream.start()
    time.sleep(0.3)
    started = time.monotonic()
    stream.stop()
    assert time.monotonic() - started < 2.0 and stream._thread is not None and not stream._thread.is_alive()


def test_a_file_source_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "replay.nmea"
    path.write_bytes(b"".join(position_lines(440000041, 36.0, 129.5)))
    collector = Collector()
    AisStream(parse_source(str(path)), collector).run()
    assert collector.positions == [(440000041, 36.0, 129.5)]


def test_cli_reads_a_live_receiver_until_ctrl_c(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from sqlmodel import Session

    from alerts.db import make_engine, upgrade
    from subscribers.store import add_subscriber
    from subscribers.vessels import add_vessel

    db = tmp_path / "cli.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    with Session(engine) as s:
        add_vessel(s, 440000051, "새마을호", subscribers=[add_subscriber(s, "01012345678", ["S1251100"]).id])
        s.commit()
    engine.dispose()
    templates = "".join(f'[templates.{k}]\ncode = "{k.upper()}1"\ntext = "x"\n\n'
                        for k in ("alert", "update", "cancel"))
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n\n[provider]\nkind = "dryrun"\n\n{templates}'
                      "[vessels]\nais_flush_seconds = 0.2\n", encoding="utf-8")
    server = ScriptedTcpServer([[b"".join(position_lines(440000051, 36.5, 126.0)), 30.0]])
    root = Path(__file__).resolve().parents[2]
    # Ctrl-C as from a terminal: a suite started in the background (`cmd &` without job control) passes an
    # ignored SIGINT down to every child, and Python then leaves it ignored: the child never stopped
    terminal = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "runpy.run_module('alerts.cli', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", terminal, "vessels", "ingest-ais",
                             f"tcp://127.0.0.1:{server.port}", "--config", str(config)],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root), "PYTHONFAULTHANDLER": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the first batch is stored
        assert "1 positions from 1 vessels" in line and "stored 1 for 1 registered vessels" in line
        proc.send_signal(signal.SIGINT)
        # communicate drains the pipes while waiting: a child blocked on a full stderr pipe never exits
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            # say where it hangs, from the child's own faulthandler (PYTHONFAULTHANDLER: every thread's stack on
            # SIGABRT); that is how the ignored SIGINT above was found
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"ingest-ais did not stop within 30 s of Ctrl-C; its threads then:\n{err[-6000:]}")
        assert proc.returncode == 0, err[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()


HOSTILE = [
    b'{"mmsi": 440000061, "lat": 35, "lon": 129, "at": "0001-01-01T00:00:00+01:00"}\r\n',  # overflows to UTC
    b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}\r\n",  # nesting deeper than the JSON reader recurses
    b"!AIVDM,1,1,,A,\xff\xfe\x00garbage,0*00\r\n",
]


def test_hostile_lines_are_bad_lines_never_fatal() -> None:
    decoder = AisDecoder()
    received = datetime(2026, 5, 1, 3, tzinfo=UTC)
    for line in [*HOSTILE, *position_lines(440000062, 35.0, 129.0)]:
        decoder.feed(line, received)
    result = decoder.finish()
    assert [p.mmsi for p in result.positions] == [440000062]
    assert len(result.bad) == len(HOSTILE) and all(b.startswith(f"line {i}:") for i, b in enumerate(result.bad, 1))


def test_a_hostile_line_does_not_stop_a_live_receiver(stop_streams: list[AisStream]) -> None:
    server = ScriptedTcpServer([[b"".join(position_lines(440000063, 35.0, 129.0)), *HOSTILE,
                                 b"".join(position_lines(440000064, 35.5, 129.5)), 1.0]])
    collector = Collector()
    stream = AisStream(parse_source(f"tcp://127.0.0.1:{server.port}"), collector, flush_seconds=0.1)
    stop_streams.append(stream)
    stream.start()
    wait_for(lambda: len(collector.positions) == 2)
    assert stream._thread is not None and stream._thread.is_alive()
    assert len(collector.bad) == len(HOSTILE)
    server.close()
