"""``alimcast templates preview [--alert FILE]``: every template as the recipient will read it.

Why: a template is approved by Kakao once and then filled by alimcast for every warning; an operator must
see the filled text, its length against AlimTalk's 1,000 characters, and whether its SMS/LMS fallback
goes out as an SMS (90 cp949 bytes) or a dearer LMS, before the first real warning — not after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alerts.cli.common import ConfigOption, fail, load
from alerts.delivery.sms import SMS_MAX_BYTES, build_fallback, euckr_len
from alerts.pipeline import zone_name
from alerts.render import parameters_for, render
from feeds.base import ParseError
from feeds.fetch import Fetcher, FetchError
from feeds.model import Alert
from feeds.registry import detect_kind, get_parser

app = typer.Typer(no_args_is_help=True)
SAMPLE = "bundled:kma_pungrang_sample.cap.xml"
ALIMTALK_MAX_CHARS = 1000


@app.command("preview")
def preview(
    alert: Annotated[Path | None, typer.Option("--alert", help="a CAP or feed file to fill the templates with "
                                                "(default: the bundled sample 풍랑주의보)")] = None,
    language: Annotated[str, typer.Option("--language", help="ko or en")] = "ko",
    config: ConfigOption = None,
) -> None:
    """Each configured template filled from an alert: the text, its length, and its SMS/LMS fallback."""
    cfg = load(config)
    source = str(alert) if alert is not None else SAMPLE
    sample = _first_alert(source)
    for kind, template in cfg.templates.items():
        params = parameters_for(sample, kind, language, cfg.zone_value_names, zone_name, cfg.sender_name)
        text = render(template.text, params).text
        fallback, changed = build_fallback(text)
        chars = len(text)
        over = f" — over AlimTalk's {ALIMTALK_MAX_CHARS}" if chars > ALIMTALK_MAX_CHARS else ""
        cost = (f"SMS ({euckr_len(fallback.content)} of {SMS_MAX_BYTES} bytes)" if fallback.kind == "SMS"
                else f"LMS ({euckr_len(text)} bytes > {SMS_MAX_BYTES}: an SMS would not hold it)")
        typer.echo(f"── {kind} · template {template.code} · {chars} characters{over} · fallback {cost}")
        if changed:
            typer.echo(f"   (replaced for SMS/LMS, not in cp949: {' '.join(sorted(set(changed)))})")
        typer.echo(text)
        typer.echo("")


def _first_alert(source: str) -> Alert:
    url = source if "://" in source or source.startswith("bundled:") else str(Path(source).resolve())
    try:
        with Fetcher() as fetcher:
            content = fetcher.fetch(url, etag=None, last_modified=None).content or b""
        result = get_parser(detect_kind(content)).parse(content, origin=source)
    except (FetchError, ParseError) as exc:
        fail(f"{source}: {' '.join(str(exc).split())}")
    if not result.alerts:
        fail(f"{source}: no alert in it (a feed index's linked documents are not fetched here)")
    return result.alerts[0]
