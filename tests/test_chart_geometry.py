"""The charts tell the truth: every mark sits where its time and value say, to the pixel.

The scenario is built through the app's own services (plan, check in, start, pause, resume,
stop, readings, a void), the real pages are fetched, and the scales are derived in the test
from what the chart itself prints: two time-tick labels give the x-scale, two gridline labels
give each panel's y-scale. Nothing here reuses the chart code's arithmetic.
"""

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

from infusion_tracker.timeutil import from_clinic, to_clinic
from tests.conftest import local_time as _local

SVG = "{http://www.w3.org/2000/svg}"
PX = 0.5  # tolerance: half a pixel
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


# --- Reading the SVG ---------------------------------------------------------------------------


def extract_svg(html: str, kind: str) -> ET.Element:
    match = re.search(rf"<svg[^>]*chart-svg--{kind}[^>]*>.*?</svg>", html, re.S)
    assert match, f"no {kind} chart on the page"
    return ET.fromstring(match.group(0))  # noqa: S314 (our own page)


def classes(el: ET.Element) -> list[str]:
    return (el.get("class") or "").split()


def with_class(root: ET.Element, cls: str) -> list[ET.Element]:
    return [el for el in root.iter() if cls in classes(el)]


def numbers(text: str) -> list[float]:
    return [float(n) for n in NUMBER.findall(text)]


def centre(el: ET.Element) -> tuple[float, float]:
    """The centre of a drawn marker: circle, square, or a path's bounding box."""
    tag = el.tag.removeprefix(SVG)
    if tag == "circle":
        return float(el.get("cx")), float(el.get("cy"))
    if tag == "rect":
        return (
            float(el.get("x")) + float(el.get("width")) / 2,
            float(el.get("y")) + float(el.get("height")) / 2,
        )
    values = numbers(el.get("d"))
    xs, ys = values[0::2], values[1::2]
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2


def translate(el: ET.Element) -> tuple[float, float]:
    match = re.search(r"translate\(([^)]*)\)", el.get("transform") or "")
    if not match:
        return 0.0, 0.0
    dx, dy = (numbers(match.group(1)) + [0.0])[:2]
    return dx, dy


def text_box(el: ET.Element, size: float = 12) -> tuple[float, float, float, float]:
    """An estimate of a text's box (left, top, right, bottom): 0.62 em a character."""
    size = float(el.get("font-size") or size)
    width = 0.62 * size * len(el.text or "")
    x, y = float(el.get("x")), float(el.get("y"))
    anchor = el.get("text-anchor") or "start"
    left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
    box = (left, y - 0.8 * size, left + width, y + 0.25 * size)
    if "rotate(-90" in (el.get("transform") or ""):
        # Written upwards about (x, y): the width runs up the page.
        half = width / 2 if anchor == "middle" else width
        box = (x - 0.8 * size, y - half, x + 0.25 * size, y + half)
    return box


def extents(el: ET.Element) -> list[tuple[float, float]]:
    """The corner points of what an element draws (its own coordinates)."""
    tag = el.tag.removeprefix(SVG)
    get = lambda name: float(el.get(name))  # noqa: E731
    if tag == "line":
        return [(get("x1"), get("y1")), (get("x2"), get("y2"))]
    if tag == "circle":
        r = get("r")
        return [(get("cx") - r, get("cy") - r), (get("cx") + r, get("cy") + r)]
    if tag == "rect":
        return [(get("x"), get("y")), (get("x") + get("width"), get("y") + get("height"))]
    if tag in ("polyline", "path"):
        values = numbers(el.get("points") or el.get("d"))
        return list(zip(values[0::2], values[1::2], strict=True))
    if tag == "text":
        left, top, right, bottom = text_box(el)
        return [(left, top), (right, bottom)]
    return []


def drawn_points(root: ET.Element, dx=0.0, dy=0.0):
    """Every drawn corner in the SVG's coordinates, with the element it belongs to."""
    for child in root:
        cx, cy = translate(child)
        for x, y in extents(child):
            yield child, x + dx + cx, y + dy + cy
        yield from drawn_points(child, dx + cx, dy + cy)


def view_box(root: ET.Element) -> tuple[float, float, float, float]:
    x, y, w, h = numbers(root.get("viewBox"))
    return x, y, x + w, y + h


def assert_inside_view_box(root: ET.Element) -> None:
    left, top, right, bottom = view_box(root)
    for el, x, y in drawn_points(root):
        what = f"{el.tag.removeprefix(SVG)} {el.get('class') or ''} {el.text or ''}"
        assert left - PX <= x <= right + PX and top - PX <= y <= bottom + PX, (what, x, y)


@dataclass(frozen=True)
class Axis:
    """A linear scale fitted through two labelled positions."""

    v0: float
    p0: float
    v1: float
    p1: float

    def at(self, value: float) -> float:
        return self.p0 + (value - self.v0) * (self.p1 - self.p0) / (self.v1 - self.v0)


@dataclass(frozen=True)
class Panel:
    axis: Axis
    top: float
    bottom: float
    left: float
    right: float


def gridlines(root: ET.Element) -> list[tuple[float, float, ET.Element]]:
    """(value, y of its grid line, line) for each numbered gridline label, top to bottom."""
    lines = [
        el
        for el in root.iter(SVG + "line")
        if el.get("y1") == el.get("y2")
        and el.get("x1") != el.get("x2")
        and "ref" not in classes(el)
    ]
    found = []
    for label in with_class(root, "tick"):
        if "tick--time" in classes(label) or "tick--date" in classes(label):
            continue
        if not NUMBER.fullmatch((label.text or "").lstrip("+")):
            continue
        y = float(label.get("y"))
        # The label's own gridline: the nearest horizontal line beside it.
        line = min(lines, key=lambda el: abs(float(el.get("y1")) - y))
        assert abs(float(line.get("y1")) - y) < 8, label.text
        found.append((float(label.text), float(line.get("y1")), line))
    return sorted(found, key=lambda item: item[1])


def panels(root: ET.Element) -> list[Panel]:
    """Panels stacked top to bottom: values fall down the page, and jump up at a new panel."""
    groups: list[list[tuple[float, float, ET.Element]]] = []
    for item in gridlines(root):
        if not groups or item[0] >= groups[-1][-1][0]:
            groups.append([])
        groups[-1].append(item)
    result = []
    for group in groups:
        (hi, y_top, line), (lo, y_bottom, _) = group[0], group[-1]
        result.append(
            Panel(
                Axis(hi, y_top, lo, y_bottom),
                y_top,
                y_bottom,
                float(line.get("x1")),
                float(line.get("x2")),
            )
        )
    return result


def time_axis(root: ET.Element, day: date) -> Axis:
    """The x-scale from the first and last HH:MM tick labels (clinic time on `day`)."""
    ticks = with_class(root, "tick--time")
    assert len(ticks) >= 2
    first, last = ticks[0], ticks[-1]
    t0, t1 = (_local(day, t.text).timestamp() for t in (first, last))
    return Axis(t0, float(first.get("x")), t1, float(last.get("x")))


def assert_close(actual: float, expected: float, what: str) -> None:
    assert abs(actual - expected) <= PX, f"{what}: drawn at {actual:.1f}, belongs at {expected:.1f}"


# --- The vitals chart on the session page and on the printed record ----------------------------


@pytest.fixture(params=["session", "print"])
def vitals_svg(request, client, scenario):
    path = f"/infusions/{scenario.infusion_id}"
    if request.param == "print":
        path += "/print"
    response = client.get(path)
    assert response.status_code == 200
    return extract_svg(response.get_data(as_text=True), "vitals")


def test_every_vital_sign_is_drawn_at_its_time_and_value(vitals_svg, scenario):
    x = time_axis(vitals_svg, scenario.day)
    main, spo2 = panels(vitals_svg)
    series = {"systolic": (1, main), "diastolic": (2, main), "heart_rate": (3, main)}
    series["spo2"] = (4, spo2)
    for name, (column, panel) in series.items():
        markers = with_class(vitals_svg, f"point--{name}")
        assert len(markers) == len(scenario.readings), name
        for marker, reading in zip(markers, scenario.readings, strict=True):
            at, value = reading[0], reading[column]
            cx, cy = centre(marker)
            when = f"{name} {value} at {to_clinic(at):%H:%M}"
            assert_close(cx, x.at(at.timestamp()), f"{when}, x")
            assert_close(cy, panel.axis.at(value), f"{when}, y")
            assert panel.left <= cx <= panel.right and panel.top <= cy <= panel.bottom, when


def test_event_lines_are_drawn_at_their_times(vitals_svg, scenario):
    x = time_axis(vitals_svg, scenario.day)
    marks = with_class(vitals_svg, "mark")
    assert len(marks) == len(scenario.events)
    for mark, at in zip(marks, scenario.events, strict=True):
        line = mark.find(SVG + "line")
        label = mark.find(SVG + "text").text
        assert line.get("x1") == line.get("x2")
        assert_close(
            float(line.get("x1")), x.at(at.timestamp()), f"{label} at {to_clinic(at):%H:%M}"
        )


def test_critical_reading_is_ringed_where_it_is_drawn(vitals_svg, scenario):
    x = time_axis(vitals_svg, scenario.day)
    rings = [r for r in with_class(vitals_svg, "ring--critical") if "ring" in classes(r)]
    assert rings
    for ring in rings:
        assert_close(float(ring.get("cx")), x.at(scenario.critical_at.timestamp()), "ring")


def test_nothing_is_drawn_outside_the_view_box(vitals_svg):
    assert_inside_view_box(vitals_svg)


def test_event_labels_do_not_overlap(vitals_svg):
    boxes = [text_box(t, 11) for t in with_class(vitals_svg, "mark-label")]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, (a, b)


def test_voided_reading_is_not_drawn(vitals_svg, scenario):
    x = time_axis(vitals_svg, scenario.day)
    voided_x = x.at(scenario.voided_at.timestamp())
    for marker in with_class(vitals_svg, "point"):
        assert abs(centre(marker)[0] - voided_x) > 3, "the voided reading is drawn"


def test_chart_says_the_voided_reading_is_left_out(vitals_svg):
    desc = vitals_svg.find(SVG + "desc").text
    assert "1 voided reading not shown" in desc, desc


def test_the_table_shows_the_voided_reading_struck_through(client, scenario):
    html = client.get(f"/infusions/{scenario.infusion_id}").get_data(as_text=True)
    readings = re.findall(r'<tbody class="reading".*?</tbody>', html, re.S)
    voided = [r for r in readings if re.search(r'<tr class="[^"]*\bvoided\b', r)]
    assert len(readings) == len(scenario.readings) + 1
    assert len(voided) == 1 and f"{to_clinic(scenario.voided_at):%H:%M}" in voided[0]


# --- Outcome and peak-rise charts on the patient page ------------------------------------------


@pytest.fixture
def patient_page(client, scenario) -> str:
    response = client.get(f"/patients/{scenario.patient_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def date_axis(root: ET.Element) -> Axis:
    ticks = with_class(root, "tick--date")
    assert len(ticks) >= 2
    first, last = ticks[0], ticks[-1]
    t0, t1 = (from_clinic(datetime.strptime(t.text, "%d %b %Y")).timestamp() for t in (first, last))
    return Axis(t0, float(first.get("x")), t1, float(last.get("x")))


def test_outcome_scores_are_drawn_at_their_dates_and_scores(patient_page, scenario):
    assert_outcome_geometry(extract_svg(patient_page, "outcome"), scenario.phq9, scenario.gad7)


def test_outcome_chart_in_clinic_time_puts_each_score_at_its_date(app):
    from infusion_tracker.charts import outcome_chart
    from infusion_tracker.timeutil import clinic_zone, format_datetime

    day = date(2026, 3, 2)  # the series crosses the start of daylight saving time
    phq9 = [(_local(day + timedelta(days=7 * n), "17:30"), s) for n, s in enumerate((21, 15, 9))]
    gad7 = [(_local(day + timedelta(days=3), "08:10"), 12)]
    chart = outcome_chart(
        {"PHQ-9": phq9, "GAD-7": gad7},
        baseline=21,
        response_line=10.5,
        remission_line=5,
        title="Outcomes",
        fmt_date=lambda at: format_datetime(at, "%d %b %Y"),
        tz=clinic_zone(),
    )
    assert_outcome_geometry(ET.fromstring(str(chart)), phq9, gad7)  # noqa: S314


def assert_outcome_geometry(root, phq9, gad7) -> None:
    x = date_axis(root)
    (panel,) = panels(root)
    points = with_class(root, "point")
    tips = [p.find(SVG + "title").text for p in points]
    expected = [("PHQ-9", at, s) for at, s in phq9] + [("GAD-7", at, s) for at, s in gad7]
    assert len(points) == len(expected)
    for name, at, score in expected:
        day = to_clinic(at).strftime("%d %b %Y")
        what = f"{name} {score} on {day}"
        (point,) = [p for p, tip in zip(points, tips, strict=True) if tip == what]
        cx, cy = centre(point)
        assert_close(cx, x.at(at.timestamp()), f"{what}, x")
        assert_close(cy, panel.axis.at(score), f"{what}, y")
        assert panel.left <= cx <= panel.right and panel.top <= cy <= panel.bottom
    baseline = with_class(root, "ref--baseline")[0]
    assert_close(float(baseline.get("y1")), panel.axis.at(phq9[0][1]), "baseline")
    assert_inside_view_box(root)


def test_peak_rise_bars_stand_at_their_values(patient_page, scenario):
    root = extract_svg(patient_page, "peak")
    (panel,) = panels(root)
    baseline = scenario.readings[0]
    rises = {
        "bar--sbp": max(r[1] for r in scenario.readings[1:]) - baseline[1],
        "bar--hr": max(r[3] for r in scenario.readings[1:]) - baseline[3],
    }
    zero = panel.axis.at(0)
    for cls, rise in rises.items():
        (bar,) = with_class(root, cls)
        top, height = float(bar.get("y")), float(bar.get("height"))
        assert_close(top, panel.axis.at(rise), f"{cls} +{rise}, top")
        assert_close(top + height, zero, f"{cls}, foot")
        assert panel.left <= float(bar.get("x")) <= panel.right
    assert_inside_view_box(root)
