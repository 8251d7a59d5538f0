"""Outcome scores over time (PHQ-9, GAD-7, pain NRS …) against date, with the PHQ-9 baseline,
the response line (dashed, 50 % below baseline) and the remission line (dotted, PHQ-9 < 5).

`plan()` computes an immutable OutcomePlot; `render()` draws it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from markupsafe import Markup

from .svg import (
    BP_COLOUR,
    HR_COLOUR,
    INK,
    MUTED,
    SPO2_COLOUR,
    Box,
    LinearScale,
    Tick,
    TimeScale,
    axes,
    axis_title,
    date_utc,
    day_ticks,
    document,
    el,
    empty,
    fmt,
    gridlines,
    legend,
    marker,
    marker_writer,
    pad_range,
    polyline,
    spread,
    text,
    x_ticks,
)

SERIES_STYLES = [
    # marker shape, dash, colour: PHQ-9 first, then GAD-7, pain NRS, anything else.
    ("circle", None, INK),
    ("square", "8 4", HR_COLOUR),
    ("up", "2 3", BP_COLOUR),
    ("diamond", "12 3 2 3", SPO2_COLOUR),
    ("hollow", "4 4", MUTED),
]


@dataclass(frozen=True)
class PlacedSeries:
    name: str
    shape: str
    dash: str | None
    colour: str
    points: tuple[tuple[float, float, str], ...]  # x, y, tooltip


@dataclass(frozen=True)
class RefLine:
    y: float
    dash: str | None
    stroke_width: float
    cls: str


@dataclass(frozen=True)
class OutcomePlot:
    width: int
    height: int
    title: str
    desc: str
    time: TimeScale
    scale: LinearScale
    box: Box
    grid: tuple[int, ...]
    ticks: tuple[Tick, ...]
    series: tuple[PlacedSeries, ...]
    refs: tuple[RefLine, ...]
    ref_labels: tuple[tuple[float, str], ...]  # y, words (spread apart)


def _refs(
    scale: LinearScale,
    baseline: int | None,
    response_line: float | None,
    remission_line: float | None,
) -> list[tuple[RefLine, str]]:
    """Reference lines, each with its words for the right-hand label."""
    lines = []
    for value, words, dash, width, cls in (
        (baseline, f"Baseline PHQ-9 {baseline}", None, 1.5, "baseline"),
        (response_line, f"Response ≤ {fmt(response_line)}", "8 5", 1.5, "response"),
        (remission_line, f"Remission < {fmt(remission_line)}", "2 3", 2, "remission"),
    ):
        if value is not None:
            lines.append((RefLine(round(scale.y(value), 1), dash, width, cls), words))
    return lines


def _desc(
    series: Mapping[str, Sequence[tuple[datetime, int]]],
    fmt_date,
    baseline,
    response_line,
    remission_line,
) -> str:
    words = []
    for name, values in series.items():
        first, last = values[0], values[-1]
        words.append(
            f"{name}: {len(values)} score{'s' if len(values) != 1 else ''}, "
            f"{first[1]} on {fmt_date(first[0])} to {last[1]} on {fmt_date(last[0])}."
        )
    if baseline is not None:
        words.append(f"Baseline PHQ-9 {baseline}.")
    if response_line is not None:
        words.append(f"Response at or below {fmt(response_line)}.")
    if remission_line is not None:
        words.append(f"Remission below {fmt(remission_line)}.")
    return " ".join(words)


def plan(
    series: Mapping[str, Sequence[tuple[datetime, int]]],
    *,
    baseline: int | None,
    response_line: float | None,
    remission_line: float | None,
    title: str,
    width: int,
    height: int,
    fmt_date: Callable[[datetime], str],
    tz: tzinfo,
) -> OutcomePlot:
    box = Box(48, 40, width - 190, height - 36)
    dates = [at for values in series.values() for at, _ in values]
    t0, t1 = pad_range(min(dates), max(dates), timedelta(days=2))
    time = TimeScale(t0, t1, box.left, box.right)
    scores = [score for values in series.values() for _, score in values]
    hi = math.ceil(max(scores + [27, baseline or 0]) / 5) * 5
    scale = LinearScale(0, hi, box.top, box.bottom)
    placed = tuple(
        PlacedSeries(
            name,
            *SERIES_STYLES[min(i, len(SERIES_STYLES) - 1)],
            tuple(
                (time.x(at), scale.y(score), f"{name} {score} on {fmt_date(at)}")
                for at, score in values
            ),
        )
        for i, (name, values) in enumerate(series.items())
    )
    refs = _refs(scale, baseline, response_line, remission_line)
    return OutcomePlot(
        width=width,
        height=height,
        title=title,
        desc=_desc(series, fmt_date, baseline, response_line, remission_line),
        time=time,
        scale=scale,
        box=box,
        grid=tuple(range(0, hi + 1, 5 if hi <= 40 else 10)),
        ticks=tuple(
            Tick(time.x(t), fmt_date(t))
            for t in day_ticks(t0, t1, max(2, int(box.width) // 110), tz)
        ),
        series=placed,
        refs=tuple(line for line, _ in refs),
        ref_labels=tuple(spread(((line.y + 4, words) for line, words in refs), 14)),
    )


def render(plot: OutcomePlot) -> Markup:
    box = plot.box
    body = legend(
        box.left,
        16,
        [(marker(s.shape, 0, 0, s.colour, "legend-mark"), s.name) for s in plot.series],
    )
    body.append(gridlines(plot.grid, plot.scale, box))
    body.append(axis_title(12, box.top, box.bottom, "Score"))
    body += axes(box)
    body += x_ticks(plot.ticks, box.bottom, "tick tick--date")
    body += [
        el(
            "line",
            x1=box.left,
            x2=box.right,
            y1=ref.y,
            y2=ref.y,
            stroke=INK,
            stroke_width=ref.stroke_width,
            stroke_dasharray=ref.dash,
            class_=f"ref ref--{ref.cls}",
        )
        for ref in plot.refs
    ]
    body += [
        text(box.right + 8, round(y, 1), words, class_="ref-label") for y, words in plot.ref_labels
    ]
    for s in plot.series:
        body.append(polyline([(x, y) for x, y, _ in s.points], s.colour, s.dash, "line"))
        point = marker_writer(s.shape, s.colour, "point")
        body += [point(x, y, tip) for x, y, tip in s.points]
    return document("outcome", plot.title, plot.desc, plot.width, plot.height, body)


def outcome_chart(
    series: dict[str, list[tuple[datetime, int]]],
    *,
    baseline: int | None,
    response_line: float | None,
    remission_line: float | None,
    title: str,
    width: int = 900,
    height: int = 300,
    fmt_date: Callable[[datetime], str] | None = None,
    tz: tzinfo = UTC,
) -> Markup:
    """Scores against date (see the module docstring). `tz` is the zone `fmt_date` writes
    dates in, so each date tick stands at that day's midnight."""
    series = {name: sorted(values) for name, values in series.items() if values}
    if not series:
        return empty("outcome", title, "No scores yet.", width)
    return render(
        plan(
            series,
            baseline=baseline,
            response_line=response_line,
            remission_line=remission_line,
            title=title,
            width=width,
            height=height,
            fmt_date=fmt_date or date_utc,
            tz=tz,
        )
    )
