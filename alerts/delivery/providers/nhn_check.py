"""Is the NHN account ready to send? Credentials, sender key, templates and fallback number, read-only.

Why: the first real warning is the wrong moment to learn that the secret key was pasted wrong, that Kakao
has not approved a template yet, or that the approved text has a different variable than config.toml.
Everything here is a GET; nothing is sent and nothing is charged.

What NHN documents (AlimTalk API v2.3 guide and Sender API v2.3 guide, TOAST-DOCS/Alimtalk):
``GET /alimtalk/v2.3/appkeys/{appkey}/senders/{senderKey}`` answers the sender profile (``status`` YSC03 =
registered, ``kakaoStatus`` A = normal, ``kakaoProfileStatus`` A = active, ``block``, ``dormant``,
``alimtalk.isResend``/``resendSendNo`` = the SMS fallback set up for AlimTalk);
``GET …/senders/{senderKey}/templates?templateCode=X`` answers ``templateListResponse.templates[]`` with
``templateContent`` and a status; header result codes -1000 (appkey), -1001 (secret key), -2017 (sender).
Assumed where the docs are thin: that a template's ``status`` carries the documented status codes
(TSC03 = approved), and that the fallback number to compare with is the sender profile's
``alimtalk.resendSendNo`` (NHN's SMS service keeps its own list of registered numbers, not read here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from alerts.config import Config
from alerts.delivery.providers.nhn import API_PREFIX, CONTENT_TYPE
from alerts.render import variables

TEMPLATE_STATUS = {"TSC01": "requested", "TSC02": "being reviewed", "TSC03": "approved", "TSC04": "rejected"}


@dataclass(slots=True)
class Check:
    what: str
    ok: bool
    detail: str


def check_nhn(config: Config, *, transport: httpx.BaseTransport | None = None) -> list[Check]:
    s = config.provider.settings
    base = f"{str(s['base_url']).rstrip('/')}{API_PREFIX}/{s['app_key']}"
    sender_key = str(s["sender_key"])
    checks: list[Check] = []
    headers = {"X-Secret-Key": str(s["secret_key"]), "Content-Type": CONTENT_TYPE}
    with httpx.Client(timeout=float(s.get("timeout_seconds", 10)), headers=headers, transport=transport) as client:
        try:
            answer = _get(client, f"{base}/senders/{sender_key}")
        except httpx.HTTPError as exc:
            return [Check("provider", False, f"{s['base_url']}: cannot reach it: {exc}")]
        code = answer.get("header", {}).get("resultCode")
        if code in (-1000, -1001):
            which = "app key" if code == -1000 else "secret key"
            return [Check("credentials", False, f"NHN refused the {which} (resultCode {code})")]
        checks.append(Check("credentials", True, "app key and secret key accepted"))
        if code == -2017 or not answer.get("header", {}).get("isSuccessful"):
            checks.append(Check("sender key", False, f"NHN does not know this sender key (resultCode {code}: "
                                f"{answer.get('header', {}).get('resultMessage')})"))
            return checks
        sender = answer.get("sender") or {}
        checks.append(_sender_check(sender))
        checks.append(_fallback_check(config, sender))
        for kind, template in config.templates.items():
            try:
                listed = _get(client, f"{base}/senders/{sender_key}/templates", {"templateCode": template.code})
            except httpx.HTTPError as exc:
                checks.append(Check(f"template {kind}", False, f"{template.code}: cannot ask NHN: {exc}"))
                continue
            checks.append(_template_check(kind, template.code, template.text, listed))
    return checks


def _get(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    response = client.get(url, params=params)
    response.raise_for_status()
    data = response.json()
    return data if isinstance(data, dict) else {}


def _sender_check(sender: dict[str, Any]) -> Check:
    problems = []
    if sender.get("status") != "YSC03":
        problems.append(f"not registered yet (status {sender.get('status')})")
    if sender.get("kakaoStatus") not in (None, "A"):
        problems.append(f"Kakao channel status {sender.get('kakaoStatusName') or sender.get('kakaoStatus')}")
    if sender.get("kakaoProfileStatus") not in (None, "A"):
        problems.append(f"profile {sender.get('kakaoProfileStatusName') or sender.get('kakaoProfileStatus')}")
    if sender.get("block"):
        problems.append("blocked")
    if sender.get("dormant"):
        problems.append("dormant")
    name = sender.get("plusFriendId") or "?"
    if problems:
        return Check("sender key", False, f"channel {name}: " + ", ".join(problems))
    return Check("sender key", True, f"channel {name}: registered and active")


def _digits(text: object) -> str:
    return re.sub(r"\D", "", str(text or ""))


def _fallback_check(config: Config, sender: dict[str, Any]) -> Check:
    s = config.provider.settings
    wanted = bool(s.get("fallback", True))
    configured = _digits(s.get("resend_send_no"))
    alimtalk = sender.get("alimtalk") or {}
    registered = _digits(alimtalk.get("resendSendNo"))
    if not wanted:
        return Check("fallback number", True, "SMS/LMS fallback switched off ([provider] fallback = false)")
    if not configured:
        return Check("fallback number", False, "[provider] resend_send_no is not set (export ALIMCAST_NHN_RESEND_NO)")
    if not alimtalk.get("isResend") or not registered:
        return Check("fallback number", False, "NHN has no SMS fallback set up for this sender (대체 발송 설정)")
    if registered != configured:
        return Check("fallback number", False, f"configured {configured}, but NHN's fallback number is {registered}")
    return Check("fallback number", True, f"{configured} is the sender's fallback number")


def _template_check(kind: str, code: str, text: str, listed: dict[str, Any]) -> Check:
    what = f"template {kind}"
    found = [t for t in (listed.get("templateListResponse") or {}).get("templates") or []
             if t.get("templateCode") == code]
    if not found:
        return Check(what, False, f"{code}: NHN has no template with this code for this sender")
    template = found[0]
    status = template.get("status")
    if status != "TSC03":
        return Check(what, False, f"{code}: not approved ({TEMPLATE_STATUS.get(status, status)})")
    theirs, ours = variables(template.get("templateContent") or ""), variables(text)
    if set(theirs) != set(ours):
        missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
        parts = ([f"approved text has {', '.join(f'#{{{v}}}' for v in missing)} not in config"] if missing else []) \
            + ([f"config has {', '.join(f'#{{{v}}}' for v in extra)} not approved"] if extra else [])
        return Check(what, False, f"{code}: variables differ: {'; '.join(parts)}")
    same_text = " ".join((template.get("templateContent") or "").split()) == " ".join(text.split())
    note = "" if same_text else " (the wording differs from config.toml; the approved text is what is sent)"
    return Check(what, True, f"{code}: approved, same variables{note}")
