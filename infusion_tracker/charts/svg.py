"""SVG primitives shared by the charts: escaped element builders, scales as values, markers,
rings, gridlines, legends, axis titles and ticks.

Scales are frozen dataclasses, not closures: a chart computes them once into its plot
description, and nothing a later loop does can move a mark.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

from markupsafe import Markup, escape

INK = "#0b0c0c"
GRID = "#d5d5d5"
MUTED = "#505a5f"
BP_COLOUR = "#a4161a"
HR_COLOUR = "#1d4f91"
SPO2_COLOUR = "#2a6f2b"
WHITE = "#fff"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"


# --- Scales and boxes ---------------------------------------------------------------------


@dataclass(frozen=True)
class TimeScale:
    """Times t0..t1 onto x0..x1 pixels."""

    t0: datetime
    t1: datetime
    x0: float
    x1: float

    def x(self, at: datetime) -> float:
        span = (self.t1 - self.t0).total_seconds()
        return self.x0 + (at - self.t0).total_seconds() / span * (self.x1 - self.x0)


@dataclass(frozen=True)
class LinearScale:
    """Values lo..hi onto y_bottom..y_top pixels (higher values higher on the page)."""

    lo: float
    hi: float
    y_top: float
    y_bottom: float

    def y(self, value: float) -> float:
        return self.y_bottom - (value - self.lo) / (self.hi - self.lo) * (
            self.y_bottom - self.y_top
        )


@dataclass(frozen=True)
class Box:
    """A plot area in pixels."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left


@dataclass(frozen=True)
class Tick:
    """A labelled position on an axis."""

    at: float
    label: str


# --- Elements -----------------------------------------------------------------------------


_ATTR_NAMES = {"class_": "class"}


def _attr_name(name: str) -> str:
    written = _ATTR_NAMES.get(name)
    if written is None:
        written = _ATTR_NAMES[name] = name.replace("_", "-")
    return written


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


_ESCAPED = frozenset("&<>\"'")


def _attr(value) -> str:
    """A text attribute value, escaped only when it holds a character to escape."""
    written = str(value)
    return written if _ESCAPED.isdisjoint(written) else str(escape(written))


def el(tag: str, content: str | None = None, **attrs) -> str:
    """One element; attribute values are escaped (content is built by el/text already).

    A chart draws hundreds (a session's vitals chart 444): the types are told apart by `type`
    and a value escaped only when it holds a character to escape, 2.5 times faster than
    isinstance and markupsafe.escape on every value (bench/RESULTS.md, Stop 25)."""
    opening = "<" + tag
    for name, value in attrs.items():
        if value is None:
            continue
        kind = type(value)
        # A number is written in digits, a point and a sign: nothing to escape.
        written = fmt(value) if kind is float or kind is int else _attr(value)
        opening += f' {_attr_name(name)}="{written}"'
    if content is None:
        return opening + "/>"
    return f"{opening}>{content}</{tag}>"


def text(x, y, words: str, **attrs) -> str:
    attrs.setdefault("fill", INK)
    return el("text", str(escape(words)), x=x, y=y, **attrs)


def tooltip(words: str) -> str:
    """A mark's tooltip (<title>), "" for none; escaped only when it holds a character to
    escape (as _attr): a session's chart writes 160."""
    if not words:
        return ""
    return f"<title>{words if _ESCAPED.isdisjoint(words) else escape(words)}</title>"


def chart_id(kind: str, title: str) -> str:
    return f"chart-{kind}-{hashlib.sha1(title.encode(), usedforsecurity=False).hexdigest()[:8]}"


def document(
    kind: str, title: str, desc: str, width: float, height: float, body: Iterable[str]
) -> Markup:
    """The <svg role="img"> with its <title> and <desc> as its accessible name."""
    ident = chart_id(kind, title)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" viewBox="0 0 {fmt(width)} {fmt(height)}" '
        f'width="{fmt(width)}" height="{fmt(height)}" font-family="{escape(FONT)}" '
        f'font-size="12" class="chart-svg chart-svg--{kind}">'
    )
    # Every piece was built by el/text, which escape all attribute values and text.
    return Markup(  # noqa: S704
        head
        + el("title", str(escape(title)), id=f"{ident}-title")
        + el("desc", str(escape(desc)), id=f"{ident}-desc")
        + "".join(body)
        + "</svg>"
    )


def empty(kind: str, title: str, message: str, width: int) -> Markup:
    body = [text(12, 30, message, font_size=14, class_="chart-empty")]
    return document(kind, title, message, width, 48, body)


def polyline(points: Sequence[tuple[float, float]], colour: str, dash: str | None, cls: str) -> str:
    if len(points) < 2:
        return ""
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return el(
        "polyline",
        points=path,
        fill="none",
        stroke=colour,
        stroke_width=2,
        stroke_dasharray=dash,
        class_=cls,
    )


def px(value: float) -> str:
    """A position as `el` writes round(value, 1): one decimal, none when it is whole."""
    written = f"{value:.1f}"
    return written[:-2] if written.endswith(".0") else written


def _closed(opening: str, tag: str, tip: str) -> str:
    return f"{opening}>{tip}</{tag}>" if tip else f"{opening}/>"


# A chart's markers are most of its elements (a session's vitals chart: 160 of 444, each
# with its tooltip), so they are written straight, as `el` would write them (the same
# attributes in the same order): a session's chart 2.05-2.12 -> 1.62 ms (bench/RESULTS.md,
# Stop 26); and what one series' markers share is written once for all of them (Stop 35).
def marker_writer(shape: str, colour: str, cls: str) -> Callable[[float, float, str], str]:
    """marker(shape, x, y, colour, cls, label) for each point of a series, as a function of
    (x, y, label).

    Every shape's bounding box is centred on the value, triangles included."""
    paint = f'fill="{_attr(colour)}" stroke="{INK}" stroke-width="0.75" class="{_attr(cls)}"'
    if shape == "hollow":
        paint = f'fill="{WHITE}" stroke="{_attr(colour)}" stroke-width="2" class="{_attr(cls)}"'
    if shape in ("circle", "hollow"):

        def circle(x: float, y: float, label: str = "") -> str:
            opening = f'<circle cx="{px(x)}" cy="{px(y)}" r="4" {paint}'
            return _closed(opening, "circle", tooltip(label))

        return circle
    if shape == "square":

        def square(x: float, y: float, label: str = "") -> str:
            opening = f'<rect x="{px(x - 3.5)}" y="{px(y - 3.5)}" width="7" height="7" {paint}'
            return _closed(opening, "rect", tooltip(label))

        return square
    if shape == "diamond":

        def diamond(x: float, y: float, label: str = "") -> str:
            d = (
                f"M{x:.1f} {y - 5:.1f} L{x + 5:.1f} {y:.1f} L{x:.1f} {y + 5:.1f} "
                f"L{x - 5:.1f} {y:.1f} Z"
            )
            return _closed(f'<path d="{d}" {paint}', "path", tooltip(label))

        return diamond
    # Triangles: "down" (systolic, pointing at the diastolic below) and "up" (diastolic).
    s = -1 if shape == "down" else 1

    def triangle(x: float, y: float, label: str = "") -> str:
        d = (
            f"M{x - 5:.1f} {y + 4.5 * s:.1f} L{x + 5:.1f} {y + 4.5 * s:.1f} "
            f"L{x:.1f} {y - 4.5 * s:.1f} Z"
        )
        return _closed(f'<path d="{d}" {paint}', "path", tooltip(label))

    return triangle


def marker(shape: str, x: float, y: float, colour: str, cls: str, label: str = "") -> str:
    """A data marker centred on (x, y); `label` becomes its tooltip (<title>)."""
    return marker_writer(shape, colour, cls)(x, y, label)


def ring(x: float, y: float, level: str, cls: str = "ring") -> str:
    """Abnormal: thin ring; critical: bold, larger ring (told apart without colour)."""
    r, width = (8, "1.5") if level == "abnormal" else (9, "3")
    return (
        f'<circle cx="{px(x)}" cy="{px(y)}" r="{r}" fill="none" stroke="{INK}" '
        f'stroke-width="{width}" class="{_attr(f"{cls} {cls}--{level}")}"/>'
    )


# Kept by their arguments: the same scales come back chart after chart (a session's vitals
# chart: two grids, 900 of its 7,600 Python calls drawn each time).
@lru_cache(maxsize=256)
def gridlines(
    values: tuple[int, ...],
    scale: LinearScale,
    box: Box,
    label: Callable[[int], str] = str,
) -> str:
    """A horizontal grid line with its tick label for each value of a panel's axis."""
    parts = []
    for value in values:
        yy = round(scale.y(value), 1)
        parts.append(
            el(
                "line",
                x1=box.left,
                x2=box.right,
                y1=yy,
                y2=yy,
                stroke=GRID,
                stroke_width=1,
                class_="grid",
            )
        )
        parts.append(
            text(box.left - 6, round(yy + 4, 1), label(value), text_anchor="end", class_="tick")
        )
    return "".join(parts)


def axes(box: Box) -> list[str]:
    """The left and bottom axis lines of a plot area."""
    return [
        el(
            "line",
            x1=box.left,
            x2=box.left,
            y1=round(box.top, 1),
            y2=round(box.bottom, 1),
            stroke=INK,
            stroke_width=1,
        ),
        el(
            "line",
            x1=box.left,
            x2=box.right,
            y1=round(box.bottom, 1),
            y2=round(box.bottom, 1),
            stroke=INK,
            stroke_width=1,
        ),
    ]


def x_ticks(ticks: Iterable[Tick], y: float, cls: str) -> list[str]:
    """Tick marks below a time axis at `y`, each with its label."""
    parts = []
    for tick in ticks:
        xx = round(tick.at, 1)
        parts.append(el("line", x1=xx, x2=xx, y1=y, y2=y + 5, stroke=INK))
        parts.append(text(xx, y + 18, tick.label, text_anchor="middle", class_=cls))
    return parts


def legend(x: float, y: float, entries: Sequence[tuple[str, str]]) -> list[str]:
    """Legend in words, each preceded by a sample of its mark (drawn at 0,0)."""
    out = []
    x += 10  # room for the widest sample (a ring) left of centre
    for sample, words in entries:
        out.append(f'<g transform="translate({x:.1f},{y:.1f})" class="legend-entry">{sample}</g>')
        out.append(text(x + 14, y + 4, words, class_="legend"))
        x += 14 + 6.3 * len(words) + 28
    return out


def axis_title(x: float, y_top: float, y_bottom: float, words: str) -> str:
    """A y-axis title written up the left margin, centred on its panel."""
    y = round((y_top + y_bottom) / 2, 1)
    return el(
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


# --- Ticks and ranges ---------------------------------------------------------------------


def nice_step(span: float, target: int, steps: Sequence[float]) -> float:
    for step in steps:
        if span / step <= target:
            return step
    return steps[-1]


def time_ticks(t0: datetime, t1: datetime, target: int) -> list[datetime]:
    """Round-minute ticks (1, 2, 5 … 1440 min apart) between two times."""
    span_min = (t1 - t0).total_seconds() / 60
    step = nice_step(span_min, target, (1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 720, 1440))
    step_s = int(step * 60)
    first = math.ceil(t0.timestamp() / step_s) * step_s
    return [datetime.fromtimestamp(t, UTC) for t in range(first, int(t1.timestamp()) + 1, step_s)]


def day_ticks(t0: datetime, t1: datetime, target: int, tz: tzinfo = UTC) -> list[datetime]:
    """Midnights in `tz` (the zone the dates are written in) between two times."""
    span_days = (t1 - t0).total_seconds() / 86400
    step = int(nice_step(span_days, target, (1, 2, 7, 14, 28, 56, 91, 182, 365, 730)))
    day: date = t0.astimezone(tz).date()
    ticks = []
    while (at := datetime.combine(day, time(), tzinfo=tz)) <= t1:
        if at >= t0:
            ticks.append(at)
        day += timedelta(days=step if ticks else 1)
    return ticks


def pad_range(t0: datetime, t1: datetime, minimum: timedelta) -> tuple[datetime, datetime]:
    """Widen a time range to at least `minimum`, plus 3 % each side so no mark sits on an axis."""
    if t1 - t0 < minimum:
        half = (minimum - (t1 - t0)) / 2
        t0, t1 = t0 - half, t1 + half
    edge = (t1 - t0) * 0.03
    return t0 - edge, t1 + edge


def spread(labels: Iterable[tuple[float, str]], gap: float) -> list[tuple[float, str]]:
    """Nudge right-hand line labels apart vertically so none overlap."""
    placed: list[tuple[float, str]] = []
    for y, words in sorted(labels):
        if placed and y - placed[-1][0] < gap:
            y = placed[-1][0] + gap
        placed.append((y, words))
    return placed


def span_words(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


def hhmm_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%H:%M")


def date_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%d %b %Y")
