"""Alert -> template parameters and text, Korean first.

AlimTalk only delivers text that matches a template Kakao approved, with ``#{name}`` variables filled
in. So rendering is: pick the info in the recipient's language, derive the variables (hazard, level,
zones in words, KST times, instruction), and fill the operator's approved template. The filled text is
also the SMS/LMS fallback and what the cost baseline is measured on.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from feeds.model import Alert, Info

log = logging.getLogger("alimcast.render")

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
        return DEFAULT_WORDS.get(language.lower().split("-")[0], DEFAULT_WORDS["en"])["expires"]
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
                   zone_name: Callable[[str], str | None], sender_name: str,
                   ended: Alert | None = None) -> dict[str, str]:
    """The variables of one alert version for one language.

    ``ended`` is the version this follow-up (update or 해제) replaces. A Cancel without ``<info>`` is legal
    CAP and says nothing of what it lifts: its hazard, level, zones, headline and sender come from the
    version it ends, so a skipper reads which warning ended and where. Any other variable still empty is
    taken from that version too (a follow-up whose own info left a field out).
    """
    params = _own_parameters(alert, kind, language, value_names, zone_name, sender_name)
    if ended is not None and ended is not alert:
        before = _own_parameters(ended, kind, language, value_names, zone_name, sender_name)
        for name in INHERITED:
            if kind == "cancel" and name in ("instruction", "expires"):
                continue  # a lift never repeats the ended warning's evacuation order or end
            if not params.get(name):
                params[name] = before.get(name, "")
    params["sender"] = params["sender"] or sender_name
    if kind == "cancel" and pick_info(alert, language) is None:
        # a lift has no instruction of its own and its end is now: never the ended warning's evacuation order
        params["instruction"] = ""
        params["expires"] = params["sent"]
    return params


#: Taken from the ended version when the follow-up leaves them empty (never its own action or times).
INHERITED = ("hazard", "level", "event", "severity", "zones", "headline", "sender", "instruction", "effective",
             "expires")


def _own_parameters(alert: Alert, kind: str, language: str, value_names: tuple[str, ...],
                    zone_name: Callable[[str], str | None], sender_name: str) -> dict[str, str]:
    info = pick_info(alert, language)
    if info is None:  # a Cancel without <info> is legal CAP
        return {"hazard": "", "level": "", "zones": "", "effective": format_kst(alert.sent, language),
                "expires": "", "instruction": "", "headline": alert.note or "", "event": "",
                "severity": "", "sender": "", "action": _action(kind, language),
                "sent": format_kst(alert.sent, language)}
    hazard, level = split_event(info.event)
    if level is None:
        level = SEVERITY_KO.get(info.severity, info.severity) if language.startswith("ko") else info.severity
    elif not language.startswith("ko") and info.language.lower().startswith("ko"):
        # a KMA warning read by a foreign crew member: no info in their language, so the hazard and the level
        # in their words where we know them (the Korean words otherwise)
        hazard, level = translate_kma(hazard, level, language)
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
        "action": _action(kind, language),
        "sent": format_kst(alert.sent, language),
    }


#: KMA hazard and level words for recipients whose language has no info of its own. Vietnamese wording to be
#: reviewed by a native speaker before the templates go to Kakao for approval.
KMA_WORDS: dict[str, dict[str, str]] = {
    "en": {"풍랑": "High seas", "태풍": "Typhoon", "강풍": "Strong wind", "호우": "Heavy rain", "대설": "Heavy snow",
           "폭풍해일": "Storm surge", "지진해일": "Tsunami", "한파": "Cold wave", "폭염": "Heat wave",
           "건조": "Dry air", "황사": "Yellow dust", "안개": "Fog",
           "주의보": "advisory", "경보": "warning", "예비특보": "pre-warning",
           "중대경보": "major warning"},
    "vi": {"풍랑": "Sóng lớn", "태풍": "Bão", "강풍": "Gió mạnh", "호우": "Mưa lớn", "대설": "Tuyết lớn",
           "폭풍해일": "Nước dâng do bão", "지진해일": "Sóng thần", "한파": "Rét đậm", "폭염": "Nắng nóng",
           "안개": "Sương mù", "주의보": "cảnh báo", "경보": "báo động", "예비특보": "dự báo trước",
           "중대경보": "báo động nghiêm trọng"},
}


def translate_kma(hazard: str, level: str, language: str) -> tuple[str, str]:
    words = KMA_WORDS.get(language.lower().split("-")[0], {})
    return words.get(hazard, hazard), words.get(level, level)


ACTION_WORDS: dict[str, dict[str, str]] = {
    "ko": TEMPLATE_KINDS_KO,
    "en": {"alert": "issued", "update": "changed", "cancel": "lifted"},
    "vi": {"alert": "ban hành", "update": "thay đổi", "cancel": "hủy bỏ"},
}


def _action(kind: str, language: str) -> str:
    return ACTION_WORDS.get(language.lower().split("-")[0], {}).get(kind, kind)


#: Every variable :func:`parameters_for` gives a template (the config check refuses any other name).
VARIABLES = ("hazard", "level", "event", "severity", "zones", "effective", "expires", "instruction", "headline",
             "sender", "action", "sent", "ack_url", "manage_url")
#: Filled per person after rendering (alerts/public/links.py): empty here, never given a general word.
PERSONAL_VARIABLES = ("ack_url", "manage_url")

#: Last-resort words for a variable that would still render empty, by language (``en`` for any other).
#: A message with a hole in it ("[ ] 기상특보 해제 / 구역: ") tells a skipper nothing; a general word at least
#: says a warning changed, and the log says which alert lacked what.
DEFAULT_WORDS: dict[str, dict[str, str]] = {
    "ko": {"hazard": "기상특보", "level": "특보", "event": "기상특보", "severity": "알 수 없음",
           "zones": "구독하신 구역", "instruction": "안전에 유의하십시오.", "headline": "기상특보",
           "expires": "해제 시까지", "effective": "발표 즉시"},
    "en": {"hazard": "Weather", "level": "warning", "event": "Weather warning", "severity": "Unknown",
           "zones": "your subscribed zones", "instruction": "Stay safe.", "headline": "Weather warning",
           "expires": "until lifted", "effective": "now"},
    "vi": {"hazard": "Thời tiết", "level": "cảnh báo", "event": "Cảnh báo thời tiết", "severity": "Không rõ",
           "zones": "khu vực bạn đăng ký", "instruction": "Hãy giữ an toàn.", "headline": "Cảnh báo thời tiết",
           "expires": "đến khi hủy bỏ", "effective": "ngay bây giờ"},
    "id": {"hazard": "Cuaca", "level": "peringatan", "event": "Peringatan cuaca", "severity": "Tidak diketahui",
           "zones": "wilayah langganan Anda", "instruction": "Tetap waspada.", "headline": "Peringatan cuaca",
           "expires": "sampai dicabut", "effective": "sekarang"},
    "zh": {"hazard": "气象", "level": "预警", "event": "气象预警", "severity": "未知", "zones": "您订阅的区域",
           "instruction": "请注意安全。", "headline": "气象预警", "expires": "直至解除", "effective": "立即"},
}


def unknown_variables(template_text: str, known: tuple[str, ...] = VARIABLES) -> list[tuple[str, str | None]]:
    """(name, nearest known name or None) for each ``#{name}`` the renderer cannot fill."""
    return [(name, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.6)), None))
            for name in variables(template_text) if name not in known]


def render(template_text: str, parameters: dict[str, str], *, language: str = "ko", about: str = "") -> Rendered:
    """Only the template's own variables travel as templateParameter (NHN validates them).

    No message goes out with an empty variable: one still empty here (the alert and the version it ends
    both left it out) gets a general word (the headline for the hazard, else ``DEFAULT_WORDS``), and the
    log names the alert (``about``) and the variable.
    """
    used = {name: parameters.get(name, "") for name in variables(template_text)}
    missing = [name for name, value in used.items() if not value.strip() and name not in PERSONAL_VARIABLES]
    if missing:
        words = DEFAULT_WORDS.get(language.lower().split("-")[0], DEFAULT_WORDS["en"])
        for name in missing:
            if name == "hazard" and parameters.get("headline", "").strip():
                used[name] = parameters["headline"].strip()
            else:
                used[name] = words.get(name) or parameters.get("headline", "").strip() or words["event"]
        log.warning("alert %s: no value for %s; sent with %s", about or "?", ", ".join(missing),
                    ", ".join(f"{n}={used[n]!r}" for n in missing))
    return Rendered(parameters=used, text=fill(template_text, used))


#: Variables of the grouped message (``[templates.group]``): several warnings for one person in one message.
GROUP_VARIABLES = ("count", "warnings", "zones", "effective", "sender", "sent")
#: The ``#{warnings}`` list stays within one AlimTalk variable and the 1,000-character message.
MAX_GROUP_LIST = 600


def group_parameters(members: list[dict[str, str]]) -> dict[str, str]:
    """The grouped message's variables from each warning's own parameters (oldest first): one line per
    warning (``풍랑 주의보: 인천·경기북부앞바다``), the zones of all of them, the earliest effective time."""
    lines = [f"- {m.get('hazard', '')} {m.get('level', '')}".rstrip() + (f": {m['zones']}" if m.get("zones") else "")
             for m in members]
    shown: list[str] = []
    for line in lines:
        if len("\n".join([*shown, line])) > MAX_GROUP_LIST - 12:
            break
        shown.append(line)
    listing = "\n".join(shown) + (f"\n(+{len(lines) - len(shown)})" if len(shown) < len(lines) else "")
    zones = _shorten_list(list(dict.fromkeys(z.strip() for m in members for z in m.get("zones", "").split(",")
                                             if z.strip() and "외" not in z)))
    return {"count": str(len(members)), "warnings": listing, "zones": zones,
            "effective": members[0].get("effective", "") if members else "",
            "sender": next((m["sender"] for m in members if m.get("sender")), ""),
            "sent": members[-1].get("sent", "") if members else ""}
