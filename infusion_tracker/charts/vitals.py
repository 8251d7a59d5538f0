"""Vital signs during a session: BP (▼ systolic, ▲ diastolic, joined by a bar), HR (● line)
and SpO2 (■, own panel on an 80–100 % axis) against time; infusion events as labelled dashed
lines; abnormal readings ringed, critical ones bold-ringed with "!".

`plan()` computes an immutable VitalsPlot (scales, boxes, positioned marks); `render()` draws it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup

from .svg import (
    BP_COLOUR,
    HR_COLOUR,
    INK,
    SPO2_COLOUR,
    Box,
    LinearScale,
    Tick,
    TimeScale,
    axis_title,
    document,
    el,
    empty,
    gridlines,
    hhmm_utc,
    legend,
    marker,
    marker_writer,
    pad_range,
    polyline,
    px,
    ring,
    span_words,
    text,
    time_ticks,
)


@dataclass(frozen=True)
class VitalPoint:
    at: datetime
    systolic: int | None = None
    diastolic: int | None = None
    heart_rate: int | None = None
    spo2: int | None = None
    abnormal: bool = False
    critical: bool = False
    # Optional {field: "abnormal" | "critical"} to ring just the flagged values; without it a
    # flagged reading rings all of its plotted values.
    field_levels: Mapping[str, str] | None = None
    # A voided reading is not drawn; the description says how many were left out.
    voided: bool = False

    @property
    def level(self) -> str | None:
        return "critical" if self.critical else "abnormal" if self.abnormal else None

    def level_of(self, name: str) -> str | None:
        return self.field_levels.get(name) if self.field_levels is not None else self.level


@dataclass(frozen=True)
class EventMark:
    at: datetime
    label: str


@dataclass(frozen=True)
class Series:
    name: str
    panel: str  # "main" or "spo2"
    colour: str
    dash: str | None
    shape: str
    short: str
    unit: str


SERIES = (
    Series("systolic", "main", BP_COLOUR, None, "down", "SBP", "mmHg"),
    Series("diastolic", "main", BP_COLOUR, "2 3", "up", "DBP", "mmHg"),
    Series("heart_rate", "main", HR_COLOUR, "8 4", "circle", "HR", "bpm"),
    Series("spo2", "spo2", SPO2_COLOUR, None, "square", "SpO2", "%"),
)
LABEL_CHAR_PX = 7  # about 7 px per character of an 11 px bold event label
LABEL_ROW_PX = 12


@dataclass(frozen=True)
class PlacedValue:
    series: Series
    x: float
    y: float
    value: int
    tip: str
    level: str | None


@dataclass(frozen=True)
class PlacedEvent:
    x: float
    label: str
    label_x: float
    label_y: float
    flipped: bool  # written to the left of its line


@dataclass(frozen=True)
class PlacedFlag:
    x: float
    level: str
    critical: bool


@dataclass(frozen=True)
class VitalsPlot:
    width: int
    height: int
    title: str
    desc: str
    time: TimeScale
    main: LinearScale
    spo2: LinearScale
    main_box: Box
    spo2_box: Box
    main_grid: tuple[int, ...]
    spo2_grid: tuple[int, ...]
    lane_y: float
    ticks: tuple[Tick, ...]
    events: tuple[PlacedEvent, ...]
    bars: tuple[tuple[float, float, float], ...]  # x, systolic y, diastolic y
    lines: tuple[tuple[Series, tuple[tuple[float, float], ...]], ...]
    values: tuple[PlacedValue, ...]
    flags: tuple[PlacedFlag, ...]


# --- Planning: data to positions -------------------------------------------------------------


def _main_scale(points: Sequence[VitalPoint], top: float, bottom: float) -> LinearScale:
    values = [v for p in points for v in (p.systolic, p.diastolic, p.heart_rate) if v is not None]
    lo = math.floor(min(values + [60]) / 20) * 20
    hi = math.ceil(max(values + [160]) / 20) * 20
    return LinearScale(lo, hi, top, bottom)


def _spo2_scale(points: Sequence[VitalPoint], top: float, bottom: float) -> LinearScale:
    values = [p.spo2 for p in points if p.spo2 is not None]
    lo = min(80, math.floor(min(values + [100]) / 10) * 10)
    return LinearScale(lo, 100, top, bottom)


def _grid(scale: LinearScale, step: int) -> tuple[int, ...]:
    return tuple(range(int(scale.lo), int(scale.hi) + 1, step))


def _spo2_step(scale: LinearScale, box: Box) -> int:
    """Every 5 % only when the panel is tall enough to keep the labels 14 px apart."""
    return 5 if (box.bottom - box.top) / (scale.hi - scale.lo) * 5 >= 14 else 10


def _place_events(
    marks: Sequence[EventMark], time: TimeScale, box: Box, width: int
) -> tuple[PlacedEvent, ...]:
    """Dashed lines with labels; a label takes the first row where it clears earlier labels,
    and is written left of its line when it would run off the right edge."""
    row_ends: list[float] = []
    placed = []
    for mark in marks:
        x = round(time.x(mark.at), 1)
        label_width = LABEL_CHAR_PX * len(mark.label)
        flipped = x + 3 + label_width > width
        start = max(0.0, x - 3 - label_width) if flipped else x + 3
        row = next((i for i, end in enumerate(row_ends) if start > end + 4), len(row_ends))
        if row == len(row_ends):
            row_ends.append(0.0)
        row_ends[row] = start + label_width
        placed.append(
            PlacedEvent(
                x=x,
                label=mark.label,
                label_x=start + label_width if flipped else start,
                label_y=round(box.top + 11 + LABEL_ROW_PX * row, 1),
                flipped=flipped,
            )
        )
    return tuple(placed)


def _place_values(
    points: Sequence[VitalPoint],
    time: TimeScale,
    scales: Mapping[str, LinearScale],
    fmt_time: Callable[[datetime], str],
) -> tuple[PlacedValue, ...]:
    placed = []
    for p in points:
        x, at = time.x(p.at), fmt_time(p.at)  # once for the point's four values
        for series in SERIES:
            value = getattr(p, series.name)
            if value is None:
                continue
            placed.append(
                PlacedValue(
                    series=series,
                    x=x,
                    y=scales[series.panel].y(value),
                    value=value,
                    tip=f"{at} {series.short} {value} {series.unit}",
                    level=p.level_of(series.name),
                )
            )
    return tuple(placed)


def _bars(points: Sequence[VitalPoint], time: TimeScale, main: LinearScale):
    return tuple(
        (round(time.x(p.at), 1), round(main.y(p.systolic), 1), round(main.y(p.diastolic), 1))
        for p in points
        if p.systolic is not None and p.diastolic is not None
    )


def _lines(values: Sequence[PlacedValue]):
    return tuple(
        (series, tuple((v.x, v.y) for v in values if v.series is series)) for series in SERIES
    )


def plan(
    points: Sequence[VitalPoint],
    marks: Sequence[EventMark],
    *,
    width: int,
    height: int,
    title: str,
    fmt_time: Callable[[datetime], str],
) -> VitalsPlot:
    """Everything the chart draws, positioned: `points` without the voided ones, sorted."""
    drawn = sorted((p for p in points if not p.voided), key=lambda p: p.at)
    marks = sorted(marks, key=lambda m: m.at)
    left, right, top, bottom = 58, width - 16, 52, height - 30
    main_bottom = top + (bottom - top - 14) * 0.7
    main_box = Box(left, top, right, main_bottom)
    spo2_box = Box(left, main_bottom + 14, right, bottom)
    times = [p.at for p in drawn] + [m.at for m in marks]
    t0, t1 = pad_range(min(times), max(times), timedelta(minutes=10))
    time = TimeScale(t0, t1, left, right)
    main = _main_scale(drawn, main_box.top, main_box.bottom)
    spo2 = _spo2_scale(drawn, spo2_box.top, spo2_box.bottom)
    values = _place_values(drawn, time, {"main": main, "spo2": spo2}, fmt_time)
    return VitalsPlot(
        width=width,
        height=height,
        title=title,
        desc=_desc(drawn, len(points) - len(drawn), marks, fmt_time),
        time=time,
        main=main,
        spo2=spo2,
        main_box=main_box,
        spo2_box=spo2_box,
        main_grid=_grid(main, 20 if main.hi - main.lo <= 160 else 40),
        spo2_grid=_grid(spo2, _spo2_step(spo2, spo2_box)),
        lane_y=36,
        ticks=tuple(
            Tick(time.x(t), fmt_time(t))
            for t in time_ticks(t0, t1, max(2, int(time.x1 - left) // 90))
        ),
        events=_place_events(marks, time, main_box, width),
        bars=_bars(drawn, time, main),
        lines=_lines(values),
        values=values,
        flags=tuple(
            PlacedFlag(time.x(p.at), p.level, p.critical) for p in drawn if p.level is not None
        ),
    )


def _desc(
    points: Sequence[VitalPoint],
    voided: int,
    marks: Sequence[EventMark],
    fmt_time: Callable[[datetime], str],
) -> str:
    count = len(points)
    words = [
        f"{count} reading{'s' if count != 1 else ''} from {fmt_time(points[0].at)} "
        f"to {fmt_time(points[-1].at)}."
    ]
    for name, label, unit in (
        ("systolic", "Systolic BP", " mmHg"),
        ("diastolic", "Diastolic BP", " mmHg"),
        ("heart_rate", "Heart rate", " bpm"),
        ("spo2", "SpO2", " %"),
    ):
        values = [getattr(p, name) for p in points if getattr(p, name) is not None]
        if values:
            words.append(f"{label} {span_words(values)}{unit}.")
    critical = sum(p.critical for p in points)
    abnormal = sum(p.abnormal and not p.critical for p in points)
    words.append(f"{critical} critical and {abnormal} abnormal reading(s).")
    if voided:
        words.append(f"{voided} voided reading{'s' if voided != 1 else ''} not shown.")
    if marks:
        words.append("Events: " + ", ".join(f"{m.label} {fmt_time(m.at)}" for m in marks) + ".")
    return " ".join(words)


# --- Rendering: positions to SVG -------------------------------------------------------------


# The same on every chart: written once.
_LEGEND = "".join(
    legend(
        58,
        16,
        [
            (marker("down", 0, 0, BP_COLOUR, "legend-mark"), "Systolic BP"),
            (marker("up", 0, 0, BP_COLOUR, "legend-mark"), "Diastolic BP"),
            (marker("circle", 0, 0, HR_COLOUR, "legend-mark"), "Heart rate"),
            (marker("square", 0, 0, SPO2_COLOUR, "legend-mark"), "SpO2"),
            (ring(0, 0, "abnormal", "legend-mark"), "abnormal"),
            (
                ring(0, 0, "critical", "legend-mark")
                + text(0, 4, "!", font_weight="bold", text_anchor="middle"),
                "critical",
            ),
        ],
    )
)


def _frame(plot: VitalsPlot) -> list[str]:
    """Grids, axis titles, axis lines and time ticks of both panels."""
    main, spo2 = plot.main_box, plot.spo2_box
    parts = [
        gridlines(plot.main_grid, plot.main, main),
        axis_title(14, main.top, main.bottom, "mmHg / bpm"),
        gridlines(plot.spo2_grid, plot.spo2, spo2),
        axis_title(14, spo2.top, spo2.bottom, "SpO2 %"),
    ]
    for x1, y1, x2, y2 in (
        (main.left, main.top, main.left, main.bottom),
        (spo2.left, spo2.top, spo2.left, spo2.bottom),
        (spo2.left, spo2.bottom, spo2.right, spo2.bottom),
    ):
        parts.append(
            el("line", x1=x1, y1=round(y1, 1), x2=x2, y2=round(y2, 1), stroke=INK, stroke_width=1)
        )
    for tick in plot.ticks:
        x = round(tick.at, 1)
        parts.append(el("line", x1=x, x2=x, y1=spo2.bottom, y2=spo2.bottom + 5, stroke=INK))
        parts.append(
            text(x, spo2.bottom + 18, tick.label, text_anchor="middle", class_="tick tick--time")
        )
    return parts


def _event(plot: VitalsPlot, event: PlacedEvent) -> str:
    line = el(
        "line",
        x1=event.x,
        x2=event.x,
        y1=plot.main_box.top,
        y2=plot.spo2_box.bottom,
        stroke=INK,
        stroke_width=1.5,
        stroke_dasharray="6 4",
    )
    label = text(
        round(event.label_x, 1),
        event.label_y,
        event.label,
        font_size=11,
        font_weight="bold",
        text_anchor="end" if event.flipped else None,
        class_="mark-label",
    )
    return f'<g class="mark">{line}{label}</g>'


# Each series' markers, what they share written once.
_MARKERS = {
    s.name: marker_writer(s.shape, s.colour, f"point point--{s.name}") for s in SERIES
}


def _value(v: PlacedValue) -> str:
    drawn = _MARKERS[v.series.name](v.x, v.y, v.tip)
    if v.level in ("abnormal", "critical"):
        drawn += ring(v.x, v.y, v.level)
    return drawn


# One per reading with both pressures (40 on a benchmark session, of 100 elements drawn with
# `el`): written straight, as `el` would write it (tests/test_charts.py compares).
def _bp_bar(x: float, y1: float, y2: float) -> str:
    at = px(x)
    return (
        f'<line x1="{at}" x2="{at}" y1="{px(y1)}" y2="{px(y2)}" '
        f'stroke="{BP_COLOUR}" stroke-width="2" class="bp-bar"/>'
    )


def _flag(plot: VitalsPlot, flag: PlacedFlag) -> str:
    """The flags lane shows every flagged reading, whatever made it so (e.g. rhythm)."""
    mark = ring(flag.x, plot.lane_y, flag.level, "lane-ring")
    if flag.critical:
        mark += text(
            round(flag.x, 1),
            plot.lane_y + 4,
            "!",
            font_weight="bold",
            text_anchor="middle",
            font_size=12,
        )
    return f'<g class="flag flag--{flag.level}">{mark}</g>'


def render(plot: VitalsPlot) -> Markup:
    body = [_LEGEND, *_frame(plot)]
    body += [_event(plot, event) for event in plot.events]
    # Series: BP bars, then lines, then markers on top.
    body += [_bp_bar(x, y1, y2) for x, y1, y2 in plot.bars]
    body += [polyline(line, s.colour, s.dash, f"line line--{s.name}") for s, line in plot.lines]
    body += [_value(v) for v in plot.values]
    body += [_flag(plot, flag) for flag in plot.flags]
    return document("vitals", plot.title, plot.desc, plot.width, plot.height, body)


def vitals_chart(
    points: list[VitalPoint],
    marks: list[EventMark],
    *,
    width: int = 900,
    height: int = 320,
    title: str,
    fmt_time: Callable[[datetime], str] | None = None,
) -> Markup:
    """The vitals chart of a session (see the module docstring)."""
    if not any(not p.voided for p in points):
        return empty("vitals", title, "No readings yet.", width)
    return render(
        plan(points, marks, width=width, height=height, title=title, fmt_time=fmt_time or hhmm_utc)
    )
