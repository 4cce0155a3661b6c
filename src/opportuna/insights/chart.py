"""The forecast chart, drawn on the server as SVG: geometry here, markup in the template.

Per period a stacked bar (won at the bottom, solid; weighted open on top, hatched, so the two
differ without colour), the P10-P90 range as a whisker and a shaded band across periods with
the P50 as a line of dots, and the target as a dashed tick. Everything is computed in SVG user
units of a fixed view box; the browser scales it to the page and the printer to the paper.
Labels are made by the caller's locale (numbers) and translations (period names).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.formats import number_format
from django.utils.translation import gettext

from opportuna.insights.selectors import ReportLine

WIDTH = 760
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 84, 12, 14, 34
# At most this many period names under the axis; the others are skipped, not squeezed.
MAX_LABELS = 12


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Bar:
    """One period: its line of the report, and where its marks go."""

    line: ReportLine
    x: float
    width: float
    center: float
    won_y: float
    won_height: float
    open_y: float
    open_height: float
    p10_y: float
    p50_y: float
    p90_y: float
    target_y: float | None
    show_label: bool
    summary: str  # the period's figures in words, for a tooltip

    @property
    def cap_left(self) -> float:
        return round(self.center - 6, 2)

    @property
    def cap_right(self) -> float:
        return round(self.center + 6, 2)

    @property
    def target_left(self) -> float:
        return round(self.x - 4, 2)

    @property
    def target_right(self) -> float:
        return round(self.x + self.width + 4, 2)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: float
    top: int
    bottom: float
    bars: list[Bar]
    ticks: list[Tick]
    band_points: str  # polygon P90 left to right, then P10 back; "" for a single period
    median_points: str
    has_target: bool

    @property
    def tick_x(self) -> int:
        return self.left - 6

    @property
    def label_y(self) -> float:
        return self.bottom + 16


def nice_step(largest: float, steps: int = 5) -> int:
    """A round step (1, 2, 2.5 or 5 times a power of ten, at least 1) for about `steps` ticks."""
    raw = max(largest / steps, 1.0)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return max(int(factor * power), 1)
    return int(10 * power)  # pragma: no cover - the loop always returns


def _units(cents: int) -> str:
    return number_format(round(cents / 100), 0, use_l10n=True, force_grouping=True)


def _summary(line: ReportLine) -> str:
    text = gettext(
        "%(period)s: won %(won)s, weighted open %(open)s, range %(p10)s to %(p90)s (P50 %(p50)s)"
    ) % {
        "period": line.label,
        "won": _units(line.row.won),
        "open": _units(line.row.weighted_open),
        "p10": _units(line.band.p10),
        "p90": _units(line.band.p90),
        "p50": _units(line.band.p50),
    }
    if line.target_amount is not None:
        text += gettext(", target %(target)s") % {"target": _units(line.target_amount)}
    return text


def forecast_chart(lines: Sequence[ReportLine]) -> Chart:
    """The chart of the period lines of a report (its `blocks[i].line`)."""
    plot_bottom = HEIGHT - BOTTOM
    plot_right = WIDTH - RIGHT
    largest = max(
        [
            max(
                line.row.won + line.row.weighted_open,
                line.band.p90,
                line.target_amount or 0,
            )
            for line in lines
        ]
        or [0]
    )
    step = nice_step(largest) if largest > 0 else 100_00
    top_value = step * max(math.ceil(largest / step), 1)

    def y(cents: int) -> float:
        return round(plot_bottom - (plot_bottom - TOP) * cents / top_value, 2)

    ticks = [Tick(y(value), _units(value)) for value in range(0, top_value + 1, step)]
    count = max(len(lines), 1)
    slot = (plot_right - LEFT) / count
    width = round(min(slot * 0.6, 60), 2)
    every = math.ceil(count / MAX_LABELS)
    bars = []
    for index, line in enumerate(lines):
        center = round(LEFT + slot * (index + 0.5), 2)
        won_top = y(line.row.won)
        open_top = y(line.row.won + line.row.weighted_open)
        bars.append(
            Bar(
                line=line,
                x=round(center - width / 2, 2),
                width=width,
                center=center,
                won_y=won_top,
                won_height=round(plot_bottom - won_top, 2),
                open_y=open_top,
                open_height=round(won_top - open_top, 2),
                p10_y=y(line.band.p10),
                p50_y=y(line.band.p50),
                p90_y=y(line.band.p90),
                target_y=y(line.target_amount) if line.target_amount is not None else None,
                show_label=index % every == 0,
                summary=_summary(line),
            )
        )
    band_points = ""
    median_points = ""
    if len(bars) > 1:
        upper = [f"{bar.center},{bar.p90_y}" for bar in bars]
        lower = [f"{bar.center},{bar.p10_y}" for bar in reversed(bars)]
        band_points = " ".join(upper + lower)
        median_points = " ".join(f"{bar.center},{bar.p50_y}" for bar in bars)
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=plot_right,
        top=TOP,
        bottom=plot_bottom,
        bars=bars,
        ticks=ticks,
        band_points=band_points,
        median_points=median_points,
        has_target=any(bar.target_y is not None for bar in bars),
    )


__all__ = ["Bar", "Chart", "Tick", "forecast_chart", "nice_step"]
