"""The cost chart's y axis names each tick once: an empty year (no AlimTalk months yet) drew ticks at fractions of
a won, all printed as "0" or "1" (seen on the Costs page's screenshot)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alerts.cost_chart import render_chart


def _y_tick_labels(svg: str) -> list[str]:
    """The text of each y tick, in order (SVG text stays text: svg.fonttype none)."""
    labels = []
    for chunk in svg.split('<g id="ytick_')[1:]:
        found = re.search(r"<text[^>]*>([^<]*)</text>", chunk)
        assert found, chunk[:200]
        labels.append(found.group(1).strip())
    return labels


@pytest.mark.parametrize("top", [None, 3, 1_092])
def test_y_ticks_are_distinct(tmp_path: Path, top: int | None) -> None:
    months = [f"2026-{m:02d}" for m in range(1, 13)]
    series = [{"month": m, "cost_krw": "0", "baseline_krw": "0", "source": None} for m in months]
    if top is not None:
        series[-1] = {"month": months[-1], "cost_krw": str(top // 3), "baseline_krw": str(top), "source": "ledger"}
    svg = render_chart(series, tmp_path / "chart.svg").read_text(encoding="utf-8")
    labels = _y_tick_labels(svg)
    assert len(labels) >= 2, labels
    assert len(set(labels)) == len(labels), labels
