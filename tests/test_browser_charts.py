"""The vitals chart and the printed record as Chromium lays them out at the bedside tablet's
1024×768: marks in time order inside the plot area, and a print view that fits its sheet.

Screenshots (charts-*.png) go under tmp_path, and to SHOTS_DIR when it is set."""

import pytest

from tests.browser_support import shoot, sign_in

pytestmark = pytest.mark.browser

# US Letter is 8.5 in wide; record.css prints with 10 mm side margins (96 CSS px an inch).
LETTER_PRINTABLE_PX = round(8.5 * 96 - 2 * 10 / 25.4 * 96)

CHART_LAYOUT = """svg => {
  const box = el => { const r = el.getBoundingClientRect();
                      return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const centre = el => { const r = el.getBoundingClientRect();
                         return {x: (r.left + r.right) / 2, y: (r.top + r.bottom) / 2}; };
  const points = [...svg.querySelectorAll('.point')].map(el => ({
    series: [...el.classList].find(c => c.startsWith('point--')),
    tip: el.querySelector('title').textContent, ...centre(el)}));
  const grid = [...svg.querySelectorAll('line.grid')].map(box);
  return {
    svg: box(svg),
    parent: box(svg.parentElement),
    points,
    events: [...svg.querySelectorAll('.mark line')].map(el => centre(el).x),
    labels: [...svg.querySelectorAll('.mark-label')].map(box),
    plot: {left: Math.min(...grid.map(g => g.left)), right: Math.max(...grid.map(g => g.right)),
           top: Math.min(...grid.map(g => g.top)), bottom: Math.max(...grid.map(g => g.bottom))},
  };
}"""

# Elements that stick out of the sheet (body.record) on either side, or past the window.
OVERFLOW = """() => {
  const sheet = document.querySelector('body.record').getBoundingClientRect();
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < sheet.left - 1 || r.right > sheet.right + 1) {
      const at = (a, b) => `${Math.round(a)}–${Math.round(b)}`;
      wide.push(`${el.tagName.toLowerCase()}.${el.className} ${at(r.left, r.right)} ` +
                `(sheet ${at(sheet.left, sheet.right)})`);
    }
  }
  return {wide, scroll: document.documentElement.scrollWidth,
          window: document.documentElement.clientWidth};
}"""


def assert_fits(page, where: str) -> None:
    layout = page.evaluate(OVERFLOW)
    assert layout["scroll"] <= layout["window"], (where, layout["scroll"], layout["wide"][:5])
    assert layout["wide"] == [], (where, layout["wide"][:5])


def overlap(a, b) -> bool:
    return not (
        a["right"] <= b["left"]
        or b["right"] <= a["left"]
        or a["bottom"] <= b["top"]
        or b["bottom"] <= a["top"]
    )


def test_session_chart_marks_in_time_order_inside_the_plot(
    live_server,
    browser_page,
    scenario,
    csp_errors,
    tmp_path,
):
    page = browser_page
    sign_in(page, live_server, scenario.nurse)
    page.goto(f"{live_server}/infusions/{scenario.infusion_id}#chart")
    chart = page.locator("svg.chart-svg--vitals")
    chart.scroll_into_view_if_needed()
    layout = chart.evaluate(CHART_LAYOUT)
    shoot(page, tmp_path, "charts-session-chart")

    plot = layout["plot"]
    by_series: dict[str, list[dict]] = {}
    for point in layout["points"]:
        by_series.setdefault(point["series"], []).append(point)
        assert plot["left"] <= point["x"] <= plot["right"], point
        assert plot["top"] - 0.5 <= point["y"] <= plot["bottom"] + 0.5, point
    assert set(by_series) == {
        "point--systolic",
        "point--diastolic",
        "point--heart_rate",
        "point--spo2",
    }
    for series, points in by_series.items():
        assert len(points) == len(scenario.readings), series
        xs = [p["x"] for p in points]
        assert xs == sorted(xs) and len(set(xs)) == len(xs), (series, xs)
    # Events in order, each between the readings taken either side of it.
    events = layout["events"]
    assert len(events) == 4 and events == sorted(events)
    for line in events:
        assert plot["left"] <= line <= plot["right"]
    heart = [p["x"] for p in by_series["point--heart_rate"]]
    times = [at for at, *_ in scenario.readings]
    for line, at in zip(events, scenario.events, strict=True):
        before = max(x for x, t in zip(heart, times, strict=True) if t < at)
        after = min(x for x, t in zip(heart, times, strict=True) if t > at)
        assert before < line < after
    labels = layout["labels"]
    for i, a in enumerate(labels):
        assert all(not overlap(a, b) for b in labels[i + 1 :]), labels
        assert layout["svg"]["left"] <= a["left"] and a["right"] <= layout["svg"]["right"]
    # The chart fits its panel on the tablet.
    assert layout["svg"]["right"] <= layout["parent"]["right"] + 0.5
    assert csp_errors == []


def test_print_view_fits_its_sheet_on_screen_and_on_letter(
    live_server,
    browser_page,
    scenario,
    csp_errors,
    tmp_path,
):
    page = browser_page
    sign_in(page, live_server, scenario.nurse)
    page.goto(f"{live_server}/infusions/{scenario.infusion_id}/print")
    shoot(page, tmp_path, "charts-print-screen", full_page=True)
    assert_fits(page, "on screen at 1024 px")

    page.emulate_media(media="print")
    page.set_viewport_size({"width": LETTER_PRINTABLE_PX, "height": 1000})
    shoot(page, tmp_path, "charts-print-letter", full_page=True)
    assert_fits(page, f"printed on Letter ({LETTER_PRINTABLE_PX} px)")
    chart = page.locator("svg.chart-svg--vitals").bounding_box()
    assert chart["width"] <= LETTER_PRINTABLE_PX
    assert csp_errors == []
