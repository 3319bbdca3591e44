"""Costs: the month's figures against the old SMS/LMS route (``alerts.cost_report``: totals, recipients, fallbacks,
failures, last year, and where the money went by hazard, feed, zone and provider), and the chart of cost against
the old route per month (``alerts.cost_chart``), drawn by the console itself as SVG: no CDN, no script library.
"""

from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import select

from alerts.cli.costs import book_of, last_months
from alerts.cost_report import Figures, breakdown, monthly_series, monthly_summary
from alerts.costs import month_of
from alerts.models import CostEntry
from alerts.web.context import DB, WebContext, web_context
from alerts.web.notices import zone_name
from alerts.web.templating import NAV, page

router = APIRouter()
NAV.add((60, "/costs", "Costs", "viewer"))
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
#: The breakdowns a manager reads under the month's totals (``channel`` is in the totals already).
SHOWN_BREAKDOWNS = (("hazard", "By hazard"), ("feed", "By feed"),
                    ("zone", "By subscribed zone (someone in two zones counts in both)"), ("provider", "By provider"))
#: pyplot keeps global state: one chart drawn at a time, whatever the server's thread pool does.
_CHART_LOCK = threading.Lock()


def _month(month: str | None, ctx: WebContext) -> str:
    month = month or month_of(ctx.now())
    if not MONTH.match(month):
        raise HTTPException(400, f"month {month!r}: expected YYYY-MM")
    return month


@router.get("/costs")
def costs_page(request: Request, session: DB, month: str | None = None,
               ctx: WebContext = Depends(web_context)) -> Response:
    month = _month(month, ctx)
    months = sorted(set(session.exec(select(CostEntry.month).distinct())) | {month}, reverse=True)
    summary = monthly_summary(session, month, book_of(ctx.config))
    groups = [(label, _named(by, breakdown(session, month, by))) for by, label in SHOWN_BREAKDOWNS]
    return page(request, "costs.html", title="Costs", month=month, months=months, summary=summary,
                report=summary.report_json(), groups=groups)


def _named(by: str, groups: dict[str, Figures]) -> dict[str, Figures]:
    """Zone codes as people say them (인천·경기북부앞바다 S1251100); other keys are names already."""
    if by != "zone":
        return groups
    return {f"{zone_name(key)} {key}" if zone_name(key) else key: fig for key, fig in groups.items()}


@router.get("/costs/chart.svg")
def cost_chart(session: DB, month: str | None = None, months: int = 12,
               ctx: WebContext = Depends(web_context)) -> Response:
    """Cost against the old route for ``months`` months ending with ``month`` (the CLI's ``costs chart``)."""
    from alerts.cost_chart import render_chart

    month = _month(month, ctx)
    if not 1 <= months <= 60:
        raise HTTPException(400, f"months {months}: use 1 to 60")
    series = monthly_series(session, last_months(month, months), book_of(ctx.config))
    with tempfile.TemporaryDirectory(prefix="alimcast-chart-") as tmp, _CHART_LOCK:
        svg = render_chart(series, Path(tmp) / "chart.svg").read_bytes()
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=60"})
