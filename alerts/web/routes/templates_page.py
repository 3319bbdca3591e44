"""Templates: every configured AlimTalk template rendered with a sample alert, its length, and the SMS/LMS
decision its fallback would get (the same rendering and byte rules the sender uses)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from alerts.delivery.sms import build_fallback, euckr_len
from alerts.render import parameters_for, render, variables
from alerts.web.context import WebContext, web_context
from alerts.web.notices import zone_name
from alerts.web.templating import NAV, page
from feeds.model import KMA_ZONE, Alert, Area, Info

router = APIRouter()
NAV.add((50, "/templates", "Templates", "viewer"))


def sample_alert(now) -> Alert:  # noqa: ANN001 - a datetime
    """A typical marine warning: 풍랑경보 for two sea zones, six hours."""
    sent = now.replace(second=0, microsecond=0)
    area = Area(desc="서해중부앞바다", geocodes={KMA_ZONE: ["S1251100", "S1251200"]})
    info = Info(event="풍랑경보", category=["Met"], urgency="Immediate", severity="Severe", certainty="Observed",
                language="ko-KR", effective=sent, expires=sent + timedelta(hours=6), headline="서해중부앞바다 풍랑경보",
                instruction="조업 중인 선박은 즉시 가까운 항구로 대피하십시오.", areas=[area])
    return Alert(sender="kma@kma.go.kr", identifier="sample", sent=sent, infos=[info])


@router.get("/templates")
def templates_page(request: Request, ctx: WebContext = Depends(web_context)) -> Response:
    alert = sample_alert(ctx.now())
    rows = []
    for kind, template in ctx.config.templates.items():
        params = parameters_for(alert, kind, "ko", ctx.config.zone_value_names, zone_name, ctx.config.sender_name)
        text = render(template.text, params).text
        fallback, replaced = build_fallback(text)
        rows.append({"kind": kind, "code": template.code, "source": template.text,
                     "variables": variables(template.text),
                     "text": text, "length": len(text), "bytes": euckr_len(text), "fallback": fallback,
                     "fallback_bytes": euckr_len(fallback.content), "replaced": replaced,
                     "unknown": [v for v in variables(template.text) if v not in params]})
    return page(request, "templates.html", title="Templates", rows=rows, prices=ctx.config.prices)
