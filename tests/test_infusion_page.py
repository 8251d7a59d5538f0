"""The session page: the status line at the top (patient, allergies, state, minutes, next
reading due, critical flags), the one primary action per state, the dose panel, and a query
count that does not grow with the number of readings."""

import re

import pytest
import sqlalchemy as sa

from infusion_tracker.extensions import db
from infusion_tracker.infusions import lifecycle, queries, readings
from infusion_tracker.infusions import page as page_module
from infusion_tracker.models import Assessment
from infusion_tracker.timeutil import utcnow
from tests.browser_support import shoot
from tests.conftest import PASSWORD, add_reading, run_session


@pytest.fixture
def nurse(make_staff):
    return make_staff("np")  # charts the session; each test signs in as whom it needs


def page(client, infusion):
    response = client.get(f"/infusions/{infusion.id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_status_line_comes_first_with_patient_allergies_and_state(client, login_as, infusing):
    staff = login_as("np")
    add_reading(infusing, staff, minutes_ago=3)
    html = page(client, infusing)
    status = html.index('id="status"')
    reading_form = html.index('id="chart-reading"')
    assert status < reading_form < html.index('id="events"') < html.index('id="details"')
    top = html[status:reading_form]
    assert infusing.patient.full_name in top
    assert infusing.patient.mrn in top
    assert "Allergies:</strong> Penicillin (rash)" in top
    assert 'tag--ok">Infusing' in top
    assert "12 of 40 min" in top
    assert "52.5 mg/h" in top
    assert "OVERDUE" not in top
    # Issue 10: while infusing the reading form comes first under the status strip; Stop,
    # Pause and Rate sit together with the infusion controls, further down.
    assert "Stop infusion" not in top and "Pause infusion" not in top
    assert 'href="#controls"' in top
    controls = html[html.index('id="controls"') :]
    controls = controls[: controls.index("</section>")]
    for button in (">Stop infusion</button>", ">Pause infusion</button>", ">Change rate</button>"):
        assert button in controls


def test_overdue_reading_stands_out(client, login_as, infusing):
    staff = login_as("np")
    add_reading(infusing, staff, minutes_ago=9)  # interval 5 min
    html = page(client, infusing)
    top = html[html.index('id="status"') : html.index('id="chart-reading"')]
    assert 'tag--critical">OVERDUE' in top


def test_open_critical_reading_is_a_banner_until_answered(client, login_as, infusing):
    staff = login_as("np")
    reading = add_reading(infusing, staff, minutes_ago=1, systolic=186)
    html = page(client, infusing)
    top = html[html.index('id="status"') : html.index('id="chart-reading"')]
    assert "CRITICAL" in top and "SBP 186 ≥ 180" in top
    readings.review_critical(reading, staff, "Repeat BP 150/90, physician informed.")
    db.session.commit()
    html = page(client, infusing)
    assert "SBP 186 ≥ 180" not in html[html.index('id="status"') : html.index('id="chart-reading"')]


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("planned", ">Check in</button>"),
        ("checked_in", ">Start infusion</button>"),
        ("paused", ">Resume infusion</button>"),
        ("recovery", ">Discharge</a>"),
    ],
)
def test_one_primary_action_per_state(client, login_as, make_infusion, status, label):
    login_as("pa")
    infusion = make_infusion()
    if status == "paused":
        run_session(infusion, "infusing")
        lifecycle.pause_infusion(infusion, infusion.clinician, "Nausea")
        db.session.commit()
    elif status != "planned":
        run_session(infusion, status)
    html = page(client, infusion)
    primary = html[html.index('id="primary-action"') :]
    primary = primary[: primary.index("</section>")]
    assert label in primary


def test_start_gate_problems_are_listed_and_physicians_get_the_override_box(
    client, login_as, make_infusion
):
    login_as("physician")
    infusion = run_session(make_infusion(), "checked_in")
    html = page(client, infusion)
    assert "Not ready to start" in html
    assert "No baseline reading yet" in html
    assert 'name="start-override_reason"' in html
    assert "Start infusion with override" in html


def test_nurse_practitioner_sees_no_override_box(client, login_as, make_infusion):
    login_as("np")
    infusion = run_session(make_infusion(), "checked_in")
    html = page(client, infusion)
    assert "ask a physician to override" in html
    assert 'name="start-override_reason"' not in html


def test_dose_panel_shows_the_computed_numbers_and_the_maximum(client, login_as, make_infusion):
    login_as("np")
    infusion = make_infusion(weight_kg=240.0, concentration_mg_per_ml=2.0)
    html = page(client, infusion)
    panel = html[html.index('id="details"') :]
    # 240 kg x 0.5 mg/kg = 120 mg over 40 min = 180 mg/h; at 2 mg/mL 90 mL/h, 60 mL.
    assert 'data-dose-out="total_mg">120<' in panel
    assert 'data-dose-out="mg_per_h">180<' in panel
    assert 'data-dose-out="ml_per_h">90<' in panel
    assert 'data-dose-out="volume_ml">60<' in panel
    assert "Total dose 120 mg is above the protocol maximum of 100 mg." in panel


def test_assessments_of_the_session_are_listed_with_a_link_to_record(client, login_as, infusing):
    staff = login_as("np")
    db.session.add(
        Assessment(
            patient_id=infusing.patient_id,
            infusion_id=infusing.id,
            instrument="phq9",
            score=14,
            taken_at=utcnow(),
            recorded_by_id=staff.id,
        )
    )
    db.session.commit()
    html = page(client, infusing)
    section = html[html.index('id="assessments"') :]
    assert "PHQ-9" in section and ">14<" in section
    assert f"/patients/{infusing.patient_id}/assessments/new?infusion_id={infusing.id}" in section


def test_signed_session_shows_no_actions_or_edit_form(client, login_as, make_infusion, make_staff):
    login_as("np")
    physician = make_staff("physician")
    infusion = run_session(make_infusion(physician=physician), "signed", started_minutes_ago=180)
    html = page(client, infusion)
    assert "Save checklist and details" not in html
    assert "Cancel session" not in html


def test_query_count_does_not_grow_with_readings(
    app, client, login_as, infusing, count_queries
):
    """The statements of a view that draws the page (infusions/drawn.py keeps it)."""
    staff = login_as("np")
    for minute in range(3):
        add_reading(infusing, staff, minutes_ago=10 - minute)
    lifecycle.pause_infusion(infusing, staff, "Nausea")
    db.session.commit()
    url = f"/infusions/{infusing.id}"
    client.get(url)  # warm caches (templates, mapper configuration)
    app.extensions["drawn_sessions"].clear()
    with count_queries() as few:
        client.get(url)
    for minute in range(27):
        add_reading(infusing, staff, minutes_ago=11 + minute, phase="baseline")
    lifecycle.resume_infusion(infusing, staff)
    lifecycle.change_rate(infusing, staff, 40.0, "BP up")
    db.session.commit()
    db.session.commit()  # the test's own session stays out of the count
    with count_queries() as many:
        html = client.get(url).get_data(as_text=True)
    assert html.count("<tr") > 30
    assert many.count == few.count, (few.statements, many.statements)
    # The signed-in user, the page's fingerprint (which lists the adverse events, addenda and
    # monitor values there are: none here), the ledger's newest entry (the draw form's vials
    # are part of what the kept page shows), the session with its people, one query per
    # collection it has (readings, events, assessments), and the dose panel's ledger (its
    # entries, from which its totals, a reason, and the safe's newest entry again, for its
    # vials); then the read audit row (issue 9): the chain's last hash and the insert.
    # (Was 16: the ledger's totals were read twice; then 15: the view read the session again
    # for its audit row, the page having let go of the one it drew; issue 8. Then 13: a running
    # session's page is kept as a finished one's, and asks only for the collections it has.
    # Then 12: the totals worked out from the entries listed.)
    assert few.count == 12, "\n".join(s[:120] for s in few.statements)


def test_the_staff_a_session_names_load_without_their_sign_in_columns(app, login_as, infusing):
    """A session's readings each name up to three staff: they load with a name and a role
    (models.STAFF_SHOWN), not the password hash, sealed TOTP key or recovery codes (issue 8);
    the page's names need no further query."""
    nurse = login_as("np")
    add_reading(infusing, nurse, minutes_ago=3)
    infusion_id, clinician = infusing.id, infusing.clinician.username
    db.session.expunge_all()
    with app.test_request_context():
        infusion = queries.get_infusion_or_404(infusion_id, full=True)
        recorder = infusion.readings[0].recorded_by
        unloaded = sa.inspect(recorder).unloaded
        assert {"password_hash", "totp_sealed", "recovery_codes", "session_token"} <= unloaded
        assert recorder.display_name and recorder.role_label
        assert sa.inspect(recorder).unloaded == unloaded  # no column was fetched for them
        assert infusion.clinician.username == clinician
    db.session.rollback()


def vitals_svg(html):
    start = html.rindex("<svg", 0, html.index("chart-svg--vitals"))
    return html[start : html.index("</svg>", start) + len("</svg>")]


def test_the_memoised_chart_is_never_stale(app, client, login_as, infusing):
    """The vitals chart is memoised on the values it draws (issue 8). Viewed again, the page
    gives the same chart; after a new reading, a void and a pause, the chart on the page is
    the one drawn afresh from the session."""
    staff = login_as("np")
    first = add_reading(infusing, staff, minutes_ago=6, heart_rate=80)

    def fresh():
        page_module._vitals_svg.cache_clear()
        with app.test_request_context():
            chart = str(page_module.vitals_chart(queries.get_infusion_or_404(infusing.id)))
            db.session.rollback()  # a page view's read-only transaction ends with it
            return chart

    shown = vitals_svg(page(client, infusing))
    assert vitals_svg(page(client, infusing)) == shown == fresh()
    charts = [shown]
    add_reading(infusing, staff, minutes_ago=3, heart_rate=130)
    charts.append(vitals_svg(page(client, infusing)))
    readings.void_reading(first, staff, "Wrong patient")
    db.session.commit()
    charts.append(vitals_svg(page(client, infusing)))
    lifecycle.pause_infusion(infusing, staff, "Nausea")
    db.session.commit()
    charts.append(vitals_svg(page(client, infusing)))
    assert charts[-1] == fresh()
    assert len(set(charts)) == 4


def readings_table(html):
    """The table, its Void boxes' CSRF token (signed afresh every second) left out."""
    start = html.index('<section class="panel" id="readings"')
    table = html[start : html.index("</section>", start)]
    return re.sub(r'(csrf_token" type="hidden" value=")[^"]+"', r'\1"', table)


def test_the_memoised_readings_table_is_never_stale(app, client, login_as, infusing):
    """The readings table is memoised under the session's version (issue 8). Shown again, it
    is the same table; after a new reading, a void, a critical value answered, a clinician's
    new name and for a viewer who may not void, the table on the page is the one drawn
    afresh."""
    staff = login_as("np")
    first = add_reading(infusing, staff, minutes_ago=6, heart_rate=80)

    def fresh():
        with app.app_context():
            client.application.extensions[page_module.READINGS_TABLES].clear()
        return readings_table(page(client, infusing))

    shown = readings_table(page(client, infusing))
    assert readings_table(page(client, infusing)) == shown == fresh()
    tables = [shown]
    critical = add_reading(infusing, staff, minutes_ago=3, heart_rate=130, systolic=186)
    tables.append(readings_table(page(client, infusing)))
    assert "SBP 186" in tables[-1]
    readings.void_reading(first, staff, "Wrong patient")
    db.session.commit()
    tables.append(readings_table(page(client, infusing)))
    readings.review_critical(critical, staff, "Repeat BP 150/90, physician informed.")
    db.session.commit()
    tables.append(readings_table(page(client, infusing)))
    assert "Repeat BP 150/90" in tables[-1] and "Repeat BP" not in tables[-2]
    staff.full_name = "Nia Renamed"
    db.session.commit()
    tables.append(readings_table(page(client, infusing)))
    assert tables[-1].count("Nia Renamed") == 4  # charted both, voided one, answered one
    client.post("/logout")
    login_as("pa")  # neither charted these readings nor signs: no Void, no Correct
    tables.append(readings_table(page(client, infusing)))
    assert "Void reading" in tables[-2] and "Void reading" not in tables[-1]
    assert tables[-1] == fresh()
    assert len(set(tables)) == 6


# --- In a real browser: the tablet layout and the live dose preview --------------------------


@pytest.mark.browser
def test_tablet_page_previews_the_dose_live_without_csp_errors(
    app, live_server, browser_page, csp_errors, script_errors, make_staff, make_infusion, tmp_path
):
    nurse = make_staff("np", username="tablet")
    infusion = make_infusion(clinician=nurse, weight_kg=None, total_mg=None)
    infusion_id = infusion.id
    db.session.commit()  # SQLite: let the server's requests write
    page = browser_page  # CSP refusals and script errors are collected by the fixtures
    page.goto(f"{live_server}/login")
    page.fill("#username", "tablet")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/")
    page.goto(f"{live_server}/infusions/{infusion_id}")
    check_in = page.locator("#primary-action button")
    assert check_in.inner_text() == "Check in"
    assert check_in.bounding_box()["height"] >= 44
    page.fill("#details-weight", "250")
    assert page.inner_text('[data-dose-out="total_mg"]') == "125"
    assert page.inner_text('[data-dose-out="mg_per_h"]') == "187.5"
    assert "above the protocol maximum" in page.inner_text("[data-dose-warning]")
    page.fill("#details-weight", "80")
    assert page.inner_text('[data-dose-out="total_mg"]') == "40"
    assert not page.is_visible("[data-dose-warning]")
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, tmp_path, "session-page-1024")
    page.goto(f"{live_server}/")
    shoot(page, tmp_path, "suite-board-1024", full_page=True)
    assert csp_errors + script_errors == []


def test_an_action_form_the_state_does_not_draw_is_not_built_and_fails_loudly_if_read(
    client, login_as, make_infusion
):
    """Only the forms the state draws are built (issue 8); one read anyway is an error, not a
    form drawn without its CSRF token."""
    login_as("np")
    html = page(client, make_infusion(status="planned"))
    forms = re.findall(r'<form[^>]*action="/infusions/\d+/([a-z-]+)"', html)
    assert forms == ["check-in", "edit", "cancel"]
    with pytest.raises(RuntimeError, match="stop_form is not drawn"):
        _ = page_module.NotDrawn("stop_form").csrf_token
