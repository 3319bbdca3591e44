"""Helpers for the public-side tests: a config with links and reminders, a pipeline over a CAP file."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

from alimcast_testkit import config_text
from sqlmodel import select

from alerts.config import load_config
from alerts.db import session_scope
from alerts.models import Delivery
from alerts.pipeline import Pipeline

PUBLIC_URL = "https://alert.test"
LINK = re.compile(r"https://alert\.test/(a|u)/([A-Za-z0-9_\-]+)")

EXTRA = f'''
[web]
public_url = "{PUBLIC_URL}"

[reminders]
enabled = true
delay_minutes = 30
interval_minutes = 60
max_count = 2

[templates.reminder]
code = "ALIMCAST_REMIND_01"
text = """[재알림] #{{hazard}} #{{level}} 확인 요청
구역: #{{zones}}
확인: #{{ack_url}}"""

[templates.verify]
code = "ALIMCAST_VERIFY_01"
text = """[#{{sender}}] 인증번호 #{{code}}
#{{minutes}}분 안에 입력해 주세요."""

[templates.subscribed]
code = "ALIMCAST_WELCOME_01"
text = """[#{{sender}}] 수신 신청이 완료되었습니다.
구역: #{{zones}}
수신 설정·해지: #{{manage_url}}"""
'''


def public_config_text(db_url: str, feed: Path, *, provider: str = "dryrun", base_url: str = "http://127.0.0.1:9",
                       links: bool = True, extra: str = "") -> str:
    text = config_text(db_url, [("kma", "cap", str(feed))], provider=provider, base_url=base_url,
                       extra=(EXTRA if links else EXTRA.replace(f'public_url = "{PUBLIC_URL}"', "")) + extra)
    # the shipped templates' personal lines, on the test templates
    text = text.replace('#{instruction}"""', '#{instruction}\n확인: #{ack_url}\n수신 관리: #{manage_url}"""')
    return text.replace('해제: #{sent}"""', '해제: #{sent}\n수신 관리: #{manage_url}"""')


def make_pipeline(db_url: str, tmp_path: Path, **kw: object) -> Pipeline:
    path = tmp_path / "config.toml"
    path.write_text(public_config_text(db_url, tmp_path / "feed.xml", **kw), encoding="utf-8")  # type: ignore[arg-type]
    return Pipeline(load_config(path))


_counter = [0]


def publish(tmp_path: Path, body: bytes) -> None:
    """Replace the feed file with a new mtime, so the poller sees a change."""
    path = tmp_path / "feed.xml"
    path.write_bytes(body)
    _counter[0] += 10
    stamp = datetime.now().timestamp() + _counter[0]
    os.utime(path, (stamp, stamp))


def deliveries(pipeline: Pipeline) -> list[Delivery]:
    with session_scope(pipeline.engine) as s:
        return list(s.exec(select(Delivery).order_by(Delivery.id)))


def links_in(text: str) -> dict[str, str]:
    """{"a": token, "u": token} from a message text."""
    return {kind: token for kind, token in LINK.findall(text)}
