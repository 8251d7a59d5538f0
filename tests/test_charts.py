"""Server-side SVG charts: well-formed, accessible, CSP-safe, and faithful to the data."""

import dataclasses
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from markupsafe import Markup

from infusion_tracker.charts import (
    EventMark,
    LinearScale,
    TimeScale,
    VitalPoint,
    outcome_chart,
    peak,
    peak_rise_chart,
    svg,
    vitals,
    vitals_chart,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def parse(markup) -> ET.Element:
    assert isinstance(markup, Markup)
    text = str(markup)
    assert "style=" not in text  # the CSP blocks inline styles
    assert "<script" not in text
    return ET.fromstring(text)  # noqa: S314 (our own output, not untrusted input)


def with_class(root: ET.Element, cls: str) -> list[ET.Element]:
    return [el for el in root.iter() if cls in (el.get("class") or "").split()]


def accessible_name(root: ET.Element) -> tuple[str, str]:
    assert root.tag == SVG + "svg"
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby").split()
    title = root.find(SVG + "title")
    desc = root.find(SVG + "desc")
    assert (title.get("id"), desc.get("id")) == (title_id, desc_id)
    return title.text, desc.text


def session_points():
    points = [
        VitalPoint(T0 + timedelta(minutes=5 * i), 120 + 5 * i, 80, 70 + 3 * i, 98) for i in range(6)
    ]
    points[2] = VitalPoint(points[2].at, 165, 95, 88, 96, abnormal=True)
    points[4] = VitalPoint(points[4].at, 185, 100, 92, 95, abnormal=True, critical=True)
    return points


MARKS = [
    EventMark(T0 + timedelta(minutes=2), "Start"),
    EventMark(T0 + timedelta(minutes=12), "Pause"),
    EventMark(T0 + timedelta(minutes=14), "Resume"),
    EventMark(T0 + timedelta(minutes=24), "Stop"),
]


# --- vitals ----------------------------------------------------------------------------------


def test_vitals_chart_is_well_formed_and_named():
    root = parse(vitals_chart(session_points(), MARKS, title="Vital signs"))
    title, desc = accessible_name(root)
    assert title == "Vital signs"
    assert desc.startswith("6 readings from 14:00 to 14:25.")
    assert "Systolic BP 120–185 mmHg." in desc
    assert "1 critical and 1 abnormal reading(s)." in desc
    assert "Events: Start 14:02, Pause 14:12, Resume 14:14, Stop 14:24." in desc


def test_vitals_chart_plots_every_value_and_mark():
    root = parse(vitals_chart(session_points(), MARKS, title="Vital signs"))
    for field in ("systolic", "diastolic", "heart_rate", "spo2"):
        assert len(with_class(root, f"point--{field}")) == 6, field
    assert len(with_class(root, "bp-bar")) == 6
    marks = with_class(root, "mark")
    assert [m.find(SVG + "text").text for m in marks] == ["Start", "Pause", "Resume", "Stop"]
    for mark in marks:
        assert mark.find(SVG + "line").get("stroke-dasharray")  # dashed, not colour alone


def test_bp_bars_are_written_as_el_writes_a_line():
    """The chart's most drawn element is written straight, byte for byte as svg.el writes it."""
    points = session_points()
    drawn = str(vitals_chart(points, MARKS, title="Vitals"))
    plot = vitals.plan(points, MARKS, width=900, height=320, title="Vitals", fmt_time=svg.hhmm_utc)
    assert len(plot.bars) == len(points)
    for x, y1, y2 in plot.bars:
        attrs = {"stroke": svg.BP_COLOUR, "stroke_width": 2, "class_": "bp-bar"}
        assert svg.el("line", x1=x, x2=x, y1=y1, y2=y2, **attrs) in drawn


def test_markers_and_rings_are_written_as_el_writes_them():
    """Markers and rings are written straight (most of a chart's elements), what a series'
    markers share written once: byte for byte as svg.el writes them, tooltip escaped."""
    x, y, tip = 123.456, 78.95, "10:05 <SBP> & 140"
    title = svg.tooltip(tip)
    paint = {"stroke": svg.INK, "stroke_width": 0.75, "class_": "point point--x"}
    at = {"cx": round(x, 1), "cy": round(y, 1), "r": 4}
    assert svg.marker("circle", x, y, "#123", "point point--x", tip) == svg.el(
        "circle", title, **at, fill="#123", **paint
    )
    assert svg.marker("hollow", x, y, "#123", "c", tip) == svg.el(
        "circle", title, **at, fill=svg.WHITE, stroke="#123", stroke_width=2, class_="c"
    )
    square = {"x": round(x - 3.5, 1), "y": round(y - 3.5, 1), "width": 7, "height": 7}
    assert svg.marker("square", x, y, "#123", "point point--x", tip) == svg.el(
        "rect", title, **square, fill="#123", **paint
    )
    down = f"M{x - 5:.1f} {y - 4.5:.1f} L{x + 5:.1f} {y - 4.5:.1f} L{x:.1f} {y + 4.5:.1f} Z"
    assert svg.marker("down", x, y, "#123", "point point--x", tip) == svg.el(
        "path", title, d=down, fill="#123", **paint
    )
    up = f"M{x - 5:.1f} {y + 4.5:.1f} L{x + 5:.1f} {y + 4.5:.1f} L{x:.1f} {y - 4.5:.1f} Z"
    assert svg.marker("up", x, y, "#123", "p", "") == svg.el(
        "path", None, d=up, fill="#123", stroke=svg.INK, stroke_width=0.75, class_="p"
    )
    for level, r, width in (("abnormal", 8, 1.5), ("critical", 9, 3)):
        assert svg.ring(x, y, level) == svg.el(
            "circle", None, cx=round(x, 1), cy=round(y, 1), r=r, fill="none", stroke=svg.INK,
            stroke_width=width, class_=f"ring ring--{level}",
        )
    # A position written as `el` writes round(value, 1), whatever the value.
    for value in (0, 0.04, -0.04, 0.05, 0.15, 0.25, 2.449, 12.25, 99.95, -3.5, 1e6 + 0.05, 880.0):
        assert svg.px(value) == svg.fmt(round(value, 1)), value


def test_event_labels_close_together_go_on_separate_rows():
    marks = [
        EventMark(T0, "Infusion started"),
        EventMark(T0 + timedelta(minutes=1), "Infusion stopped"),
        EventMark(T0 + timedelta(minutes=25), "Resumed"),
    ]
    root = parse(vitals_chart(session_points(), marks, title="Vital signs"))
    rows = [float(m.find(SVG + "text").get("y")) for m in with_class(root, "mark")]
    assert rows[0] != rows[1]  # a minute apart: the second label drops a row
    assert rows[2] == rows[0]  # far enough along to use the first row again


def test_scales_are_immutable_values():
    time = TimeScale(T0, T0 + timedelta(minutes=10), 50, 650)
    assert time.x(T0 + timedelta(minutes=5)) == 350
    values = LinearScale(60, 160, 20, 220)
    assert (values.y(60), values.y(160), values.y(110)) == (220, 20, 120)
    with pytest.raises(dataclasses.FrozenInstanceError):
        time.x0 = 0


def test_event_labels_do_not_move_the_points():
    """The labels of events inside the readings' time range change nothing else."""
    points = session_points()
    many = [EventMark(p.at, "A long event label " * 2) for p in points[1:-1]]
    bare = parse(vitals_chart(points, [], title="Vital signs"))
    marked = parse(vitals_chart(points, many, title="Vital signs"))
    for field in ("systolic", "heart_rate", "spo2"):
        before = [
            (e.get("d"), e.get("cx"), e.get("x")) for e in with_class(bare, f"point--{field}")
        ]
        after = [
            (e.get("d"), e.get("cx"), e.get("x")) for e in with_class(marked, f"point--{field}")
        ]
        assert before == after, field
    lines = [float(m.find(SVG + "line").get("x1")) for m in with_class(marked, "mark")]
    circles = [float(e.get("cx")) for e in with_class(marked, "point--heart_rate")]
    assert lines == circles[1:-1]


def test_voided_readings_are_not_drawn_and_the_description_says_so():
    points = session_points()
    points[3] = dataclasses.replace(points[3], systolic=230, voided=True)
    root = parse(vitals_chart(points, MARKS, title="Vital signs"))
    assert len(with_class(root, "point--systolic")) == 5
    tips = [e.find(SVG + "title").text for e in with_class(root, "point--systolic")]
    assert not any("230" in tip for tip in tips)
    desc = accessible_name(root)[1]
    assert desc.startswith("5 readings from 14:00 to 14:25.")
    assert "1 voided reading not shown." in desc
    only_voided = parse(vitals_chart([points[3]], [], title="Voided"))
    assert accessible_name(only_voided)[1] == "No readings yet."


def test_abnormal_points_are_ringed_and_critical_ones_bold_with_a_bang():
    root = parse(vitals_chart(session_points(), MARKS, title="Vital signs"))
    abnormal = with_class(root, "ring--abnormal")
    critical = with_class(root, "ring--critical")
    # Without per-field levels, every plotted value of a flagged reading is ringed.
    assert len([r for r in abnormal if "ring" in r.get("class").split()]) == 4
    assert len([r for r in critical if "ring" in r.get("class").split()]) == 4
    assert {r.get("stroke-width") for r in critical if "ring" in r.get("class")} == {"3"}
    assert {r.get("stroke-width") for r in abnormal if "ring" in r.get("class")} == {"1.5"}
    lane_critical = with_class(root, "flag--critical")
    assert len(lane_critical) == 1
    assert lane_critical[0].find(SVG + "text").text == "!"
    assert len(with_class(root, "flag--abnormal")) == 1
    # The legend explains both in words.
    legend = [t.text for t in with_class(root, "legend")]
    assert legend == ["Systolic BP", "Diastolic BP", "Heart rate", "SpO2", "abnormal", "critical"]


def test_field_levels_ring_only_the_flagged_values():
    point = VitalPoint(T0, 190, 90, 80, 97, critical=True, field_levels={"systolic": "critical"})
    root = parse(vitals_chart([point], [], title="One"))
    rings = [r for r in with_class(root, "ring--critical") if "ring" in r.get("class").split()]
    assert len(rings) == 1
    sbp = with_class(root, "point--systolic")[0]
    assert sbp.find(SVG + "title").text == "14:00 SBP 190 mmHg"


def test_a_critical_reading_flagged_for_rhythm_still_shows_in_the_flags_lane():
    point = VitalPoint(T0, 120, 80, 80, 97, critical=True, field_levels={"rhythm": "critical"})
    root = parse(vitals_chart([point], [], title="VT"))
    assert [r for r in with_class(root, "ring") if "ring" in r.get("class").split()] == []
    assert len(with_class(root, "flag--critical")) == 1


def test_single_point_and_missing_values():
    points = [
        VitalPoint(T0, 130, 85, None, 97),
        VitalPoint(T0 + timedelta(minutes=5), None, None, 88, None),
        VitalPoint(T0 + timedelta(minutes=10), 128, None, 90, 96),
    ]
    root = parse(vitals_chart(points, [], title="Gaps"))
    assert len(with_class(root, "point--systolic")) == 2
    assert len(with_class(root, "point--diastolic")) == 1
    assert len(with_class(root, "point--heart_rate")) == 2
    assert len(with_class(root, "bp-bar")) == 1  # a bar needs both pressures
    assert with_class(root, "line--diastolic") == []  # one value draws no line
    single = parse(vitals_chart([VitalPoint(T0, 120, 80, 70, 98)], [], title="Single"))
    assert len(with_class(single, "point--systolic")) == 1
    assert "1 reading from 14:00 to 14:00." in accessible_name(single)[1]


def test_time_labels_come_from_the_callers_formatter():
    def clinic(value):
        return (value - timedelta(hours=5)).strftime("%H:%M") + "h"

    root = parse(vitals_chart(session_points(), [], title="Clinic time", fmt_time=clinic))
    labels = [t.text for t in with_class(root, "tick--time")]
    assert labels and all(label.endswith("h") for label in labels)
    assert "09:00h" in labels


def test_low_spo2_extends_its_axis():
    root = parse(vitals_chart([VitalPoint(T0, 120, 80, 70, 72)], [], title="Low"))
    ticks = [t.text for t in with_class(root, "tick")]
    assert "70" in ticks and "100" in ticks


def test_vitals_chart_escapes_text():
    chart = vitals_chart(
        [VitalPoint(T0, 120, 80, 70, 98)],
        [EventMark(T0, "Stop <b>&</b>")],
        title='A "B" <script>',
    )
    text = str(chart)
    assert "<script>" not in text and "<b>" not in text
    root = parse(chart)
    assert accessible_name(root)[0] == 'A "B" <script>'
    assert with_class(root, "mark-label")[0].text == "Stop <b>&</b>"


def test_empty_vitals_chart():
    root = parse(vitals_chart([], [], title="Vital signs"))
    assert accessible_name(root) == ("Vital signs", "No readings yet.")
    assert with_class(root, "chart-empty")[0].text == "No readings yet."


def test_two_charts_on_one_page_have_different_ids():
    a = parse(vitals_chart([VitalPoint(T0, 120, 80, 70, 98)], [], title="Session 1"))
    b = parse(vitals_chart([VitalPoint(T0, 120, 80, 70, 98)], [], title="Session 2"))
    assert a.get("aria-labelledby") != b.get("aria-labelledby")


# --- outcomes --------------------------------------------------------------------------------

WEEK = timedelta(days=7)
SERIES = {
    "PHQ-9": [(T0 + WEEK * i, score) for i, score in enumerate([21, 17, 12, 9, 4])],
    "GAD-7": [(T0 + WEEK * i, score) for i, score in enumerate([15, 12, 8])],
    "Pain NRS": [(T0, 6)],
}


def test_outcome_chart_series_and_reference_lines():
    root = parse(
        outcome_chart(SERIES, baseline=21, response_line=10.5, remission_line=5, title="Outcomes")
    )
    title, desc = accessible_name(root)
    assert title == "Outcomes"
    assert "PHQ-9: 5 scores, 21 on 02 Mar 2026 to 4 on 30 Mar 2026." in desc
    assert "Response at or below 10.5." in desc
    assert len(with_class(root, "point")) == 9
    assert [t.text for t in with_class(root, "legend")] == ["PHQ-9", "GAD-7", "Pain NRS"]
    labels = [t.text for t in with_class(root, "ref-label")]
    assert labels == ["Baseline PHQ-9 21", "Response ≤ 10.5", "Remission < 5"]
    response = with_class(root, "ref--response")[0]
    remission = with_class(root, "ref--remission")[0]
    baseline = with_class(root, "ref--baseline")[0]
    assert response.get("stroke-dasharray") == "8 5"  # dashed
    assert remission.get("stroke-dasharray") == "2 3"  # dotted
    assert baseline.get("stroke-dasharray") is None
    # Higher scores sit higher on the page.
    assert float(baseline.get("y1")) < float(response.get("y1")) < float(remission.get("y1"))
    # Each series draws its own line style (distinguishable in black and white).
    dashes = [line.get("stroke-dasharray") for line in with_class(root, "line")]
    assert len(dashes) == 2 and len(set(dashes)) == 2  # Pain NRS has one score: no line


def test_outcome_date_ticks_stand_at_midnight_in_the_zone_they_are_written_in():
    zone = ZoneInfo("America/New_York")
    root = parse(
        outcome_chart(
            SERIES,
            baseline=21,
            response_line=None,
            remission_line=None,
            title="Outcomes",
            fmt_date=lambda at: at.astimezone(zone).strftime("%d %b %Y"),
            tz=zone,
        )
    )
    ticks = with_class(root, "tick--date")
    xs = [float(t.get("x")) for t in ticks]
    first = datetime.strptime(ticks[0].text, "%d %b %Y").replace(tzinfo=zone)
    last = datetime.strptime(ticks[-1].text, "%d %b %Y").replace(tzinfo=zone)
    # A PHQ-9 taken at 09:00 New York time on 02 Mar sits 9/24 of a day after that tick.
    per_second = (xs[-1] - xs[0]) / (last - first).total_seconds()
    phq9 = [
        p for p in with_class(root, "point") if p.find(SVG + "title").text.startswith("PHQ-9 21")
    ]
    expected = xs[0] + (T0 - first).total_seconds() * per_second
    assert float(phq9[0].get("cx")) == pytest.approx(expected, abs=0.5)


def test_outcome_chart_without_baseline_or_lines():
    root = parse(
        outcome_chart(
            {"GAD-7": [(T0, 9)]},
            baseline=None,
            response_line=None,
            remission_line=None,
            title="GAD-7 only",
        )
    )
    assert with_class(root, "ref-label") == []
    assert len(with_class(root, "point")) == 1


def test_close_reference_labels_do_not_overlap():
    root = parse(
        outcome_chart(
            {"PHQ-9": [(T0, 8)]}, baseline=8, response_line=4, remission_line=5, title="Close"
        )
    )
    ys = sorted(float(t.get("y")) for t in with_class(root, "ref-label"))
    assert all(b - a >= 14 for a, b in zip(ys, ys[1:], strict=False))


def test_empty_outcome_chart():
    root = parse(
        outcome_chart(
            {"PHQ-9": []}, baseline=None, response_line=None, remission_line=None, title="Outcomes"
        )
    )
    assert accessible_name(root)[1] == "No scores yet."


# --- peak rise -------------------------------------------------------------------------------


def test_peak_rise_chart_bars_per_infusion():
    rows = [(1, 24, 12), (2, 30, None), (3, -4, 8)]
    root = parse(peak_rise_chart(rows, title="Peak rise"))
    title, desc = accessible_name(root)
    assert title == "Peak rise"
    assert "Infusion 2: systolic BP +30 mmHg, heart rate not recorded" in desc
    assert len(with_class(root, "bar--sbp")) == 3
    assert len(with_class(root, "bar--hr")) == 2
    assert len(with_class(root, "bar-missing")) == 1
    assert [t.text for t in with_class(root, "tick") if t.text.startswith("#")] == [
        "#1",
        "#2",
        "#3",
    ]
    values = [t.text for t in with_class(root, "bar-value")]
    assert values == ["+24", "+12", "+30", "-4", "+8"]
    # SBP bars solid, HR bars hollow: tells them apart without colour.
    assert {b.get("fill") for b in with_class(root, "bar--hr")} == {"#fff"}
    assert "#fff" not in {b.get("fill") for b in with_class(root, "bar--sbp")}


def test_peak_rise_bars_are_written_as_el_writes_a_rect():
    """The bars are written straight (the page's most drawn element), byte for byte as
    svg.el writes them: solid and hollow, above and below zero, wide and narrow."""
    for rows in ([(1, 24, 12), (2, -7, 3)], [(n, n - 20, 40 - n) for n in range(1, 41)]):
        drawn = str(peak_rise_chart(rows, title="Peak rise"))
        plot = peak.plan(sorted(rows), title="Peak rise", width=900, height=260)
        y = plot.scale.y
        for bar in plot.bars:
            top, bottom = sorted((y(bar.rise), y(0)))
            short, unit = ("HR", "bpm") if bar.hollow else ("SBP", "mmHg")
            assert svg.el(
                "rect",
                svg.tooltip(f"Infusion {bar.number}: {short} {bar.rise:+d} {unit}"),
                x=bar.x,
                y=round(top, 1),
                width=round(bar.width, 1),
                height=round(max(bottom - top, 1), 1),
                fill=svg.WHITE if bar.hollow else svg.BP_COLOUR,
                stroke=svg.HR_COLOUR if bar.hollow else svg.INK,
                stroke_width=2 if bar.hollow else 1,
                class_="bar bar--hr" if bar.hollow else "bar bar--sbp",
            ) in drawn


def test_peak_rise_negative_bar_hangs_below_zero():
    root = parse(peak_rise_chart([(1, -10, 10)], title="Drop"))
    sbp = with_class(root, "bar--sbp")[0]
    hr = with_class(root, "bar--hr")[0]
    # The rise goes up from zero, the drop goes down from it: they meet at the zero line.
    assert float(sbp.get("y")) == pytest.approx(
        float(hr.get("y")) + float(hr.get("height")), abs=0.2
    )


def test_many_infusions_thin_the_labels():
    rows = [(n, 10, 5) for n in range(1, 61)]
    root = parse(peak_rise_chart(rows, title="Many"))
    assert len(with_class(root, "bar--sbp")) == 60
    labels = [t.text for t in with_class(root, "tick") if t.text.startswith("#")]
    assert 1 < len(labels) < 60 and labels[0] == "#1"
    assert with_class(root, "bar-value") == []


def test_empty_peak_rise_chart():
    root = parse(peak_rise_chart([], title="Peak rise"))
    assert accessible_name(root)[1] == "No infusions yet."
