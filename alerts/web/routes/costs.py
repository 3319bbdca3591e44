"""Costs: the month's figures by channel against the old SMS/LMS route (``alerts.costs``).

The chart from the costs issue goes in the ``#cost-chart`` placeholder of ``costs.html`` when it lands.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import select

from alerts.costs import month_of, monthly_summary
from alerts.models import CostEntry
from alerts.web.context import DB, WebContext, web_context
from alerts.web.templating import NAV, page

router = APIRouter()
NAV.add((60, "/costs", "Costs", "viewer"))
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@router.get("/costs")
def costs_page(request: Request, session: DB, month: str | None = None,
               ctx: WebContext = Depends(web_context)) -> Response:
    month = month or month_of(ctx.now())
    if not MONTH.match(month):
        raise HTTPException(400, f"month {month!r}: expected YYYY-MM")
    months = sorted(set(session.exec(select(CostEntry.month).distinct())) | {month}, reverse=True)
    summary = monthly_summary(session, month)
    return page(request, "costs.html", title="Costs", month=month, months=months, summary=summary,
                report=summary.report_json())
