"""Vessel positions from AIS NMEA (``!AIVDM``/``!AIVDO``) or JSON lines, one bad line never stopping the rest.

pyais decodes sentences and payloads; the loop over lines is ours because an operator needs
"line 17: why" for every rejected line, and pyais' own stream silently skips them. Multi-sentence
messages are reassembled here (contiguous fragments with the same sequence id, channel and talker).

AIS carries no date: a fix takes its time from the tag block ``\\c:<unix time>*hh\\`` when the tag block's
checksum is right, otherwise from ``received_at`` (the time the caller received the data). Latitude 91 /
longitude 181 mean "not available" and such reports are dropped (counted in ``unavailable``).
Position reports are types 1, 2, 3 (Class A), 18, 19 (Class B) and 27 (long range); types 5 and 24
(static data) contribute vessel names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pyais.exceptions import InvalidNMEAMessageException, UnknownMessageException
from pyais.messages import AISSentence, NMEAMessage, NMEASentenceFactory

POSITION_TYPES = frozenset({1, 2, 3, 18, 19, 27})
NAME_TYPES = frozenset({5, 19, 21, 24})
MAX_MMSI = 999_999_999
#: Earliest tag-block time accepted (AIS tag blocks in the wild sometimes hold garbage).
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Position:
    mmsi: int
    lat: float
    lon: float
    at: datetime
    source: str = "ais"


@dataclass
class ReadResult:
    positions: list[Position] = field(default_factory=list)
    #: Vessel names seen in static data (type 5, 19, 24A), last one wins.
    names: dict[int, str] = field(default_factory=dict)
    #: "line N: why" for every rejected line.
    bad: list[str] = field(default_factory=list)
    lines: int = 0
    #: Well-formed messages that carry no position (other AIS types, other NMEA sentences).
    ignored: int = 0
    #: Position reports whose position was "not available" (91/181) or out of range.
    unavailable: int = 0

    @property
    def mmsis(self) -> set[int]:
        return {p.mmsi for p in self.positions}

    def extend(self, other: ReadResult) -> None:
        """Add a later batch to this one (a batch the store refused goes again with the next)."""
        self.positions.extend(other.positions)
        self.names.update(other.names)
        self.bad.extend(other.bad)
        self.lines += other.lines
        self.ignored += other.ignored
        self.unavailable += other.unavailable


@dataclass
class _Pending:
    line: int
    parts: list[AISSentence]
    at: datetime | None
    received: datetime


#: A first fragment whose followers have not come within this long is reported and dropped (streams).
FRAGMENT_TIMEOUT = timedelta(seconds=60)


class AisDecoder:
    """Lines in, positions out, one line at a time: a file read whole and a receiver streaming for days
    go through the same code. Fragments of a multi-sentence message may straddle :meth:`drain` calls."""

    def __init__(self, source: str = "ais") -> None:
        self.source = source
        self.result = ReadResult()
        self._pending: dict[tuple[Any, ...], _Pending] = {}
        self._number = 0

    def feed(self, raw_line: str | bytes, received: datetime) -> None:
        """Decode one line; ``received`` (aware) is the time of a fix without a tag-block time."""
        self._number += 1
        result = self.result
        result.lines += 1
        line = raw_line.decode("ascii", errors="replace") if isinstance(raw_line, bytes) else raw_line
        line = line.strip()
        if not line or line.startswith("#"):
            return
        if line.startswith("{"):
            try:
                _json_line(result, self._number, line, self.source)
            except Exception as exc:  # noqa: BLE001 - e.g. nesting too deep, a year-1 time: a bad line
                result.bad.append(f"line {self._number}: unreadable JSON: {type(exc).__name__}"[:300])
            return
        try:
            _nmea_line(result, self._pending, self._number, line, received, self.source)
        except _Bad as exc:
            result.bad.append(f"line {self._number}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one hostile line must never stop a receiver
            result.bad.append(f"line {self._number}: unreadable: {type(exc).__name__}: {exc}"[:300])

    @property
    def lines_seen(self) -> int:
        """Lines fed since the decoder was made (drains do not reset it)."""
        return self._number

    def drain(self, now: datetime | None = None) -> ReadResult:
        """What was decoded since the last drain; fragments older than ``FRAGMENT_TIMEOUT`` are given up."""
        if now is not None:
            for slot, p in list(self._pending.items()):
                if now - p.received > FRAGMENT_TIMEOUT:
                    del self._pending[slot]
                    self.result.bad.append(_incomplete(p))
        out, self.result = self.result, ReadResult()
        return out

    def finish(self) -> ReadResult:
        """The end of the input: every message still missing fragments is reported."""
        for p in self._pending.values():
            self.result.bad.append(_incomplete(p))
        self._pending.clear()
        return self.drain()


def _incomplete(p: _Pending) -> str:
    return f"line {p.line}: multi-sentence message incomplete ({len(p.parts)} of {p.parts[0].frag_cnt} fragments)"


def read_positions(lines: Iterable[str | bytes], *, received_at: datetime | None = None,
                   source: str = "ais") -> ReadResult:
    """Decode every line; ``received_at`` (aware) is the time of fixes without a tag-block time (default now)."""
    received = received_at or datetime.now(UTC)
    if received.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    decoder = AisDecoder(source)
    for raw_line in lines:
        decoder.feed(raw_line, received)
    return decoder.finish()


class _Bad(Exception):
    pass


def _nmea_line(result: ReadResult, pending: dict[tuple[Any, ...], _Pending], number: int, line: str,
               received: datetime, source: str) -> None:
    try:
        sentence = NMEASentenceFactory.produce(line.encode("ascii", errors="replace"))
    except UnknownMessageException:
        if line.startswith(("!", "$", "\\")):
            result.ignored += 1  # another NMEA sentence (e.g. $PGHP): not ours to judge
            return
        raise _Bad("not an NMEA sentence") from None
    except (InvalidNMEAMessageException, ValueError, IndexError) as exc:
        raise _Bad(f"malformed AIS sentence: {exc}") from None
    if not isinstance(sentence, AISSentence):
        result.ignored += 1
        return
    if not sentence.is_valid:
        raise _Bad("checksum mismatch")
    at = _tag_time(sentence, received)
    if sentence.is_single:
        _decode(result, number, sentence, at or received, source)
        return
    slot = (sentence.seq_id, sentence.channel, sentence.talker_id, sentence.frag_cnt)
    if sentence.frag_num == 1:
        if slot in pending:
            result.bad.append(_incomplete(pending[slot]))
        pending[slot] = _Pending(number, [sentence], at, received)
        return
    current = pending.get(slot)
    if current is None or len(current.parts) + 1 != sentence.frag_num:
        raise _Bad(f"fragment {sentence.frag_num} of {sentence.frag_cnt} without the fragments before it")
    current.parts.append(sentence)
    if len(current.parts) == sentence.frag_cnt:
        del pending[slot]
        message = NMEAMessage.assemble_from_iterable(current.parts)
        _decode(result, current.line, message, current.at or at or received, source)


def _tag_time(sentence: AISSentence, received: datetime) -> datetime | None:
    tb = sentence.tag_block
    if tb is None:
        return None
    try:
        tb.init()
        if not tb.is_valid or tb.receiver_timestamp is None:
            return None
        value = float(tb.receiver_timestamp)
    except (ValueError, TypeError, AttributeError):
        return None
    if value > 1e11:  # some receivers write milliseconds
        value /= 1000.0
    try:
        at = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return at if _EARLIEST <= at <= received + timedelta(days=1) else None


def _decode(result: ReadResult, number: int, message: AISSentence, at: datetime, source: str) -> None:
    try:
        decoded = message.decode()
    except Exception as exc:  # noqa: BLE001 - pyais raises many types for bad payloads
        result.bad.append(f"line {number}: cannot decode AIS payload: {exc}")
        return
    msg_type = int(getattr(decoded, "msg_type", 0))
    mmsi = int(getattr(decoded, "mmsi", 0) or 0)
    if msg_type in NAME_TYPES:
        name = str(getattr(decoded, "shipname", "") or "").replace("@", " ").strip()
        if name and 0 < mmsi <= MAX_MMSI:
            result.names[mmsi] = name
        if msg_type not in POSITION_TYPES:
            return
    if msg_type not in POSITION_TYPES:
        result.ignored += 1
        return
    if not 0 < mmsi <= MAX_MMSI:
        result.bad.append(f"line {number}: MMSI {mmsi} out of range")
        return
    lat, lon = float(decoded.lat), float(decoded.lon)  # type: ignore[union-attr]
    if not _available(lat, lon):
        result.unavailable += 1
        return
    result.positions.append(Position(mmsi, round(lat, 6), round(lon, 6), at, source))


def _available(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90.0 and abs(lon) <= 180.0


def _json_line(result: ReadResult, number: int, line: str, source: str) -> None:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        result.bad.append(f"line {number}: not JSON: {exc.msg}")
        return
    try:
        result.positions.append(position_from_json(data, source="json" if source == "ais" else source))
    except ValueError as exc:
        result.bad.append(f"line {number}: {exc}")


def position_from_json(data: Any, *, source: str = "json") -> Position:
    """``{"mmsi": 440123456, "lat": 35.1, "lon": 129.0, "at": "2026-05-01T03:00:00Z"}`` -> Position."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    for key in ("mmsi", "lat", "lon", "at"):
        if key not in data:
            raise ValueError(f"missing {key!r}")
    mmsi, lat, lon, at = data["mmsi"], data["lat"], data["lon"], data["at"]
    if isinstance(mmsi, str) and mmsi.isdigit():
        mmsi = int(mmsi)
    if isinstance(mmsi, bool) or not isinstance(mmsi, int) or not 0 < mmsi <= MAX_MMSI:
        raise ValueError(f"mmsi {mmsi!r}: not a 1-9 digit number")
    for key, value, limit in (("lat", lat, 90.0), ("lon", lon, 180.0)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{key} {value!r}: not a number")
        if abs(value) > limit:
            raise ValueError(f"{key} {value!r}: outside [-{limit:g}, {limit:g}]")
    if not isinstance(at, str):
        raise ValueError(f"at {at!r}: not an ISO 8601 string")
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(f"at {at!r}: not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError(f"at {at!r}: no UTC offset (write Z or +09:00)")
    try:
        utc = when.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"at {at!r}: out of range") from None
    return Position(mmsi, float(lat), float(lon), utc, source)
