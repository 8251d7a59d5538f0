"""Charting readings on the session page (SPEC §2 Reading, §3, §4): the three tiers, deltas
from baseline, NEWS2, void and correction, the critical answer, and the locks."""

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker.extensions import db
from infusion_tracker.infusions import readings as reading_services
from infusion_tracker.infusions.reading_cells import flagged
from infusion_tracker.models import InfusionSession, Reading, Staff
from infusion_tracker.timeutil import to_clinic, utcnow
from tests.conftest import PASSWORD, audit_rows, login, section, sqlite_plan


def wall(minutes_ago: float = 0) -> str:
    """A clinic wall time as the datetime-local box submits it."""
    return to_clinic(utcnow() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M")


def reading_data(minutes_ago: float = 0, phase: str = "infusion", **values) -> dict:
    data = {"reading-taken_at": wall(minutes_ago), "reading-phase": phase}
    data.update({f"reading-{name}": str(value) for name, value in values.items()})
    return data


NORMAL = {
    "systolic": 128,
    "diastolic": 80,
    "heart_rate": 72,
    "resp_rate": 14,
    "spo2": 98,
    "o2_room_air": "y",
}


def readings_of(infusion) -> list[Reading]:
    return db.session.scalars(
        sa.select(Reading).where(Reading.infusion_id == infusion.id).order_by(Reading.id)
    ).all()


@pytest.fixture
def charted_baseline():
    return False  # these tests count the session's readings from none


def post_reading(client, infusion, minutes_ago=0, phase="infusion", **values):
    return client.post(
        f"/infusions/{infusion.id}/readings", data=reading_data(minutes_ago, phase, **values)
    )


def chart(infusion, staff, minutes_ago=0, phase="infusion", **values):
    """Chart through the service (for setting the scene)."""
    data = {"taken_at": utcnow() - timedelta(minutes=minutes_ago), "phase": phase, **values}
    # Scenes here set a baseline on purpose, also after the start.
    data.setdefault("confirm_baseline", phase == "baseline")
    reading = reading_services.record_reading(infusion, data, staff)
    db.session.commit()
    return reading


# --- The form ---------------------------------------------------------------------------------


def test_the_reading_form_comes_first_with_now_the_phase_and_the_previous_values(
    client, infusing, nurse
):
    chart(
        infusing,
        nurse,
        minutes_ago=4,
        systolic=131,
        diastolic=79,
        heart_rate=66,
        spo2=97,
        o2_flow_lpm=2.0,
    )
    before = wall()
    html = client.get(f"/infusions/{infusing.id}").get_data(as_text=True)
    minutes = {before, wall()}  # the page is drawn in one of these minutes
    form = section(html, "chart-reading")
    assert html.index('id="chart-reading"') < html.index('id="readings"')
    shown = re.search(r'name="reading-taken_at"[^>]*value="([^"]*)"', form).group(1)
    assert shown in minutes, (shown, minutes)
    assert re.search(r'checked[^>]*name="reading-phase"[^>]*value="infusion"', form)
    assert "last 131" in form and "last 79" in form
    # The last O2 is offered as "unchanged" (one box, not ticked), never put in the boxes.
    assert "O2 <strong>2 L/min</strong>" in form
    assert not re.search(r'<input[^>]*checked[^>]*name="reading-same_as_last"', form)
    assert not re.search(r'name="reading-o2_flow_lpm"[^>]*value="2', form)
    # The last reading was on oxygen, so "room air" is not ticked for the nurse.
    assert not re.search(r'<input[^>]*checked[^>]*name="reading-o2_room_air"', form)
    assert 'inputmode="numeric"' in form and 'size="3"' in form
    assert form.count('type="submit"') == 1 and "Record reading" in form


def tab_order(client, infusion) -> list[str]:
    form = section(client.get(f"/infusions/{infusion.id}").get_data(as_text=True), "chart-reading")
    names = []
    for box in re.findall(r"<(?:input|select|textarea)[^>]*>", form):
        name = re.search(r'name="reading-([a-z0-9_]+)"', box)
        if name and 'type="hidden"' not in box and name.group(1) not in names:
            names.append(name.group(1))
    return names


# Issue 10: the monitor's numbers and pain first, then O2, temperature and what is observed
# (rhythm, AVPU, MOAA/S); "unchanged since the last reading" confirms O2, rhythm, AVPU and
# MOAA/S in one box when there is a last reading to repeat.
NUMBERS = ["systolic", "diastolic", "heart_rate", "resp_rate", "spo2", "pain"]
OBSERVED = ["o2_room_air", "o2_flow_lpm", "temperature", "rhythm", "rhythm_other", "avpu", "moaas"]


def test_boxes_are_in_bedside_tab_order(client, infusing, nurse):
    # The time ("now", one stop), the phase, and the box a new baseline needs once started.
    head = ["taken_at", "phase", "confirm_baseline"]
    assert tab_order(client, infusing) == [*head, *NUMBERS, *OBSERVED, "note"]
    chart(infusing, nurse, minutes_ago=1, heart_rate=70, rhythm="nsr", avpu="A")
    assert tab_order(client, infusing) == [
        *head, *NUMBERS, "same_as_last", *OBSERVED, "note"
    ]


def test_baseline_is_the_suggested_phase_once_checked_in(client, make_infusion, nurse):
    infusion = make_infusion(
        status="checked_in", clinician=nurse, checked_in_at=utcnow() - timedelta(minutes=5)
    )
    form = section(client.get(f"/infusions/{infusion.id}").get_data(as_text=True), "chart-reading")
    assert re.search(r'checked[^>]*name="reading-phase"[^>]*value="baseline"', form)


# --- Tier 1: impossible -----------------------------------------------------------------------


def test_impossible_values_are_refused_with_field_and_range_and_the_typing_kept(client, infusing):
    response = post_reading(
        client,
        infusing,
        systolic=400,
        diastolic=80,
        heart_rate="abc",
        spo2=101,
        note="patient restless",
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    form = section(html, "chart-reading")
    assert "There is a problem" in form
    assert 'id="reading-systolic-error"' in form
    assert "Systolic BP must be between 40 and 300 mmHg." in form
    assert "SpO2 must be between 50 and 100 %." in form
    assert "Heart rate must be a whole number." in form
    assert re.search(r'name="reading-systolic"[^>]*value="400"', form)
    assert re.search(r'name="reading-heart_rate"[^>]*value="abc"', form)
    assert re.search(r'name="reading-note"[^>]*value="patient restless"', form)
    assert 'href="#reading-systolic"' in form  # the summary links to the box
    assert readings_of(infusing) == []


def test_diastolic_must_be_below_systolic(client, infusing):
    response = post_reading(client, infusing, systolic=90, diastolic=95)
    assert "Diastolic BP must be below systolic BP (90 mmHg)." in response.get_data(as_text=True)
    assert readings_of(infusing) == []


def test_a_reading_needs_at_least_one_measurement(client, infusing):
    response = post_reading(client, infusing, note="nothing measured", o2_room_air="y")
    assert response.status_code == 422
    assert "Enter at least one measurement." in response.get_data(as_text=True)
    assert readings_of(infusing) == []


def test_a_malformed_time_or_choice_is_refused_not_a_500(client, infusing):
    data = reading_data(heart_rate=70)
    data.update({"reading-taken_at": "yesterday at two", "reading-moaas": "x"})
    response = client.post(f"/infusions/{infusing.id}/readings", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Enter the time taken as a date and time" in html
    assert re.search(r'name="reading-taken_at"[^>]*value="yesterday at two"', html)
    assert 'id="reading-moaas-error"' in html
    assert readings_of(infusing) == []


def test_a_time_in_the_future_is_refused(client, infusing):
    response = post_reading(client, infusing, minutes_ago=-30, heart_rate=70)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "The time taken cannot be in the future." in html
    assert re.search(r'name="reading-heart_rate"[^>]*value="70"', html)
    assert readings_of(infusing) == []


def test_a_time_before_check_in_is_refused(client, infusing):
    response = post_reading(client, infusing, minutes_ago=60, heart_rate=70)
    assert "cannot be before the patient was checked in" in response.get_data(as_text=True)
    assert readings_of(infusing) == []


def test_a_late_entry_is_accepted_and_shows_when_it_was_typed(client, infusing):
    assert post_reading(client, infusing, minutes_ago=25, **NORMAL).status_code == 302
    table = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "readings")
    assert re.search(r"entered \d\d:\d\d", table)


def test_other_rhythm_needs_words(client, infusing):
    response = post_reading(client, infusing, heart_rate=70, rhythm="other")
    assert "Describe the other rhythm." in response.get_data(as_text=True)
    assert readings_of(infusing) == []


@pytest.mark.parametrize("app_config", [{"UNITS": "us"}])
def test_temperature_in_fahrenheit_is_stored_metric_and_its_range_said_in_fahrenheit(
    client, infusing
):
    response = post_reading(client, infusing, temperature="120")
    assert "Temperature must be between 86.0 and 109.4 °F." in response.get_data(as_text=True)
    assert post_reading(client, infusing, temperature="98.6").status_code == 302
    (reading,) = readings_of(infusing)
    assert reading.temperature_c == pytest.approx(37.0)
    table = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "readings")
    assert "98.6 °F" in table


# --- Recording, tiers 2 and 3, deltas and NEWS2 -----------------------------------------------


def test_a_normal_reading_is_stored_audited_and_listed(client, infusing, nurse):
    response = post_reading(
        client,
        infusing,
        temperature="36.8",
        rhythm="nsr",
        avpu="A",
        moaas=5,
        pain=2,
        note="comfortable",
        **NORMAL,
    )
    assert response.status_code == 302
    (reading,) = readings_of(infusing)
    # Back to the form, with the new row marked to be highlighted (issue 10).
    assert response.headers["Location"] == (
        f"/infusions/{infusing.id}?saved={reading.id}#reading-systolic"
    )
    assert (reading.systolic, reading.diastolic, reading.heart_rate, reading.spo2) == (
        128,
        80,
        72,
        98,
    )
    assert reading.o2_flow_lpm == 0 and reading.temperature_c == pytest.approx(36.8)
    assert reading.severity == "normal" and reading.flags == []
    assert reading.news2 == 0
    assert reading.recorded_by_id == nurse.id and reading.phase == "infusion"
    (entry,) = audit_rows("reading.recorded")
    assert entry.patient_id == infusing.patient_id and entry.entity_id == reading.id
    assert entry.details["systolic"] == 128 and entry.details["severity"] == "normal"
    table = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "readings")
    assert "128" in table and "comfortable" in table and nurse.display_name in table
    assert "0</span>" in table and "low" in table  # NEWS2 with its risk word


def test_an_abnormal_value_is_stored_and_shown_with_the_word(client, infusing):
    assert (
        post_reading(client, infusing, systolic=165, diastolic=85, heart_rate=72).status_code == 302
    )
    (reading,) = readings_of(infusing)
    assert reading.severity == "abnormal"
    assert {"field": "systolic", "level": "abnormal", "message": "SBP 165 > 160"} in reading.flags
    table = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "readings")
    assert 'class="value--abnormal">165' in table
    assert "tag--abnormal" in table and ">abnormal<" in table
    assert "row--abnormal" in table


def test_a_critical_value_raises_the_banner_and_asks_for_an_action(client, infusing):
    response = post_reading(client, infusing, systolic=185, diastolic=95, heart_rate=80)
    assert response.status_code == 302
    (reading,) = readings_of(infusing)
    assert reading.severity == "critical" and reading.critical_action == ""
    html = client.get(f"/infusions/{infusing.id}").get_data(as_text=True)
    banner = section(html, "critical-actions")
    assert "CRITICAL" in banner and "SBP 185 ≥ 180" in banner
    assert f"ae_reading={reading.id}" in banner  # record an adverse event for it
    assert f'action="/readings/{reading.id}/review"' in banner  # or "reviewed, no action"
    table = section(html, "readings")
    assert 'class="value--critical">185' in table and ">CRITICAL<" in table
    assert "Action needed" in table


def test_a_rise_above_baseline_is_flagged_and_the_delta_shown(client, infusing, nurse):
    chart(
        infusing, nurse, minutes_ago=20, phase="baseline", systolic=120, diastolic=75, heart_rate=70
    )
    # 158 is inside the normal limits but 32 % above this patient's own baseline.
    assert (
        post_reading(client, infusing, systolic=158, diastolic=80, heart_rate=75).status_code == 302
    )
    reading = readings_of(infusing)[-1]
    assert reading.severity == "abnormal"
    assert any(flag["message"] == "SBP 32 % above baseline 120" for flag in reading.flags)
    table = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "readings")
    assert '<span class="delta">+38</span>' in table and '<span class="delta">+5</span>' in table
    assert "SBP 32 % above baseline 120" in table


def test_the_latest_baseline_that_was_not_voided_is_the_reference(infusing, nurse):
    first = chart(infusing, nurse, minutes_ago=30, phase="baseline", systolic=110)
    second = chart(infusing, nurse, minutes_ago=20, phase="baseline", systolic=150)
    chart(infusing, nurse, minutes_ago=5, systolic=120)
    assert reading_services.latest_baseline(infusing).id == second.id
    reading_services.void_reading(second, nurse, "wrong patient")
    db.session.commit()
    assert reading_services.latest_baseline(infusing).id == first.id


def test_the_latest_baseline_is_read_from_its_own_index(app):
    """Not by walking back over every later reading of a long session (SQLite's plan; the
    partial index is PostgreSQL's too)."""
    compiled = reading_services.LATEST_BASELINE.compile(db.engine)
    plan = sqlite_plan(compiled, compiled.construct_params({"infusion_id": 1}))
    assert plan == ["SEARCH reading USING INDEX ix_reading_baseline (infusion_id=?)"], plan


def test_new_atrial_fibrillation_is_critical(client, infusing, nurse):
    chart(infusing, nurse, minutes_ago=20, phase="baseline", heart_rate=70, rhythm="nsr")
    assert post_reading(client, infusing, heart_rate=96, rhythm="af").status_code == 302
    reading = readings_of(infusing)[-1]
    assert reading.severity == "critical"
    assert {
        "field": "rhythm",
        "level": "critical",
        "message": "Atrial fibrillation, new onset",
    } in reading.flags


def test_known_atrial_fibrillation_at_a_repeat_baseline_is_not_new_onset(infusing, nurse):
    first = chart(infusing, nurse, minutes_ago=25, phase="baseline", heart_rate=88, rhythm="af")
    repeat = chart(infusing, nurse, minutes_ago=5, phase="baseline", heart_rate=86, rhythm="af")
    assert first.severity == "critical"  # nothing to compare with: flagged for a decision
    assert repeat.severity == "abnormal"
    assert repeat.flags == [
        {
            "field": "rhythm",
            "level": "abnormal",
            "message": "Atrial fibrillation (present at baseline)",
        }
    ]


def test_news2_is_stored_per_reading_with_its_risk(client, infusing):
    # RCP NEWS2: RR 22 → 2, SpO2 94 → 1, oxygen → 2, SBP 105 → 1, HR 95 → 1, alert → 0,
    # 38.5 °C → 1: total 8, high risk.
    response = post_reading(
        client,
        infusing,
        resp_rate=22,
        spo2=94,
        o2_flow_lpm=2,
        systolic=105,
        diastolic=70,
        heart_rate=95,
        avpu="A",
        temperature="38.5",
    )
    assert response.status_code == 302
    (reading,) = readings_of(infusing)
    assert reading.news2 == 8 and reading.o2_flow_lpm == 2.0
    table = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "readings")
    assert '<span class="news2">8</span>' in table and ">high<" in table


def test_each_value_is_under_its_column_with_its_flag_in_words(client, infusing):
    """The values row (infusions/reading_cells) against the table's headings: what a nurse
    reads across the row, each flagged value worded as well as coloured."""
    response = post_reading(
        client, infusing, resp_rate=22, spo2=94, o2_flow_lpm=2, systolic=105, diastolic=70,
        heart_rate=95, avpu="V", temperature="38.5", rhythm="af", moaas=3, pain=4,
    )
    assert response.status_code == 302
    (reading,) = readings_of(infusing)
    table = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "readings")
    headings = re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', table)
    row = re.search(r'<tr class="reading__values[^"]*">(.*?)</tr>', table, re.S).group(1)
    cells = [" ".join(re.sub(r"<[^>]+>", " ", cell).split())
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    shown = dict(zip(headings, cells, strict=True))
    # NEWS2 (RCP): RR 22 → 2, SpO2 94 → 1, oxygen → 2, SBP 105 → 1, HR 95 → 1, voice → 3,
    # 38.5 °C → 1: 11, high; the default protocol flags RR, SpO2, temperature and AVPU
    # abnormal, and atrial fibrillation critical.
    assert shown == {
        "Time": f"{to_clinic(reading.taken_at):%H:%M} Infusion",
        "BP": "105 / 70",
        "HR": "95",
        "RR": "22 abnormal",
        "SpO2 / O2": "94 % abnormal 2 L/min",
        "Temp": "38.5 °C abnormal",
        "Rhythm": "AF CRITICAL",
        "AVPU": "V abnormal",
        "MOAA/S": "3",
        "Pain": "4",
        "NEWS2": "11 high",
    }
    assert 'class="value--critical">AF</span>' in row


def test_a_kept_cell_is_the_value_s_own_text():
    """The cells' values are kept by value: 98 and 98.0 are equal keys, not the same text."""
    assert flagged(98, "abnormal").startswith('<span class="value--abnormal">98</span>')
    assert flagged(98.0, "abnormal").startswith('<span class="value--abnormal">98.0</span>')
    assert flagged("<b>", None) == '<span class="">&lt;b&gt;</span>'


def test_room_air_and_a_flow_together_are_refused(client, infusing):
    response = post_reading(client, infusing, spo2=97, o2_room_air="y", o2_flow_lpm=2)
    assert "Tick room air or enter an O2 flow, not both." in response.get_data(as_text=True)


# --- When the next reading is due -------------------------------------------------------------


def test_next_reading_due_and_overdue(client, infusing, nurse):
    chart(infusing, nurse, minutes_ago=8, heart_rate=70)
    form = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "chart-reading")
    assert "Next reading due" in form and "OVERDUE" in form and "every 5 min" in form
    chart(infusing, nurse, minutes_ago=1, heart_rate=72)
    form = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "chart-reading")
    due = to_clinic(utcnow() - timedelta(minutes=1) + timedelta(minutes=5))
    assert "OVERDUE" not in form
    assert f"<strong>{due.strftime('%H:%M')}</strong>" in form


def test_a_note_is_shown_as_typed_never_as_markup(client, infusing, nurse):
    # The row under the values is written in Python (reading_cells.about_row), not by Jinja.
    note = '<b>cuff</b> "left" & re-sited'
    reading = chart(infusing, nurse, minutes_ago=2, systolic=130, diastolic=80, note=note)
    table = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "readings")
    assert (
        f'<span class="muted">#{reading.id}</span> {nurse.display_name}\n'
        ' · <span class="reading__note">&lt;b&gt;cuff&lt;/b&gt; &#34;left&#34; &amp; re-sited'
        "</span>"
    ) in table
    assert "<b>" not in table


# --- Void and correction ----------------------------------------------------------------------


def test_void_needs_a_reason_and_keeps_the_row_struck_through(client, infusing, nurse):
    reading = chart(infusing, nurse, minutes_ago=2, systolic=130, diastolic=80)
    response = client.post(f"/readings/{reading.id}/void", data={})
    assert response.status_code == 302
    assert reading.voided_at is None
    assert "Give the reason for voiding." in client.get(f"/infusions/{infusing.id}").get_data(
        as_text=True
    )

    response = client.post(
        f"/readings/{reading.id}/void",
        data={f"void-reading-{reading.id}-reason": "wrong patient's monitor"},
    )
    assert response.status_code == 302
    assert reading.voided_at is not None and reading.voided_by_id == nurse.id
    assert reading.void_reason == "wrong patient's monitor"
    (entry,) = audit_rows("reading.voided")
    assert entry.details == {"reason": "wrong patient's monitor"}
    table = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "readings")
    assert re.search(rf'id="reading-{reading.id}">\s*<tr class="reading__values voided"', table)
    assert f"Voided by {nurse.display_name}" in table and "wrong patient&#39;s monitor" in table
    # A voided reading is no longer the "previous" one.
    form = section(client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "chart-reading")
    assert "last 130" not in form


def test_only_the_recorder_or_a_physician_may_void(app, client, infusing, nurse, make_staff):
    reading = chart(infusing, nurse, minutes_ago=2, heart_rate=70)
    colleague = make_staff("pa")
    other = app.test_client()
    login(other, colleague.username)
    data = {f"void-reading-{reading.id}-reason": "typo"}
    response = other.post(f"/readings/{reading.id}/void", data=data)
    assert response.status_code == 409
    assert reading.voided_at is None
    doctor = make_staff("physician")
    supervisor = app.test_client()
    login(supervisor, doctor.username)
    assert supervisor.post(f"/readings/{reading.id}/void", data=data).status_code == 302
    assert reading.voided_by_id == doctor.id


def test_a_correction_is_a_new_reading_pointing_at_the_old(client, infusing, nurse):
    old = chart(infusing, nurse, minutes_ago=3, systolic=185, diastolic=80, heart_rate=70)
    page = client.get(f"/readings/{old.id}/correct")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert re.search(r'name="reading-systolic"[^>]*value="185"', html)
    assert re.search(r'checked[^>]*name="reading-phase"[^>]*value="infusion"', html)

    data = reading_data(3, systolic=135, diastolic=80, heart_rate=70)
    response = client.post(f"/readings/{old.id}/correct", data=data)
    assert response.status_code == 302
    old_row, new = readings_of(infusing)
    assert old_row.id == old.id and old_row.is_voided and old_row.void_reason == "corrected"
    assert new.corrects_id == old.id and new.systolic == 135 and new.severity == "normal"
    (entry,) = audit_rows("reading.corrected")
    assert entry.details["corrects"] == old.id
    assert entry.details["before"]["systolic"] == 185 and entry.details["after"]["systolic"] == 135
    html = client.get(f"/infusions/{infusing.id}").get_data(as_text=True)
    table = section(html, "readings")
    assert (
        f'corrects <a href="#reading-{old.id}">#{old.id}</a>' in table
        and f'Corrected by <a href="#reading-{new.id}"' in table
    )
    # The typo was never critical: nothing asks for an action any more.
    assert 'id="critical-actions"' not in html
    # The old one cannot be corrected again.
    assert client.get(f"/readings/{old.id}/correct").status_code == 409


def test_the_correction_page_says_the_reading_it_corrects_o2_included(client, infusing, nurse):
    on_air = chart(infusing, nurse, minutes_ago=4, systolic=128, spo2=97, o2_flow_lpm=0)
    on_flow = chart(infusing, nurse, minutes_ago=2, systolic=126, spo2=95, o2_flow_lpm=2.5)
    for reading, said in ((on_air, "SpO2 97 % · Room air"), (on_flow, "SpO2 95 % · 2.5 L/min")):
        html = client.get(f"/readings/{reading.id}/correct").get_data(as_text=True)
        assert re.search(rf"<strong>BP {reading.systolic}/– · {re.escape(said)}\s*</strong>", html)


def test_a_refused_correction_keeps_the_typing(client, infusing, nurse):
    old = chart(infusing, nurse, minutes_ago=3, heart_rate=70)
    response = client.post(f"/readings/{old.id}/correct", data=reading_data(3, heart_rate=300))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Heart rate must be between 20 and 250 bpm." in html
    assert re.search(r'name="reading-heart_rate"[^>]*value="300"', html)
    assert not old.is_voided


# --- The critical answer ----------------------------------------------------------------------


def test_reviewed_no_action_needs_a_note_and_is_set_once(client, infusing, nurse):
    reading = chart(infusing, nurse, minutes_ago=1, systolic=92, diastolic=60, spo2=91)
    response = client.post(f"/readings/{reading.id}/review", data={})
    assert response.status_code == 302 and reading.critical_action == ""

    note = "probe off the finger; repeat SpO2 98 %"
    response = client.post(
        f"/readings/{reading.id}/review", data={f"review-{reading.id}-note": note}
    )
    assert response.status_code == 302
    assert reading.critical_action == "reviewed" and reading.critical_action_note == note
    assert reading.critical_action_by_id == nurse.id and reading.critical_action_at is not None
    (entry,) = audit_rows("reading.critical_reviewed")
    assert entry.details["note"] == note and entry.patient_id == infusing.patient_id
    html = client.get(f"/infusions/{infusing.id}").get_data(as_text=True)
    assert 'id="critical-actions"' not in html
    assert "Reviewed, no action" in section(html, "readings")
    again = client.post(
        f"/readings/{reading.id}/review", data={f"review-{reading.id}-note": "again"}
    )
    assert again.status_code == 409
    assert reading.critical_action_note == note


def test_a_normal_reading_asks_for_no_action(client, infusing, nurse):
    reading = chart(infusing, nurse, minutes_ago=1, heart_rate=70)
    response = client.post(
        f"/readings/{reading.id}/review", data={f"review-{reading.id}-note": "fine"}
    )
    assert response.status_code == 409
    assert reading.critical_action == ""


# --- Locks and roles --------------------------------------------------------------------------


def test_a_signed_session_takes_no_reading_void_or_correction(client, infusing, nurse, make_staff):
    reading = chart(infusing, nurse, minutes_ago=2, heart_rate=70)
    doctor = make_staff("physician")
    infusing.signed_at = utcnow()
    infusing.signed_by_id = doctor.id
    db.session.commit()
    response = post_reading(client, infusing, **NORMAL)
    assert response.status_code == 409
    assert "signed" in response.get_data(as_text=True)
    assert len(readings_of(infusing)) == 1
    data = {f"void-reading-{reading.id}-reason": "typo"}
    assert client.post(f"/readings/{reading.id}/void", data=data).status_code == 409
    assert client.get(f"/readings/{reading.id}/correct").status_code == 409
    assert reading.voided_at is None
    html = client.get(f"/infusions/{infusing.id}").get_data(as_text=True)
    assert f'action="/infusions/{infusing.id}/readings"' not in html
    assert f"/readings/{reading.id}/void" not in html


@pytest.mark.parametrize("status", ["planned", "cancelled", "discharged"])
def test_no_new_reading_outside_check_in_to_recovery(client, make_infusion, nurse, status):
    infusion = make_infusion(
        status=status, clinician=nurse, checked_in_at=utcnow() - timedelta(hours=1)
    )
    response = post_reading(client, infusion, heart_rate=70)
    assert response.status_code == 409
    assert readings_of(infusion) == []


def test_readings_are_charted_in_recovery_with_the_recovery_interval(client, make_infusion, nurse):
    now = utcnow()
    infusion = make_infusion(
        status="recovery",
        clinician=nurse,
        checked_in_at=now - timedelta(minutes=80),
        started_at=now - timedelta(minutes=60),
        ended_at=now - timedelta(minutes=20),
    )
    html = client.get(f"/infusions/{infusion.id}").get_data(as_text=True)
    form = section(html, "chart-reading")
    assert re.search(r'checked[^>]*name="reading-phase"[^>]*value="recovery"', form)
    assert "every 15 min" in form
    assert post_reading(client, infusion, phase="recovery", **NORMAL).status_code == 302


def test_admin_may_not_chart(app, infusing, make_staff):
    admin = app.test_client()
    login(admin, make_staff("admin").username)
    assert post_reading(admin, infusing, **NORMAL).status_code == 403
    assert readings_of(infusing) == []


def test_two_clinicians_charting_at_once_both_land(app, infusing, nurse, make_staff):
    colleague = make_staff("pa")
    clients = [app.test_client(), app.test_client()]
    login(clients[0], nurse.username)
    login(clients[1], colleague.username)
    # Both draw the page from the same version of the session ...
    for each in clients:
        assert each.get(f"/infusions/{infusing.id}").status_code == 200
    version, url = infusing.version, f"/infusions/{infusing.id}/readings"
    # Release this thread's transaction (SQLite takes the write lock even to read here).
    db.session.commit()
    # ... then post at the same moment: readings are appends, so neither is refused.
    barrier = threading.Barrier(2)
    statuses = []

    def post(each, heart_rate):
        with app.app_context():
            barrier.wait(timeout=10)
            response = each.post(url, data=reading_data(heart_rate=heart_rate))
            statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(each, 70 + n)) for n, each in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [302, 302]
    db.session.expire_all()
    rows = readings_of(infusing)
    assert sorted(r.heart_rate for r in rows) == [70, 71]
    assert {r.recorded_by_id for r in rows} == {nurse.id, colleague.id}
    # Each reading makes a new version of the session (an open sign form is now stale).
    assert infusing.version == version + 2


def charted_meanwhile(app, infusion_id: int, staff_id: int, **data) -> None:
    """Another clinician's reading, committed on a connection of its own while this test's
    request has read the session and not yet written."""
    with app.app_context():
        infusion = db.session.get(InfusionSession, infusion_id)
        reading_services.record_reading(
            infusion, {"taken_at": utcnow(), **data}, db.session.get(Staff, staff_id)
        )
        db.session.commit()


def chart_from_the_page(app, infusion_id: int, staff_id: int, write_between, **data):
    """What the session page's POST does (readings.chart_reading), with `write_between()`
    committed after the session was read and before the reading is written."""
    db.session.commit()  # this thread's own transaction ended (the scene's, outside a request)
    with app.test_request_context(method="POST"):
        read = reading_services.read_for_charting(infusion_id, data.get("submission_key"))
        version = read.infusion.version
        write_between()
        try:
            reading = reading_services.chart_reading(
                read, {"taken_at": utcnow(), **data}, db.session.get(Staff, staff_id)
            )
            db.session.commit()
        finally:
            db.session.rollback()
    return reading, version


def test_a_reading_is_checked_against_a_baseline_charted_after_its_session_was_read(
    app, infusing, nurse, make_staff
):
    """A new baseline (heart rate 100) lands between the page's read of the session and its
    write: the reading (heart rate 100) is compared with it, not with the one read before (60),
    and the session's version names both readings."""
    chart(infusing, nurse, minutes_ago=3, phase="baseline", heart_rate=60)
    colleague = make_staff("pa")
    ids = infusing.id, nurse.id, colleague.id
    reading, version = chart_from_the_page(
        app,
        ids[0],
        ids[1],
        lambda: charted_meanwhile(
            app, ids[0], ids[2], phase="baseline", heart_rate=100, confirm_baseline=True
        ),
        phase="infusion",
        heart_rate=100,
    )
    db.session.expire_all()
    stored = db.session.get(Reading, reading.id)
    assert [flag["message"] for flag in stored.flags if "baseline" in flag["message"]] == []
    assert [r.heart_rate for r in readings_of(infusing)][-2:] == [100, 100]
    assert db.session.get(InfusionSession, ids[0]).version == version + 2


def test_a_form_posted_twice_at_once_is_recorded_once(app, infusing, nurse):
    """The same form (its key) stored by another request after this one read the session:
    this one finds it when it writes, and records nothing more."""
    ids = infusing.id, nurse.id
    before = len(readings_of(infusing))
    form = {"phase": "infusion", "heart_rate": 77, "submission_key": "one-form"}
    with pytest.raises(reading_services.AlreadyRecorded):
        chart_from_the_page(
            app, *ids, lambda: charted_meanwhile(app, *ids, **form), **form
        )
    db.session.expire_all()
    rows = readings_of(infusing)
    assert len(rows) == before + 1
    assert rows[-1].submission_key == "one-form"


def test_the_session_page_costs_the_same_with_many_readings(client, infusing, nurse, count_queries):
    for n in range(3):
        chart(infusing, nurse, minutes_ago=9 - n, heart_rate=70 + n)
    with count_queries() as few:
        assert client.get(f"/infusions/{infusing.id}").status_code == 200
    for n in range(20):
        chart(
            infusing, nurse, minutes_ago=5, systolic=185 if n % 5 == 0 else 120, heart_rate=60 + n
        )
    with count_queries() as many:
        assert client.get(f"/infusions/{infusing.id}").status_code == 200
    assert many.count == few.count


def test_recording_a_reading_costs_the_same_few_statements_with_many_readings(
    client, infusing, nurse, count_queries
):
    """Who is signed in; the session with its protocol's limits, its latest baseline and any
    reading stored from the same form (readings.read_for_charting: one statement, was three);
    the new version, the reading with its form's key, the audit chain's last hash and the
    audit row: six, with 3 readings charted or 23 (issue 8: the key was written by an UPDATE
    of its own, the protocol read by another)."""
    for n in range(3):
        chart(infusing, nurse, minutes_ago=9 - n, heart_rate=70 + n)
    address = f"/infusions/{infusing.id}/readings"

    def record(key: str, heart_rate: int):
        data = reading_data(**{**NORMAL, "heart_rate": heart_rate})
        with count_queries() as counted:
            response = client.post(address, data={**data, "reading-submission_key": key})
        assert response.status_code == 302
        return counted

    few = record("first-form", 80)
    for n in range(20):
        chart(infusing, nurse, minutes_ago=5, heart_rate=60 + n)
    many = record("second-form", 81)
    assert few.count == many.count == 6, "\n".join(s[:70] for s in few.statements)
    stored = {r.heart_rate: r.submission_key for r in readings_of(infusing)}
    assert (stored[80], stored[81]) == ("first-form", "second-form")


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_the_forms_carry_their_csrf_token(app, make_staff, make_infusion):
    nurse = make_staff("np")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    client.post(
        "/login", data={"username": nurse.username, "password": PASSWORD, "csrf_token": token}
    )
    now = utcnow()
    infusion = make_infusion(
        status="infusing",
        clinician=nurse,
        checked_in_at=now - timedelta(minutes=30),
        started_at=now - timedelta(minutes=5),
    )
    html = client.get(f"/infusions/{infusion.id}").get_data(as_text=True)
    token = re.search(r'name="reading-csrf_token"[^>]*value="([^"]+)"', html).group(1)
    data = reading_data(heart_rate=70)
    assert client.post(f"/infusions/{infusion.id}/readings", data=data).status_code == 400
    data["reading-csrf_token"] = token
    assert client.post(f"/infusions/{infusion.id}/readings", data=data).status_code == 302
    assert len(readings_of(infusion)) == 1

    # The Void box of each row is plain HTML (one token for the page): it must still post what
    # ReasonForm(prefix="void-reading-<id>") validates, CSRF included.
    (reading,) = readings_of(infusion)
    prefix = f"void-reading-{reading.id}"
    html = client.get(f"/infusions/{infusion.id}").get_data(as_text=True)
    token = re.search(rf'name="{prefix}-csrf_token"[^>]*value="([^"]+)"', html).group(1)
    assert re.search(rf'<label[^>]*for="{prefix}-reason"', html)
    assert re.search(rf'id="{prefix}-reason" maxlength="500" name="{prefix}-reason" required', html)
    data = {f"{prefix}-reason": "wrong patient"}
    assert client.post(f"/readings/{reading.id}/void", data=data).status_code == 400
    data[f"{prefix}-csrf_token"] = token
    assert client.post(f"/readings/{reading.id}/void", data=data).status_code == 302
    db.session.refresh(reading)
    assert reading.void_reason == "wrong patient"
