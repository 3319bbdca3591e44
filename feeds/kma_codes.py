"""KMA warning vocabulary: the code tables of both public channels and their mapping onto CAP terms.

The data.go.kr ``getPwnCd`` service and the API Hub number the same things differently (kma.md §1-2),
so each channel has its own table here and both end in the same Korean words. The words, not the codes,
go into ``thread_key`` (``kma:{zone}:{hazard}``), so a warning seen through either channel threads
together. Unknown codes are never guessed: the row keeps the raw code and carries a warning.

Severity mapping (CAP has no Korean levels; this is our documented choice):

=============  ==========  =========  ==========  ============================================
KMA level      severity    urgency    certainty   why
=============  ==========  =========  ==========  ============================================
예비특보        Minor       Future     Possible    a heads-up that a warning may be issued later
주의보          Moderate    Immediate  Likely      advisory in force
경보            Severe      Immediate  Likely      warning in force
중대경보        Extreme     Immediate  Likely      heat only, above 경보
unknown level  Severe      Immediate  Likely      a code *above* the known ones (getPwnCd
                                                   ``warnStress`` 2, probably 폭염 중대경보): we never
                                                   rank an unknown level below 경보, so nobody with a
                                                   "Severe and up" preference misses it
=============  ==========  =========  ==========  ============================================

Urgency becomes ``Expected`` when the start time lies after the issue time, and ``Past`` on a lift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from feeds.model import KMA_ZONE, Alert, Area, Info

KST = timezone(timedelta(hours=9), "KST")

#: Sender used for every KMA-derived alert (both channels): the authority, not the API gateway.
KMA_SENDER = "kma.go.kr"

HAZARDS = ("강풍", "호우", "한파", "건조", "폭풍해일", "풍랑", "태풍", "대설", "황사", "폭염",
           "지진해일", "안개")

# -- data.go.kr WthrWrnInfoService/getPwnCd -------------------------------------------------------------
PWN_WARN_VAR: dict[str, str] = {
    "1": "강풍", "2": "호우", "3": "한파", "4": "건조", "5": "폭풍해일", "6": "풍랑", "7": "태풍",
    "8": "대설", "9": "황사", "12": "폭염",
}
PWN_WARN_STRESS: dict[str, str] = {"0": "주의보", "1": "경보"}
#: command -> (Korean word, CAP msgType)
PWN_COMMAND: dict[str, tuple[str, str]] = {
    "1": ("발표", "Alert"),
    "2": ("해제", "Cancel"),
    "3": ("연장", "Update"),
    "6": ("정정", "Update"),
    "7": ("변경발표", "Update"),
    "8": ("변경해제", "Cancel"),
}

# -- API Hub wrn_now_data_new.php (Korean words) -----------------------------------------------------------
HUB_LEVEL_WORDS: dict[str, str] = {"예비": "예비특보", "주의": "주의보", "주의보": "주의보", "경보": "경보",
                                   "중대": "중대경보", "중대경보": "중대경보", "예비특보": "예비특보"}
#: command word -> CAP msgType. 대치 (level replaced) is an Update: the hazard goes on at another level.
HUB_COMMAND_WORDS: dict[str, str] = {
    "발표": "Alert", "변경": "Update", "연장": "Update", "정정": "Update", "대치": "Update",
    "해제": "Cancel", "변경해제": "Cancel", "대치해제": "Cancel",
}

# -- API Hub wrn_met_data.php (history; letters and numbers) -------------------------------------------
MET_WRN_LETTERS: dict[str, str] = {
    "W": "강풍", "R": "호우", "C": "한파", "D": "건조", "O": "폭풍해일", "N": "지진해일", "V": "풍랑",
    "T": "태풍", "S": "대설", "Y": "황사", "H": "폭염", "F": "안개",
}
HAZARD_LETTER = {word: letter for letter, word in MET_WRN_LETTERS.items()}
MET_LEVELS: dict[str, str] = {"1": "예비특보", "2": "주의보", "3": "경보", "4": "중대경보"}
LEVEL_NUMBER = {word: number for number, word in MET_LEVELS.items()}
#: CMD -> (Korean word, CAP msgType)
MET_COMMANDS: dict[str, tuple[str, str]] = {
    "1": ("발표", "Alert"),
    "2": ("대치", "Update"),
    "3": ("해제", "Cancel"),
    "4": ("대치해제", "Cancel"),
    "5": ("연장", "Update"),
    "6": ("변경", "Update"),
    "7": ("변경해제", "Cancel"),
}
COMMAND_NUMBER = {word: number for number, (word, _) in MET_COMMANDS.items()}

LEVEL_SEVERITY = {"예비특보": "Minor", "주의보": "Moderate", "경보": "Severe", "중대경보": "Extreme"}
UNKNOWN_LEVEL_SEVERITY = "Severe"


def kst_time(value: object) -> datetime | None:
    """KMA ``yyyymmddHHMM`` (number or string, KST) -> aware datetime; 0/empty -> None (no time).

    Raises ``ValueError`` for anything else, so the caller can report the row.
    """
    if value is None or isinstance(value, bool):
        if value is None:
            return None
        raise ValueError(f"time {value!r} is not yyyymmddHHMM")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    raw = str(value).strip()
    if raw in ("", "0"):
        return None
    if not re.fullmatch(r"\d{12}(\d{2})?", raw):
        raise ValueError(f"time {raw!r} is not yyyymmddHHMM")
    fmt = "%Y%m%d%H%M%S" if len(raw) == 14 else "%Y%m%d%H%M"
    return datetime.strptime(raw, fmt).replace(tzinfo=KST)


def ascii_token(value: str) -> str:
    """A raw code or word made safe for a CAP identifier (no spaces, commas, ``<``, ``&``)."""
    return re.sub(r"[\s,<&:]+", "_", value.strip()) or "_"


@dataclass(slots=True)
class KmaRow:
    """One zone x hazard x level x command fact, whichever channel it came from."""

    identifier: str
    zone: str
    zone_name: str
    hazard: str
    level: str
    level_known: bool
    command_word: str
    msg_type: str
    sent: datetime
    effective: datetime | None = None
    expires: datetime | None = None
    parameters: dict[str, list[str]] = field(default_factory=dict)
    description: str | None = None
    note: str | None = None
    thread_suffix: str = ""
    #: Display name when the hazard or level code is unknown (the raw code stays in ``hazard``/``level``).
    event: str | None = None
    warnings: list[str] = field(default_factory=list)


def event_name(hazard: str, level: str) -> str:
    return f"{hazard}{level}"


def build_alert(row: KmaRow, *, source: str) -> Alert:
    """The canonical alert for one KMA row: one info, one area keyed by the 특보구역 code."""
    severity = LEVEL_SEVERITY.get(row.level, UNKNOWN_LEVEL_SEVERITY)
    if not row.level_known:
        severity = UNKNOWN_LEVEL_SEVERITY
    certainty = "Possible" if row.level == "예비특보" else "Likely"
    if row.msg_type == "Cancel":
        urgency = "Past"
    elif row.level == "예비특보" or (row.effective is not None and row.effective > row.sent):
        urgency = "Future" if row.level == "예비특보" else "Expected"
    else:
        urgency = "Immediate"
    event = row.event or event_name(row.hazard, row.level)
    info = Info(
        event=event,
        category=["Met"],
        urgency=urgency,
        severity=severity,
        certainty=certainty,
        language="ko-KR",
        effective=row.effective,
        expires=row.expires,
        sender_name="기상청",
        headline=f"{row.zone_name} {event} {row.command_word}".strip(),
        description=row.description,
        web="https://www.weather.go.kr/w/special-report/overall.do",
        parameters=dict(row.parameters),
        areas=[Area(desc=row.zone_name or row.zone, geocodes={KMA_ZONE: [row.zone]})],
    )
    return Alert(
        sender=KMA_SENDER,
        identifier=row.identifier,
        sent=row.sent,
        status="Actual",
        msg_type=row.msg_type,
        scope="Public",
        source=source,
        note=row.note,
        infos=[info],
        thread_key=f"kma:{row.zone}:{row.hazard}{row.thread_suffix}",
        warnings=list(row.warnings),
    )
