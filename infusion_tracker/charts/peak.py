"""Peak BP and HR rise per infusion: grouped bars per infusion number, peak SBP rise (solid)
and peak HR rise (hollow) above that session's baseline.

`plan()` computes an immutable PeakPlot; `render()` draws it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from .svg import (
    BP_COLOUR,
    HR_COLOUR,
    INK,
    MUTED,
    WHITE,
    Box,
    LinearScale,
    Tick,
    document,
    el,
    empty,
    fmt,
    gridlines,
    legend,
    nice_step,
    px,
    text,
    tooltip,
)

Row = tuple[int, int | None, int | None]  # infusion number, SBP rise, HR rise


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    number: int
    rise: int | None  # None: not recorded
    hollow: bool  # HR bars are hollow, SBP bars solid (told apart without colour)


@dataclass(frozen=True)
class PeakPlot:
    width: int
    height: int
    title: str
    desc: str
    scale: LinearScale
    box: Box
    grid: tuple[int, ...]
    bars: tuple[Bar, ...]
    labels: tuple[Tick, ...]  # "#n" under every infusion, or every few when crowded
    show_values: bool  # room to write each bar's value


def _desc(rows: Sequence[Row]) -> str:
    def said(rise: int | None, unit: str) -> str:
        return "not recorded" if rise is None else f"{rise:+d} {unit}"

    return (
        "Peak rise above baseline per infusion. "
        + "; ".join(
            f"Infusion {n}: systolic BP {said(sbp, 'mmHg')}, heart rate {said(hr, 'bpm')}"
            for n, sbp, hr in rows
        )
        + "."
    )


def plan(rows: Sequence[Row], *, title: str, width: int, height: int) -> PeakPlot:
    box = Box(48, 40, width - 16, height - 40)
    values = [v for _, sbp, hr in rows for v in (sbp, hr) if v is not None]
    hi = max(10, math.ceil(max(values + [0]) / 10) * 10)
    lo = min(0, math.floor(min(values + [0]) / 10) * 10)
    slot = box.width / len(rows)
    bar = max(2.0, min(24.0, slot * 0.35))
    label_every = max(1, math.ceil(30 / slot))
    bars = []
    for i, (number, sbp, hr) in enumerate(rows):
        centre = box.left + slot * (i + 0.5)
        bars.append(Bar(round(centre - bar, 1), bar, number, sbp, hollow=False))
        bars.append(Bar(round(centre, 1), bar, number, hr, hollow=True))
    return PeakPlot(
        width=width,
        height=height,
        title=title,
        desc=_desc(rows),
        scale=LinearScale(lo, hi, box.top, box.bottom),
        box=box,
        grid=tuple(range(lo, hi + 1, int(nice_step(hi - lo, 6, (5, 10, 20, 25, 50, 100))))),
        bars=tuple(bars),
        labels=tuple(
            Tick(box.left + slot * (i + 0.5), f"#{row[0]}")
            for i, row in enumerate(rows)
            if i % label_every == 0
        ),
        show_values=slot >= 40,
    )


# A patient page's chart is mostly its bars (60 for 30 sessions): each is written straight, as
# `el` would write it (the same attributes in the same order; tests/test_charts.py compares).
_SBP = ("SBP", "mmHg", f'fill="{BP_COLOUR}" stroke="{INK}" stroke-width="1" class="bar bar--sbp"')
_HR = ("HR", "bpm", f'fill="{WHITE}" stroke="{HR_COLOUR}" stroke-width="2" class="bar bar--hr"')


def _bar(plot: PeakPlot, bar: Bar) -> list[str]:
    y = plot.scale.y
    middle = round(bar.x + bar.width / 2, 1)
    if bar.rise is None:
        return [
            text(
                middle,
                round(y(0), 1) - 4,
                "n/a" if plot.show_values else "–",
                text_anchor="middle",
                fill=MUTED,
                class_="bar-missing",
            )
        ]
    short, unit, look = _HR if bar.hollow else _SBP
    top, bottom = sorted((y(bar.rise), y(0)))
    tip = tooltip(f"Infusion {bar.number}: {short} {bar.rise:+d} {unit}")
    parts = [
        f'<rect x="{fmt(bar.x)}" y="{px(top)}" width="{px(bar.width)}" '
        f'height="{px(max(bottom - top, 1))}" {look}>{tip}</rect>'
    ]
    if plot.show_values:  # its value above it (below, when it falls), as `text` writes it
        label_y = top - 4 if bar.rise >= 0 else bottom + 12
        parts.append(
            f'<text x="{px(middle)}" y="{px(label_y)}" text-anchor="middle" font-size="10" '
            f'class="bar-value" fill="{INK}">{bar.rise:+d}</text>'
        )
    return parts


def _signed(rise: int) -> str:
    return f"{rise:+g}" if rise else "0"


def render(plot: PeakPlot) -> Markup:
    box = plot.box
    body = legend(
        box.left,
        16,
        [
            (
                el("rect", x=-5, y=-5, width=10, height=10, fill=BP_COLOUR, stroke=INK),
                "Peak systolic BP rise (mmHg)",
            ),
            (
                el(
                    "rect",
                    x=-5,
                    y=-5,
                    width=10,
                    height=10,
                    fill=WHITE,
                    stroke=HR_COLOUR,
                    stroke_width=2,
                ),
                "Peak heart rate rise (bpm)",
            ),
        ],
    )
    body.append(gridlines(plot.grid, plot.scale, box, _signed))
    body.append(el("line", x1=box.left, x2=box.left, y1=box.top, y2=box.bottom, stroke=INK))
    for bar in plot.bars:
        body += _bar(plot, bar)
    body += [
        text(round(tick.at, 1), box.bottom + 16, tick.label, text_anchor="middle", class_="tick")
        for tick in plot.labels
    ]
    zero = round(plot.scale.y(0), 1)
    body.append(el("line", x1=box.left, x2=box.right, y1=zero, y2=zero, stroke=INK))
    body.append(
        text(
            round(box.left + box.width / 2, 1),
            box.bottom + 32,
            "Infusion number",
            text_anchor="middle",
            fill=MUTED,
            font_size=11,
        )
    )
    return document("peak", plot.title, plot.desc, plot.width, plot.height, body)


def peak_rise_chart(
    rows: list[Row],
    *,
    title: str,
    width: int = 900,
    height: int = 260,
) -> Markup:
    """The peak-rise chart of a patient's series (see the module docstring)."""
    rows = sorted(rows)
    if not rows:
        return empty("peak", title, "No infusions yet.", width)
    return render(plan(rows, title=title, width=width, height=height))
