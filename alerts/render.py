"""Alert -> template parameters and text, Korean first.

AlimTalk only delivers text that matches a template Kakao approved, with ``#{name}`` variables filled
in. So rendering is: pick the info in the recipient's language, derive the variables (hazard, level,
zones in words, KST times, instruction), and fill the operator's approved template. The filled text is
also the SMS/LMS fallback and what the cost baseline is measured on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from feeds.model import Alert, Info

KST = timezone(timedelta(hours=9), "KST")
VARIABLE = re.compile(r"#\{([^{}]+)\}")
#: Longest value one variable may carry; AlimTalk rejects a message whose text exceeds 1,000 characters.
MAX_VALUE = 400
#: KMA levels, longest first so 중대경보 is not read as 경보.
LEVEL_SUFFIXES = ("예비특보", "중대경보", "주의보", "경보")
SEVERITY_KO = {"Extreme": "매우 심각", "Severe": "심각", "Moderate": "주의", "Minor": "경미", "Unknown": "알 수 없음"}
WEEKDAYS_KO = "월화수목금토일"
TEMPLATE_KINDS_KO = {"alert": "발표", "update": "변경", "cancel": "해제"}


@dataclass(slots=True)
class Rendered:
    parameters: dict[str, str]
    text: str


def variables(template_text: str) -> list[str]:
    return list(dict.fromkeys(VARIABLE.findall(template_text)))


def fill(template_text: str, parameters: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: parameters.get(m.group(1), ""), template_text)


def pick_info(alert: Alert, language: str) -> Info | None:
    """The info in the recipient's language (``ko`` matches ``ko-KR``), else the first one."""
    if not alert.infos:
        return None
    wanted = language.lower().split("-")[0]
    for info in alert.infos:
        if info.language.lower().split("-")[0] == wanted:
            return info
    return alert.infos[0]


def format_kst(value: datetime | None, language: str = "ko") -> str:
    if value is None:
        return "해제 시까지" if language.startswith("ko") else "until lifted"
    local = value.astimezone(KST)
    if language.startswith("ko"):
        return f"{local.month}월 {local.day}일({WEEKDAYS_KO[local.weekday()]}) {local:%H:%M}"
    return f"{local:%Y-%m-%d %H:%M} KST"


def split_event(event: str) -> tuple[str, str | None]:
    """"풍랑주의보" -> ("풍랑", "주의보"); events without a KMA level suffix keep their whole name."""
    compact = event.strip()
    for suffix in LEVEL_SUFFIXES:
        if compact.endswith(suffix) and len(compact) > len(suffix):
            return compact[: -len(suffix)].strip(), suffix
    return compact, None


def zone_words(alert: Alert, info: Info, value_names: tuple[str, ...],
               zone_name: Callable[[str], str | None]) -> str:
    """Zone names in words: catalogue names for KMA codes, else the area descriptions."""
    names: list[str] = []
    for area in info.areas:
        codes = area.zone_codes(value_names)
        resolved = [zone_name(code) for code in codes]
        if codes and all(resolved):
            names.extend(n for n in resolved if n)
        elif area.desc:
            names.append(area.desc.strip())
    unique = list(dict.fromkeys(n for n in names if n))
    return _shorten_list(unique)


def _shorten_list(names: list[str], limit: int = 200) -> str:
    text = ", ".join(names)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for name in names:
        if len(", ".join([*kept, name])) > limit - 12:
            break
        kept.append(name)
    return f"{', '.join(kept)} 외 {len(names) - len(kept)}개 구역"


def _clip(value: str | None) -> str:
    text = (value or "").strip()
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def parameters_for(alert: Alert, kind: str, language: str, value_names: tuple[str, ...],
                   zone_name: Callable[[str], str | None], sender_name: str) -> dict[str, str]:
    info = pick_info(alert, language)
    if info is None:  # a Cancel without <info> is legal CAP
        return {"hazard": "", "level": "", "zones": "", "effective": format_kst(alert.sent, language),
                "expires": "", "instruction": "", "headline": alert.note or "", "event": "",
                "severity": "", "sender": sender_name, "action": TEMPLATE_KINDS_KO.get(kind, kind),
                "sent": format_kst(alert.sent, language)}
    hazard, level = split_event(info.event)
    if level is None:
        level = SEVERITY_KO.get(info.severity, info.severity) if language.startswith("ko") else info.severity
    return {
        "hazard": _clip(hazard),
        "level": _clip(level),
        "event": _clip(info.event),
        "severity": info.severity,
        "zones": zone_words(alert, info, value_names, zone_name),
        "effective": format_kst(info.effective or info.onset or alert.sent, language),
        "expires": format_kst(alert.end_time(), language),
        "instruction": _clip(info.instruction),
        "headline": _clip(info.headline),
        "sender": _clip(info.sender_name or sender_name),
        "action": TEMPLATE_KINDS_KO.get(kind, kind) if language.startswith("ko") else kind,
        "sent": format_kst(alert.sent, language),
    }


def render(template_text: str, parameters: dict[str, str]) -> Rendered:
    """Only the template's own variables travel as templateParameter (NHN validates them)."""
    used = {name: parameters.get(name, "") for name in variables(template_text)}
    return Rendered(parameters=used, text=fill(template_text, used))
