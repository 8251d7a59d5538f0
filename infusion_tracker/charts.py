"""Server-rendered SVG charts: no JavaScript, no library, no `style=` (the CSP blocks it).

Every chart is `<svg role="img">` with a <title> and a <desc> that says in words what the
picture shows, and prints in black and white: series differ by marker shape and dash, flags
by ring weight and a "!", never by colour alone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape

INK = "#0b0c0c"
GRID = "#d5d5d5"
MUTED = "#505a5f"
BP_COLOUR = "#a4161a"
HR_COLOUR = "#1d4f91"
SPO2_COLOUR = "#2a6f2b"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"


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

    @property
    def level(self) -> str | None:
        return "critical" if self.critical else "abnormal" if self.abnormal else None


@dataclass(frozen=True)
class EventMark:
    at: datetime
    label: str


# --- SVG building blocks ------------------------------------------------------------------


def _attr_name(name: str) -> str:
    return {"class_": "class"}.get(name, name.replace("_", "-"))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _el(tag: str, content: str | None = None, **attrs) -> str:
    """One element; attribute values and text content are escaped."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None:
            continue
        parts.append(f'{_attr_name(name)}="{escape(_fmt(value))}"')
    opening = " ".join(parts)
    if content is None:
        return f"<{opening}/>"
    return f"<{opening}>{content}</{tag}>"


def _text(x, y, words: str, **attrs) -> str:
    attrs.setdefault("fill", INK)
    return _el("text", str(escape(words)), x=x, y=y, **attrs)


def _chart_id(kind: str, title: str) -> str:
    return f"chart-{kind}-{hashlib.sha1(title.encode(), usedforsecurity=False).hexdigest()[:8]}"


def _svg(kind: str, title: str, desc: str, width: int, height: int, body: list[str]) -> Markup:
    ident = _chart_id(kind, title)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="{escape(FONT)}" font-size="12" '
        f'class="chart-svg chart-svg--{kind}">'
    )
    # Every piece was built by _el/_text, which escape all attribute values and text.
    return Markup(  # noqa: S704
        head
        + _el("title", str(escape(title)), id=f"{ident}-title")
        + _el("desc", str(escape(desc)), id=f"{ident}-desc")
        + "".join(body)
        + "</svg>"
    )


def _empty(kind: str, title: str, message: str, width: int) -> Markup:
    body = [_text(12, 30, message, font_size=14, class_="chart-empty")]
    return _svg(kind, title, message, width, 48, body)


def _polyline(points: list[tuple[float, float]], colour: str, dash: str | None, cls: str) -> str:
    if len(points) < 2:
        return ""
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return _el(
        "polyline",
        points=path,
        fill="none",
        stroke=colour,
        stroke_width=2,
        stroke_dasharray=dash,
        class_=cls,
    )


def _marker(shape: str, x: float, y: float, colour: str, cls: str, label: str = "") -> str:
    """A data marker; `label` becomes a tooltip (<title>) for the value."""
    tip = _el("title", str(escape(label))) if label else None
    if shape == "circle":
        return _el(
            "circle",
            tip,
            cx=round(x, 1),
            cy=round(y, 1),
            r=4,
            fill=colour,
            stroke=INK,
            stroke_width=0.75,
            class_=cls,
        )
    if shape == "square":
        return _el(
            "rect",
            tip,
            x=round(x - 3.5, 1),
            y=round(y - 3.5, 1),
            width=7,
            height=7,
            fill=colour,
            stroke=INK,
            stroke_width=0.75,
            class_=cls,
        )
    if shape == "hollow":
        return _el(
            "circle",
            tip,
            cx=round(x, 1),
            cy=round(y, 1),
            r=4,
            fill="#fff",
            stroke=colour,
            stroke_width=2,
            class_=cls,
        )
    if shape == "diamond":
        d = f"M{x:.1f} {y - 5:.1f} L{x + 5:.1f} {y:.1f} L{x:.1f} {y + 5:.1f} L{x - 5:.1f} {y:.1f} Z"
        return _el("path", tip, d=d, fill=colour, stroke=INK, stroke_width=0.75, class_=cls)
    # Triangles: "down" (systolic, pointing at the diastolic below) and "up" (diastolic).
    s = -1 if shape == "down" else 1
    d = f"M{x - 5:.1f} {y + 4 * s:.1f} L{x + 5:.1f} {y + 4 * s:.1f} L{x:.1f} {y - 5 * s:.1f} Z"
    return _el("path", tip, d=d, fill=colour, stroke=INK, stroke_width=0.75, class_=cls)


def _ring(x: float, y: float, level: str, cls: str = "ring") -> str:
    return _el(
        "circle",
        cx=round(x, 1),
        cy=round(y, 1),
        r=8 if level == "abnormal" else 9,
        fill="none",
        stroke=INK,
        stroke_width=1.5 if level == "abnormal" else 3,
        class_=f"{cls} {cls}--{level}",
    )


def _nice_step(span: float, target: int, steps: Iterable[float]) -> float:
    for step in steps:
        if span / step <= target:
            return step
    return list(steps)[-1]


def _y_scale(lo: float, hi: float, top: float, bottom: float) -> Callable[[float], float]:
    def y(value: float) -> float:
        return bottom - (value - lo) / (hi - lo) * (bottom - top)

    return y


def _time_ticks(t0: datetime, t1: datetime, target: int) -> list[datetime]:
    """Round-minute ticks (1, 2, 5 … 240 min apart) between two times."""
    span_min = (t1 - t0).total_seconds() / 60
    step = _nice_step(span_min, target, (1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 720, 1440))
    step_s = int(step * 60)
    first = math.ceil(t0.timestamp() / step_s) * step_s
    ticks = []
    t = first
    while t <= t1.timestamp():
        ticks.append(datetime.fromtimestamp(t, UTC))
        t += step_s
    return ticks


def _day_ticks(t0: datetime, t1: datetime, target: int) -> list[datetime]:
    span_days = (t1 - t0).total_seconds() / 86400
    step = int(_nice_step(span_days, target, (1, 2, 7, 14, 28, 56, 91, 182, 365, 730)))
    start = datetime(t0.year, t0.month, t0.day, tzinfo=UTC)
    if start < t0:
        start += timedelta(days=1)
    ticks = []
    while start <= t1:
        ticks.append(start)
        start += timedelta(days=step)
    return ticks


def _spread(labels: list[tuple[float, str]], gap: float) -> list[tuple[float, str]]:
    """Nudge right-hand line labels apart vertically so none overlap."""
    placed: list[tuple[float, str]] = []
    for y, words in sorted(labels):
        if placed and y - placed[-1][0] < gap:
            y = placed[-1][0] + gap
        placed.append((y, words))
    return placed


def _hhmm_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%H:%M")


def _date_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%d %b %Y")


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{_fmt(lo)}" if lo == hi else f"{_fmt(lo)}–{_fmt(hi)}"


def _legend(x: float, y: float, entries: list[tuple[str, str]]) -> list[str]:
    """Legend in words, each preceded by a sample of its mark (`svg` drawn at 0,0)."""
    out = []
    x += 10  # room for the widest sample (a ring) left of centre
    for sample, words in entries:
        out.append(f'<g transform="translate({x:.1f},{y:.1f})" class="legend-entry">{sample}</g>')
        out.append(_text(x + 14, y + 4, words, class_="legend"))
        x += 14 + 6.3 * len(words) + 28
    return out


def _axis_title(x: float, y_top: float, y_bottom: float, words: str) -> str:
    """A y-axis title written up the left margin, centred on its panel."""
    y = round((y_top + y_bottom) / 2, 1)
    return _el(
        "text",
        str(escape(words)),
        x=x,
        y=y,
        transform=f"rotate(-90 {x} {y})",
        text_anchor="middle",
        fill=MUTED,
        font_size=11,
        class_="axis-title",
    )


def _pad_range(t0: datetime, t1: datetime, minimum: timedelta) -> tuple[datetime, datetime]:
    """Widen a time range to at least `minimum`, plus 3 % each side so no mark sits on an axis."""
    if t1 - t0 < minimum:
        half = (minimum - (t1 - t0)) / 2
        t0, t1 = t0 - half, t1 + half
    edge = (t1 - t0) * 0.03
    return t0 - edge, t1 + edge


# --- Vitals during a session --------------------------------------------------------------


def _gridlines(
    values: Iterable[int],
    y: Callable[[float], float],
    x1: float,
    x2: float,
    label: Callable[[int], str] = str,
) -> list[str]:
    """A horizontal grid line with its tick label for each value of a panel's axis."""
    parts = []
    for value in values:
        yy = round(y(value), 1)
        parts.append(_el("line", x1=x1, x2=x2, y1=yy, y2=yy, stroke=GRID, stroke_width=1))
        parts.append(
            _text(x1 - 6, round(yy + 4, 1), label(value), text_anchor="end", class_="tick")
        )
    return parts


def vitals_chart(
    points: list[VitalPoint],
    marks: list[EventMark],
    *,
    width: int = 900,
    height: int = 320,
    title: str,
    fmt_time: Callable[[datetime], str] | None = None,
) -> Markup:
    """BP (▼ systolic, ▲ diastolic, joined by a bar), HR (● line) and SpO2 (■, own panel on an
    80–100 % axis) against time; infusion events as labelled dashed lines; abnormal readings
    ringed, critical ones bold-ringed with "!"."""
    fmt_time = fmt_time or _hhmm_utc
    points = sorted(points, key=lambda p: p.at)
    marks = sorted(marks, key=lambda m: m.at)
    if not points:
        return _empty("vitals", title, "No readings yet.", width)

    left, right = 58, 16
    lane_y = 36  # flags lane above the plot
    top = 52
    plot_bottom = height - 30
    avail = plot_bottom - top - 14
    main_bottom = top + avail * 0.7
    spo2_top = main_bottom + 14
    plot_w = width - left - right

    times = [p.at for p in points] + [m.at for m in marks]
    t0, t1 = _pad_range(min(times), max(times), timedelta(minutes=10))
    span = (t1 - t0).total_seconds()

    def x(at: datetime) -> float:
        return left + (at - t0).total_seconds() / span * plot_w

    main_values = [
        v for p in points for v in (p.systolic, p.diastolic, p.heart_rate) if v is not None
    ]
    lo = math.floor(min(main_values + [60]) / 20) * 20
    hi = math.ceil(max(main_values + [160]) / 20) * 20
    y_main = _y_scale(lo, hi, top, main_bottom)
    spo2_values = [p.spo2 for p in points if p.spo2 is not None]
    spo2_lo = min(80, math.floor(min(spo2_values + [100]) / 10) * 10)
    y_spo2 = _y_scale(spo2_lo, 100, spo2_top, plot_bottom)

    body: list[str] = []
    # Legend in words with a sample of each mark.
    body += _legend(
        left,
        16,
        [
            (_marker("down", 0, 0, BP_COLOUR, "legend-mark"), "Systolic BP"),
            (_marker("up", 0, 0, BP_COLOUR, "legend-mark"), "Diastolic BP"),
            (_marker("circle", 0, 0, HR_COLOUR, "legend-mark"), "Heart rate"),
            (_marker("square", 0, 0, SPO2_COLOUR, "legend-mark"), "SpO2"),
            (_ring(0, 0, "abnormal", "legend-mark"), "abnormal"),
            (
                _ring(0, 0, "critical", "legend-mark")
                + _text(0, 4, "!", font_weight="bold", text_anchor="middle"),
                "critical",
            ),
        ],
    )

    # Axes and grid: mmHg / bpm panel, SpO2 panel.
    step = 20 if hi - lo <= 160 else 40
    body.extend(_gridlines(range(lo, hi + 1, step), y_main, left, width - right))
    body.append(_axis_title(14, top, main_bottom, "mmHg / bpm"))
    # Label every 5 % only when the panel is tall enough to keep the labels apart.
    spo2_step = 5 if (plot_bottom - spo2_top) / (100 - spo2_lo) * 5 >= 14 else 10
    body.extend(_gridlines(range(spo2_lo, 101, spo2_step), y_spo2, left, width - right))
    body.append(_axis_title(14, spo2_top, plot_bottom, "SpO2 %"))
    for x1, y1, x2, y2 in (
        (left, top, left, main_bottom),
        (left, spo2_top, left, plot_bottom),
        (left, plot_bottom, width - right, plot_bottom),
    ):
        body.append(
            _el("line", x1=x1, y1=round(y1, 1), x2=x2, y2=round(y2, 1), stroke=INK, stroke_width=1)
        )
    for tick in _time_ticks(t0, t1, max(2, plot_w // 90)):
        xx = round(x(tick), 1)
        body.append(_el("line", x1=xx, x2=xx, y1=plot_bottom, y2=plot_bottom + 5, stroke=INK))
        body.append(
            _text(
                xx, plot_bottom + 18, fmt_time(tick), text_anchor="middle", class_="tick tick--time"
            )
        )

    # Infusion events: dashed vertical lines; a label goes on the first row where it does not
    # run into an earlier label (about 7 px per character at 11 px bold).
    row_ends: list[float] = []
    for mark in marks:
        xx = round(x(mark.at), 1)
        label_width = 7 * len(mark.label)
        # Labels that would run off the right edge are written to the left of the line.
        flip = xx + 3 + label_width > width
        left = xx - 3 - label_width if flip else xx + 3
        row = next((i for i, end in enumerate(row_ends) if left > end + 4), len(row_ends))
        if row == len(row_ends):
            row_ends.append(left + label_width)
        row_ends[row] = left + label_width
        body.append(
            '<g class="mark">'
            + _el(
                "line",
                x1=xx,
                x2=xx,
                y1=top,
                y2=plot_bottom,
                stroke=INK,
                stroke_width=1.5,
                stroke_dasharray="6 4",
            )
            + _text(
                xx - 3 if flip else xx + 3,
                round(top + 11 + 12 * row, 1),
                mark.label,
                font_size=11,
                font_weight="bold",
                text_anchor="end" if flip else None,
                class_="mark-label",
            )
            + "</g>"
        )

    # Series: BP bars, then lines, then markers on top.
    for p in points:
        if p.systolic is not None and p.diastolic is not None:
            xx = round(x(p.at), 1)
            body.append(
                _el(
                    "line",
                    x1=xx,
                    x2=xx,
                    y1=round(y_main(p.systolic), 1),
                    y2=round(y_main(p.diastolic), 1),
                    stroke=BP_COLOUR,
                    stroke_width=2,
                    class_="bp-bar",
                )
            )
    series = [
        ("systolic", y_main, BP_COLOUR, None, "down", "SBP", "mmHg"),
        ("diastolic", y_main, BP_COLOUR, "2 3", "up", "DBP", "mmHg"),
        ("heart_rate", y_main, HR_COLOUR, "8 4", "circle", "HR", "bpm"),
        ("spo2", y_spo2, SPO2_COLOUR, None, "square", "SpO2", "%"),
    ]
    for name, scale, colour, dash, _shape, _short, _unit in series:
        line = [(x(p.at), scale(getattr(p, name))) for p in points if getattr(p, name) is not None]
        body.append(_polyline(line, colour, dash, f"line line--{name}"))
    for p in points:
        xx = x(p.at)
        for name, scale, colour, _dash, shape, short, unit in series:
            value = getattr(p, name)
            if value is None:
                continue
            yy = scale(value)
            tip = f"{fmt_time(p.at)} {short} {value} {unit}".rstrip()
            body.append(_marker(shape, xx, yy, colour, f"point point--{name}", tip))
            level = (p.field_levels or {}).get(name) if p.field_levels is not None else p.level
            if level in ("abnormal", "critical"):
                body.append(_ring(xx, yy, level))
        if p.level:
            # The flags lane shows every flagged reading, whatever made it so (e.g. rhythm).
            mark = _ring(xx, lane_y, p.level, "lane-ring")
            if p.critical:
                mark += _text(
                    round(xx, 1),
                    lane_y + 4,
                    "!",
                    font_weight="bold",
                    text_anchor="middle",
                    font_size=12,
                )
            body.append(f'<g class="flag flag--{p.level}">{mark}</g>')

    desc = _vitals_desc(points, marks, fmt_time)
    return _svg("vitals", title, desc, width, height, body)


def _vitals_desc(
    points: list[VitalPoint], marks: list[EventMark], fmt_time: Callable[[datetime], str]
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
            words.append(f"{label} {_span(values)}{unit}.")
    critical = sum(p.critical for p in points)
    abnormal = sum(p.abnormal and not p.critical for p in points)
    words.append(f"{critical} critical and {abnormal} abnormal reading(s).")
    if marks:
        words.append("Events: " + ", ".join(f"{m.label} {fmt_time(m.at)}" for m in marks) + ".")
    return " ".join(words)


# --- Outcome scores over time ----------------------------------------------------------------

SERIES_STYLES = [
    # marker shape, dash, colour: PHQ-9 first, then GAD-7, pain NRS, anything else.
    ("circle", None, INK),
    ("square", "8 4", HR_COLOUR),
    ("up", "2 3", BP_COLOUR),
    ("diamond", "12 3 2 3", SPO2_COLOUR),
    ("hollow", "4 4", MUTED),
]


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
) -> Markup:
    """Scores (PHQ-9, GAD-7, pain NRS …) against date, with the PHQ-9 baseline, the response
    line (dashed, 50 % below baseline) and the remission line (dotted, PHQ-9 < 5)."""
    fmt_date = fmt_date or _date_utc
    series = {name: sorted(values) for name, values in series.items() if values}
    if not series:
        return _empty("outcome", title, "No scores yet.", width)

    left, right, top = 48, 190, 40
    plot_bottom = height - 36
    plot_w = width - left - right
    dates = [at for values in series.values() for at, _ in values]
    t0, t1 = _pad_range(min(dates), max(dates), timedelta(days=2))
    span = (t1 - t0).total_seconds()

    def x(at: datetime) -> float:
        return left + (at - t0).total_seconds() / span * plot_w

    scores = [score for values in series.values() for _, score in values]
    hi = max(scores + [27, baseline or 0])
    hi = math.ceil(hi / 5) * 5
    y = _y_scale(0, hi, top, plot_bottom)

    body: list[str] = []
    styles = {name: SERIES_STYLES[min(i, len(SERIES_STYLES) - 1)] for i, name in enumerate(series)}
    body += _legend(
        left,
        16,
        [
            (_marker(shape, 0, 0, colour, "legend-mark"), name)
            for name, (shape, _dash, colour) in styles.items()
        ],
    )
    step = 5 if hi <= 40 else 10
    body.extend(_gridlines(range(0, hi + 1, step), y, left, left + plot_w))
    body.append(_axis_title(12, top, plot_bottom, "Score"))
    body.append(_el("line", x1=left, x2=left, y1=top, y2=plot_bottom, stroke=INK))
    body.append(_el("line", x1=left, x2=left + plot_w, y1=plot_bottom, y2=plot_bottom, stroke=INK))
    for tick in _day_ticks(t0, t1, max(2, plot_w // 110)):
        xx = round(x(tick), 1)
        body.append(_el("line", x1=xx, x2=xx, y1=plot_bottom, y2=plot_bottom + 5, stroke=INK))
        body.append(
            _text(
                xx, plot_bottom + 18, fmt_date(tick), text_anchor="middle", class_="tick tick--date"
            )
        )

    # Reference lines, labelled in words at the right-hand end.
    labels = []
    for value, words, dash, width_, cls in (
        (baseline, f"Baseline PHQ-9 {baseline}", None, 1.5, "baseline"),
        (
            response_line,
            f"Response ≤ {_fmt(response_line)}" if response_line is not None else "",
            "8 5",
            1.5,
            "response",
        ),
        (
            remission_line,
            f"Remission < {_fmt(remission_line)}" if remission_line is not None else "",
            "2 3",
            2,
            "remission",
        ),
    ):
        if value is None:
            continue
        yy = round(y(value), 1)
        body.append(
            _el(
                "line",
                x1=left,
                x2=left + plot_w,
                y1=yy,
                y2=yy,
                stroke=INK,
                stroke_width=width_,
                stroke_dasharray=dash,
                class_=f"ref ref--{cls}",
            )
        )
        labels.append((yy + 4, words))
    for yy, words in _spread(labels, 14):
        body.append(_text(left + plot_w + 8, round(yy, 1), words, class_="ref-label"))

    for name, values in series.items():
        shape, dash, colour = styles[name]
        body.append(_polyline([(x(at), y(score)) for at, score in values], colour, dash, "line"))
        for at, score in values:
            body.append(
                _marker(
                    shape, x(at), y(score), colour, "point", f"{name} {score} on {fmt_date(at)}"
                )
            )

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
        words.append(f"Response at or below {_fmt(response_line)}.")
    if remission_line is not None:
        words.append(f"Remission below {_fmt(remission_line)}.")
    return _svg("outcome", title, " ".join(words), width, height, body)


# --- Peak BP and HR rise per infusion ---------------------------------------------------------


def peak_rise_chart(
    rows: list[tuple[int, int | None, int | None]],
    *,
    title: str,
    width: int = 900,
    height: int = 260,
) -> Markup:
    """Grouped bars per infusion number: peak SBP rise (solid) and peak HR rise (hollow)
    above that session's baseline."""
    rows = sorted(rows)
    if not rows:
        return _empty("peak", title, "No infusions yet.", width)

    left, right, top = 48, 16, 40
    plot_bottom = height - 40
    plot_w = width - left - right
    values = [v for _, sbp, hr in rows for v in (sbp, hr) if v is not None]
    hi = max(10, math.ceil(max(values + [0]) / 10) * 10)
    lo = min(0, math.floor(min(values + [0]) / 10) * 10)
    y = _y_scale(lo, hi, top, plot_bottom)
    zero = round(y(0), 1)

    body: list[str] = _legend(
        left,
        16,
        [
            (
                _el("rect", x=-5, y=-5, width=10, height=10, fill=BP_COLOUR, stroke=INK),
                "Peak systolic BP rise (mmHg)",
            ),
            (
                _el(
                    "rect",
                    x=-5,
                    y=-5,
                    width=10,
                    height=10,
                    fill="#fff",
                    stroke=HR_COLOUR,
                    stroke_width=2,
                ),
                "Peak heart rate rise (bpm)",
            ),
        ],
    )
    step = _nice_step(hi - lo, 6, (5, 10, 20, 25, 50, 100))
    body.extend(
        _gridlines(
            range(lo, hi + 1, step), y, left, left + plot_w,
            label=lambda value: f"{value:+g}" if value else "0",
        )
    )
    body.append(_el("line", x1=left, x2=left, y1=top, y2=plot_bottom, stroke=INK))

    slot = plot_w / len(rows)
    bar = max(2.0, min(24.0, slot * 0.35))
    label_every = max(1, math.ceil(30 / slot))
    for i, (number, sbp, hr) in enumerate(rows):
        centre = left + slot * (i + 0.5)
        for offset, rise, fill, stroke, cls, unit, short in (
            (-bar, sbp, BP_COLOUR, INK, "bar bar--sbp", "mmHg", "SBP"),
            (0.0, hr, "#fff", HR_COLOUR, "bar bar--hr", "bpm", "HR"),
        ):
            bx = round(centre + offset, 1)
            if rise is None:
                body.append(
                    _text(
                        round(bx + bar / 2, 1),
                        zero - 4,
                        "n/a" if slot >= 40 else "–",
                        text_anchor="middle",
                        fill=MUTED,
                        class_="bar-missing",
                    )
                )
                continue
            y_top, y_bottom = sorted((y(rise), y(0)))
            body.append(
                _el(
                    "rect",
                    _el("title", str(escape(f"Infusion {number}: {short} {rise:+d} {unit}"))),
                    x=bx,
                    y=round(y_top, 1),
                    width=round(bar, 1),
                    height=round(max(y_bottom - y_top, 1), 1),
                    fill=fill,
                    stroke=stroke,
                    stroke_width=2 if fill == "#fff" else 1,
                    class_=cls,
                )
            )
            if slot >= 40:
                label_y = y_top - 4 if rise >= 0 else y_bottom + 12
                body.append(
                    _text(
                        round(bx + bar / 2, 1),
                        round(label_y, 1),
                        f"{rise:+d}",
                        text_anchor="middle",
                        font_size=10,
                        class_="bar-value",
                    )
                )
        if i % label_every == 0:
            body.append(
                _text(
                    round(centre, 1),
                    plot_bottom + 16,
                    f"#{number}",
                    text_anchor="middle",
                    class_="tick",
                )
            )
    body.append(_el("line", x1=left, x2=left + plot_w, y1=zero, y2=zero, stroke=INK))
    body.append(
        _text(
            round(left + plot_w / 2, 1),
            plot_bottom + 32,
            "Infusion number",
            text_anchor="middle",
            fill=MUTED,
            font_size=11,
        )
    )

    def said(rise: int | None, unit: str) -> str:
        return "not recorded" if rise is None else f"{rise:+d} {unit}"

    desc = (
        "Peak rise above baseline per infusion. "
        + "; ".join(
            f"Infusion {n}: systolic BP {said(sbp, 'mmHg')}, heart rate {said(hr, 'bpm')}"
            for n, sbp, hr in rows
        )
        + "."
    )
    return _svg("peak", title, desc, width, height, body)
