"""The short SMS form of a template: a fallback that costs an SMS, not an LMS.

The full warning text is nearly always longer than 90 EUC-KR bytes, so every fallback used to go as LMS
(about three times an SMS). A template may carry ``sms = "…"``: the same ``#{…}`` variables in a form
written to fit one SMS. It is checked at config load with realistic values (the longest common KMA
hazard and level names, a long marine zone name, a full KST time) so a form that only fits short warnings
is refused then, not discovered in the invoice. At send time the filled form is measured again: when a
real value makes it too long, the fallback is the full text (LMS), never a cut warning.
"""

from __future__ import annotations

from typing import Any

from alerts.delivery.providers.base import Fallback
from alerts.delivery.sms import SMS_MAX_BYTES, build_fallback, euckr_len, to_euckr_safe
from alerts.render import fill, variables

#: Realistic long values for each variable (the check's yardstick). Free-text variables (instruction,
#: headline) have no bounded length: a short form that uses them is checked with a typical sentence.
SAMPLE_VALUES: dict[str, str] = {
    "hazard": "폭풍해일",
    "level": "예비특보",
    "event": "폭풍해일주의보",
    "severity": "Moderate",
    "zones": "제주도남쪽먼바다",
    "effective": "12월 31일(수) 23:59",
    "expires": "12월 31일(수) 23:59",
    "sent": "12월 31일(수) 23:59",
    "action": "발표",
    "sender": "기상청",
    "instruction": "안전한 곳으로 대피하십시오.",
    "headline": "풍랑주의보 발표",
}


def short_form_problem(sms: str, text: str) -> str | None:
    """Why ``sms`` cannot be the short form of ``text``, or None when it can."""
    unknown = [v for v in variables(sms) if v not in variables(text)]
    if unknown:
        return (f"uses #{{{unknown[0]}}}, which the AlimTalk text does not (only the template's own "
                "variables travel with the message)")
    filled = fill(sms, {name: SAMPLE_VALUES.get(name, "x" * 10) for name in variables(sms)})
    safe, _ = to_euckr_safe(filled)
    size = euckr_len(safe)
    if size > SMS_MAX_BYTES:
        return (f"is {size} EUC-KR bytes with realistic values ({filled!r}); an SMS carries {SMS_MAX_BYTES}: "
                "shorten it")
    return None


def short_fallback(sms: str | None, parameters: dict[str, str], text: str) -> tuple[Fallback, list[str]]:
    """The fallback for one message: the filled short form as SMS when there is one and it fits,
    else the full text's fallback (SMS or LMS by length)."""
    if sms:
        safe, changed = to_euckr_safe(fill(sms, parameters))
        if euckr_len(safe) <= SMS_MAX_BYTES:
            return Fallback(kind="SMS", content=safe), changed
    return build_fallback(text)


def fallback_for(row: Any, config: Any) -> tuple[Fallback, list[str]]:
    """The dispatcher's fallback for an outbox row: the row's template kind picks the short form."""
    template = config.templates.get(row.kind)
    return short_fallback(getattr(template, "sms", None), dict(row.params), row.text)
