"""Helpers the alert tests share: config files and KMA-style CAP documents."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

KST = timezone(timedelta(hours=9))


def kst(t: datetime) -> str:
    return t.astimezone(KST).isoformat(timespec="seconds")


TEMPLATES = {
    "alert": ("ALIMCAST_ALERT_01", "[#{hazard} #{level}] #{action}\n구역: #{zones}\n발효: #{effective}\n"
                                   "종료: #{expires}\n#{instruction}"),
    "update": ("ALIMCAST_UPDATE_01", "[#{hazard} #{level}] 변경\n구역: #{zones}\n종료: #{expires}"),
    "cancel": ("ALIMCAST_CANCEL_01", "[#{hazard} #{level}] 해제\n구역: #{zones}\n해제: #{sent}"),
}


def config_text(db_url: str, feeds: list[tuple[str, str, str]], *, provider: str = "dryrun",
                base_url: str = "http://127.0.0.1:9", extra: str = "") -> str:
    lines = [f'[database]\nurl = "{db_url}"\n', f'[provider]\nkind = "{provider}"\nbase_url = "{base_url}"',
             'app_key = "env:T_APP_KEY"\nsecret_key = "env:T_SECRET_KEY"\nsender_key = "env:T_SENDER_KEY"',
             'resend_send_no = "0212345678"\nrate_per_second = 1000\ntimeout_seconds = 5\n',
             "[prices]\nalimtalk = 8.0\nsms = 12.0\nlms = 39.0\n"]
    for name, kind, url in feeds:
        lines.append(f'[[feeds]]\nname = "{name}"\nkind = "{kind}"\nurl = "{url}"\ninterval_seconds = 60\n')
    for kind, (code, text) in TEMPLATES.items():
        lines.append(f'[templates.{kind}]\ncode = "{code}"\ntext = """{text}"""\n')
    lines.append(extra)
    return "\n".join(lines)


def cap_xml(identifier: str, *, sent: datetime, zones: list[str], msg_type: str = "Alert",
            status: str = "Actual", event: str = "풍랑주의보", severity: str = "Moderate",
            urgency: str = "Expected", expires: datetime | None = None,
            references: list[tuple[str, datetime]] | None = None, sender: str = "kma@kma.go.kr") -> bytes:
    """A KMA-style CAP 1.2 document; times in KST as KMA writes them."""
    refs = ""
    if references:
        refs = "<references>" + " ".join(f"{sender},{i},{kst(t)}" for i, t in references) + "</references>"
    areas = "".join(
        f"<area><areaDesc>{z}</areaDesc><geocode><valueName>KMA_ZONE</valueName><value>{z}</value></geocode></area>"
        for z in zones)
    exp = f"<expires>{kst(expires)}</expires>" if expires else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
            f"<identifier>{identifier}</identifier><sender>{sender}</sender><sent>{kst(sent)}</sent>"
            f"<status>{status}</status><msgType>{msg_type}</msgType><scope>Public</scope>{refs}"
            f"<info><language>ko-KR</language><category>Met</category><event>{event}</event>"
            f"<urgency>{urgency}</urgency><severity>{severity}</severity><certainty>Likely</certainty>"
            f"<effective>{kst(sent)}</effective>{exp}<headline>{event} 발표</headline>"
            f"<instruction>조업 선박은 안전한 곳으로 대피하십시오.</instruction>{areas}</info></alert>").encode()
