"""The picture a manager reads without explanation: each month, what alimcast cost against what the old
SMS/LMS route would have cost, and the saving in percent.

Labels are English and numbers (a CJK font is not something every server has; a chart with boxes for
Hangul is worse than none). matplotlib draws it headless (Agg); PNG or SVG by the file's suffix.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

CHART_FORMATS = (".png", ".svg")
COST_COLOUR = "#1f77b4"
BASELINE_COLOUR = "#c7c7c7"
INVOICE_COLOUR = "#8c8c8c"


def render_chart(series: list[dict[str, Any]], output: Path, *, title_note: str = "") -> Path:
    """Draw ``series`` (``monthly_series``: month, cost_krw, baseline_krw, source) to ``output``."""
    suffix = output.suffix.lower()
    if suffix not in CHART_FORMATS:
        raise ValueError(f"{output}: the chart is written as .png or .svg")
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: searchable, selectable, small
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    months = [s["month"] for s in series]
    cost = [float(s["cost_krw"]) for s in series]
    baseline = [float(s["baseline_krw"]) for s in series]
    x = list(range(len(series)))
    width = 0.38
    fig, ax = plt.subplots(figsize=(11, 5.6), dpi=110)
    for i, s in enumerate(series):
        if s["source"] == "invoice":
            ax.bar(i, cost[i], width * 2, color=INVOICE_COLOUR, hatch="//", edgecolor="white")
        elif s["source"] == "ledger":
            ax.bar(i - width / 2, baseline[i], width, color=BASELINE_COLOUR)
            ax.bar(i + width / 2, cost[i], width, color=COST_COLOUR)
    top = max([*cost, *baseline, 1.0])
    for i, s in enumerate(series):
        if s["source"] == "ledger" and baseline[i] > 0:
            saving = 1 - cost[i] / baseline[i]
            ax.annotate(f"-{saving:.0%}" if saving >= 0 else f"+{-saving:.0%}",
                        (i + width / 2, cost[i]), xytext=(0, 4), textcoords="offset points", ha="center",
                        fontsize=10, fontweight="bold", color="#2ca02c" if saving >= 0 else "#d62728")
        elif s["source"] is None:
            ax.text(i, top * 0.02, "no data", ha="center", fontsize=8, color="#999999", rotation=90)
    ax.set_xticks(x, [_month_label(m) for m in months])
    # whole won only: an empty chart (top 1 KRW) otherwise got ticks 0.2, 0.4 … all printed as "0" or "1"
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel("KRW per month (VAT excluded)")
    ax.set_ylim(0, top * 1.15)
    ax.set_xlim(-0.7, len(series) - 0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#eeeeee")
    ax.set_axisbelow(True)
    real = [s for s in series if s["source"] == "ledger"]
    spent = sum((Decimal(s["cost_krw"]) for s in real), Decimal(0))
    would = sum((Decimal(s["baseline_krw"]) for s in real), Decimal(0))
    headline = "Messaging cost per month: AlimTalk with fallback vs. the old SMS/LMS route"
    plural = "month" if len(real) == 1 else "months"
    sub = (f"{len(real)} {plural} on AlimTalk: paid {spent:,.0f} KRW instead of {would:,.0f} KRW, "
           f"saved {would - spent:,.0f} KRW ({(would - spent) / would:.0%})" if would > 0
           else "No AlimTalk months yet")
    ax.set_title(f"{headline}\n{sub}{title_note}", fontsize=11, loc="left")
    handles = [Patch(color=BASELINE_COLOUR, label="Old route (SMS/LMS) would have cost"),
               Patch(color=COST_COLOUR, label="Paid with AlimTalk (incl. SMS/LMS fallbacks); green: % saved")]
    if any(s["source"] == "invoice" for s in series):
        handles.append(Patch(facecolor=INVOICE_COLOUR, hatch="//", edgecolor="white",
                             label="Before AlimTalk (old invoice)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, format=suffix[1:])
    plt.close(fig)
    return output


def _month_label(month: str) -> str:
    names = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    year, mon = month.split("-")
    return f"{names[int(mon) - 1]}\n{year}"
