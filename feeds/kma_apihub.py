"""KMA API Hub warning text: ``wrn_now_data_new.php`` (in force now) and ``wrn_met_data.php`` (history).

Both answer EUC-KR text with ``#`` comment lines and comma-separated rows ending in ``,=``. The "now"
list is a *snapshot* (``snapshot = True``): a warning missing from the next poll has ended. That makes a
misread body dangerous (an error page read as "nothing in force" would end every warning), so a body
that has no recognisable row and no API Hub marker (``#START7777`` or a column header) is a
:class:`ParseError`, never an empty result.

Identity: ``sender`` ``kma.go.kr``; ``identifier`` ``KMA-HUB-{TM_FC}-{REG_ID}-{WRN}-{LVL}-{CMD}`` with
the history format's letter/number codes (so the same fact read from either endpoint is one alert, and
the key is the dedup tuple kma.md names); ``sent`` = ``TM_FC`` (KST). ``thread_key`` is
``kma:{REG_ID}:{hazard}`` like getPwnCd, except that a 예비특보 (preliminary) gets its own thread
``kma:{REG_ID}:{hazard}:예비``: the real list carries a preliminary *and* an advisory for the same zone and
hazard at once (강릉평지 대설 in the fixture), and one must not replace the other.
"""

from __future__ import annotations

import re
from datetime import datetime

from feeds.base import FeedParser, ParseError, ParseResult
from feeds.jsonsafe import FieldError, check_body, where
from feeds.kma_codes import (
    COMMAND_NUMBER,
    HAZARD_LETTER,
    HAZARDS,
    HUB_COMMAND_WORDS,
    HUB_LEVEL_WORDS,
    LEVEL_NUMBER,
    MET_COMMANDS,
    MET_LEVELS,
    MET_WRN_LETTERS,
    KmaRow,
    ascii_token,
    build_alert,
    kst_time,
)

WHAT = "KMA API Hub"
NOW_COLUMNS = ("REG_UP", "REG_UP_KO", "REG_ID", "REG_KO", "TM_FC", "TM_EF", "WRN", "LVL", "CMD", "ED_TM")
MET_COLUMNS = ("TM_FC", "TM_EF", "TM_IN", "STN", "REG_ID", "WRN", "LVL", "CMD", "GRD", "CNT", "RPT")
_ZONE = re.compile(r"^[LS]\d{7}$")


def decode(data: bytes, *, origin: str) -> str:
    """UTF-8 when it decodes (tests, proxies), else EUC-KR as the API sends (CP949 is its superset)."""
    raw = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    for encoding in ("utf-8", "cp949"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ParseError(f"{where(origin)}{WHAT}: neither UTF-8 nor EUC-KR text")


def _columns(comment: str) -> tuple[str, ...] | None:
    """A ``# REG_UP  REG_UP_KO----  REG_ID ...`` header -> column names, else None."""
    names = tuple(token.rstrip("-") for token in comment.lstrip("#").split())
    if "REG_ID" in names and "TM_FC" in names:
        return names
    return None


def _hazard(word: str, warnings: list[str]) -> str:
    word = word.strip()
    if word in HAZARDS:
        return word
    warnings.append(f"unknown WRN {word!r} kept raw")
    return word or "미상"


def _now_row(values: dict[str, str]) -> KmaRow:
    warnings: list[str] = []
    zone = values["REG_ID"]
    if not _ZONE.match(zone):
        raise FieldError(f"REG_ID {zone!r} is not a KMA zone code")
    hazard = _hazard(values["WRN"], warnings)
    level_word = values["LVL"]
    level = HUB_LEVEL_WORDS.get(level_word)
    level_known = level is not None
    if level is None:
        level = level_word or "미상"
        warnings.append(f"unknown LVL {level_word!r} kept raw; ranked Severe")
    command = values["CMD"]
    msg_type = HUB_COMMAND_WORDS.get(command)
    if msg_type is None:
        msg_type = "Update"
        warnings.append(f"unknown CMD {command!r} kept raw; treated as Update")
    sent, effective = _issue_times(values)
    ed_tm = values.get("ED_TM", "")
    parameters = {
        "KMA_WRN": [values["WRN"]], "KMA_LVL": [level_word], "KMA_CMD": [command], "KMA_HAZARD": [hazard],
        "KMA_LEVEL": [level], "KMA_TM_EF": [values["TM_EF"]],
    }
    if values.get("REG_UP"):
        parameters["KMA_REG_UP"] = [values["REG_UP"]]
    if values.get("REG_UP_KO"):
        parameters["KMA_REG_UP_KO"] = [values["REG_UP_KO"]]
    if ed_tm:
        parameters["KMA_ED_TM"] = [ed_tm]
    return KmaRow(
        identifier=_identifier(values["TM_FC"], zone, hazard, level, command),
        zone=zone,
        zone_name=values.get("REG_KO") or zone,
        hazard=hazard,
        level=level,
        level_known=level_known,
        command_word=command,
        msg_type=msg_type,
        sent=sent,
        effective=effective,
        parameters=parameters,
        description=f"해제 예고: {ed_tm}" if ed_tm else None,
        thread_suffix=":예비" if level == "예비특보" else "",
        warnings=warnings,
    )


def _met_row(values: dict[str, str]) -> KmaRow:
    warnings: list[str] = []
    zone = values["REG_ID"]
    if not _ZONE.match(zone):
        raise FieldError(f"REG_ID {zone!r} is not a KMA zone code")
    letter = values["WRN"]
    hazard = MET_WRN_LETTERS.get(letter)
    if hazard is None:
        hazard = f"WRN{ascii_token(letter)}"
        warnings.append(f"unknown WRN {letter!r} kept raw")
    level = MET_LEVELS.get(values["LVL"])
    level_known = level is not None
    if level is None:
        level = f"(LVL {values['LVL']})"
        warnings.append(f"unknown LVL {values['LVL']!r} kept raw; ranked Severe")
    word, msg_type = MET_COMMANDS.get(values["CMD"], (f"CMD {values['CMD']}", "Update"))
    if values["CMD"] not in MET_COMMANDS:
        warnings.append(f"unknown CMD {values['CMD']!r} kept raw; treated as Update")
    sent, effective = _issue_times(values)
    parameters = {key: [values[key]] for key in MET_COLUMNS if values.get(key)}
    parameters = {f"KMA_{key}": value for key, value in parameters.items()}
    parameters["KMA_HAZARD"] = [hazard]
    parameters["KMA_LEVEL"] = [level]
    return KmaRow(
        identifier=_identifier(values["TM_FC"], zone, hazard, level, word),
        zone=zone,
        zone_name=zone,
        hazard=hazard,
        level=level,
        level_known=level_known,
        command_word=word,
        msg_type=msg_type,
        sent=sent,
        effective=effective,
        parameters=parameters,
        thread_suffix=":예비" if level == "예비특보" else "",
        event=None if (letter in MET_WRN_LETTERS and level_known) else f"기상특보 {hazard} {level}",
        warnings=warnings,
    )


def _identifier(tm_fc: str, zone: str, hazard: str, level: str, command: str) -> str:
    parts = (
        "KMA-HUB", tm_fc, zone, HAZARD_LETTER.get(hazard, hazard), LEVEL_NUMBER.get(level, level),
        COMMAND_NUMBER.get(command, command),
    )
    return "-".join(ascii_token(p) for p in parts)


class KmaApiHubNowParser(FeedParser):
    kind = "kma-apihub-now"
    snapshot = True

    def parse(self, data: bytes, *, origin: str = "") -> ParseResult:
        body = check_body(data, origin=origin, what=WHAT)
        stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
        if stripped.startswith((b"{", b"[", b"<")):
            raise ParseError(f"{where(origin)}{WHAT}: got JSON/XML, not API Hub text "
                             f"(authKey not approved for this API?): {stripped[:120]!r}")
        result = ParseResult()
        marker = False
        columns: tuple[str, ...] | None = None
        seen: set[str] = set()
        for lineno, line in enumerate(decode(body, origin=origin).splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                marker = marker or "7777" in line
                header = _columns(line)
                if header is not None:
                    columns = header
                    marker = True
                continue
            fields = [f.strip() for f in line.removesuffix("=").rstrip().removesuffix(",").split(",")]
            if len(fields) > len(NOW_COLUMNS) and (columns == NOW_COLUMNS or (
                    columns is None and _ZONE.match(fields[2]) and not _ZONE.match(fields[4]))):
                # ED_TM is free text and may itself hold commas: it is the last column, so re-join the tail
                fields = [*fields[:9], ", ".join(fields[9:])]
            layout = columns if columns is not None and len(columns) == len(fields) else None
            if layout is None:
                layout = {len(NOW_COLUMNS): NOW_COLUMNS, len(MET_COLUMNS): MET_COLUMNS}.get(len(fields))
            if layout is None:
                result.errors.append(f"{where(origin)}{WHAT} line {lineno}: {len(fields)} fields, expected "
                                     f"{len(NOW_COLUMNS)} or {len(MET_COLUMNS)}; skipped")
                continue
            values = dict(zip(layout, fields, strict=True))
            try:
                row = _met_row(values) if "TM_IN" in values else _now_row(values)
            except (FieldError, KeyError) as exc:
                result.errors.append(f"{where(origin)}{WHAT} line {lineno}: {exc}; skipped")
                continue
            if row.identifier in seen:
                continue
            seen.add(row.identifier)
            endpoint = "wrn_met_data" if "TM_IN" in values else "wrn_now_data_new"
            result.alerts.append(build_alert(row, source=f"apihub.kma.go.kr {endpoint}"))
        if not marker and not result.alerts:
            raise ParseError(f"{where(origin)}{WHAT}: no API Hub marker and no warning rows "
                             f"(not wrn_now_data_new/wrn_met_data text)")
        return result


def _issue_times(values: dict[str, str]) -> tuple[datetime, datetime | None]:
    """TM_FC (issued, required) and TM_EF (in effect from), both KST stamps."""
    try:
        sent = kst_time(values["TM_FC"])
        effective = kst_time(values["TM_EF"])
    except ValueError as exc:
        raise FieldError(str(exc)) from None
    if sent is None:
        raise FieldError("missing TM_FC")
    return sent, effective
