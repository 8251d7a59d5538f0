"""The bedside page (issue 10) without a browser: "unchanged since the last reading" (what it
carries, and only when confirmed for the reading shown), the saved row marked after a save,
the planned-minutes prompt and the run-on reason (an infusion event: appended, audited, never
overwritten), and an overdue reading in the status strip."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker.errors import RuleError
from infusion_tracker.extensions import db
from infusion_tracker.infusions import lifecycle, queries
from infusion_tracker.infusions import readings as reading_services
from infusion_tracker.models import InfusionEvent, Reading
from infusion_tracker.timeutil import format_time, utcnow
from tests.conftest import PASSWORD, add_reading, audit_rows, run_session, section

OBSERVED = {"rhythm": "af", "avpu": "V", "o2_flow_lpm": 2.0, "moaas": 4}


def get(client, infusion) -> str:
    response = client.get(f"/infusions/{infusion.id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def newest(infusion) -> Reading:
    return db.session.scalars(
        sa.select(Reading).where(Reading.infusion_id == infusion.id).order_by(Reading.id.desc())
    ).first()


def form_post(client, infusion, html: str, **values):
    """Post the reading form as drawn (its hidden boxes), with `values` typed in."""
    form = section(html, "chart-reading")
    hidden = dict(
        re.findall(r'<input[^>]*name="(reading-[a-z_]+)"[^>]*type="hidden"[^>]*value="([^"]*)"',
                   form)
        + re.findall(r'<input[^>]*type="hidden"[^>]*name="(reading-[a-z_]+)"[^>]*value="([^"]*)"',
                     form)
    )
    default = re.search(r'name="reading-taken_at_default"[^>]*value="([^"]*)"', form).group(1)
    data = {**hidden, "reading-taken_at": default, "reading-phase": "infusion"}
    data.update({f"reading-{name}": str(value) for name, value in values.items()})
    return client.post(f"/infusions/{infusion.id}/readings", data=data)


# --- Unchanged since the last reading ---------------------------------------------------------


def test_the_form_offers_the_last_observations_unticked(client, infusing, nurse):
    last = add_reading(infusing, nurse, minutes_ago=2, **OBSERVED)
    form = section(get(client, infusing), "chart-reading")
    assert "Unchanged since" in form
    for text in ("O2 <strong>2 L/min</strong>", "Rhythm <strong>Atrial fibrillation</strong>",
                 "AVPU <strong>Responds to voice</strong>", "MOAA/S <strong>4</strong>"):
        assert text in form
    assert re.search(rf'name="reading-carry_from"[^>]*value="{last.id}"', form)
    assert not re.search(r'name="reading-same_as_last"[^>]*checked', form)
    # Nothing is put in the boxes by the server: a blank stays blank unless ticked.
    assert not re.search(r'<option selected value="af"', form)
    assert re.search(r'<input[^>]*\bautofocus\b[^>]*id="reading-systolic"', form)


def test_no_offer_without_a_last_observation(client, infusing):
    # The fixture's baseline has numbers only.
    assert "Unchanged since" not in section(get(client, infusing), "chart-reading")


def test_ticked_carries_the_blank_boxes_and_says_so_in_the_audit(client, infusing, nurse):
    last = add_reading(infusing, nurse, minutes_ago=2, **OBSERVED)
    response = form_post(client, infusing, get(client, infusing), systolic=120, diastolic=80,
                         moaas=5, same_as_last="y")
    assert response.status_code == 302
    reading = newest(infusing)
    assert (reading.systolic, reading.rhythm, reading.avpu, reading.o2_flow_lpm) == (
        120, "af", "V", 2.0,
    )
    assert reading.moaas == 5  # typed: the clinician's value, not the last one
    (entry,) = [row for row in audit_rows("reading.recorded") if row.entity_id == reading.id]
    assert entry.details["carried_from"] == {
        "reading": last.id, "fields": ["avpu", "o2_flow_lpm", "rhythm"],
    }


def test_unticked_nothing_is_carried(client, infusing, nurse):
    add_reading(infusing, nurse, minutes_ago=2, **OBSERVED)
    assert form_post(client, infusing, get(client, infusing), systolic=120).status_code == 302
    reading = newest(infusing)
    assert (reading.rhythm, reading.avpu, reading.o2_flow_lpm, reading.moaas) == (
        "", "", None, None,
    )
    assert "carried_from" not in audit_rows("reading.recorded")[-1].details


def test_a_tick_given_for_an_older_reading_is_refused(client, infusing, nurse, make_staff):
    add_reading(infusing, nurse, minutes_ago=4, **OBSERVED)
    html = get(client, infusing)  # the form offers AF, voice, 2 L/min, MOAA/S 4 …
    colleague = make_staff("pa")
    add_reading(infusing, colleague, minutes_ago=1, rhythm="nsr", avpu="A", o2_flow_lpm=0)
    count = len(infusing.readings)
    # … and a colleague charted sinus rhythm, alert, room air since: the tick meant AF.
    response = form_post(client, infusing, html, systolic=120, same_as_last="y")
    assert response.status_code == 422
    form = section(response.get_data(as_text=True), "chart-reading")
    assert "The last reading changed since this form was drawn" in form
    assert 'name="reading-systolic"' in form and re.search(r'value="120"', form)
    # Offered again for the newest reading, unticked, to be confirmed anew.
    assert "Rhythm <strong>Normal sinus rhythm</strong>" in form
    assert not re.search(r'name="reading-same_as_last"[^>]*checked', form)
    db.session.expire_all()
    assert len(newest(infusing).infusion.readings) == count


def test_the_service_carries_only_for_the_latest_reading(infusing, nurse):
    last = add_reading(infusing, nurse, minutes_ago=2, rhythm="other", **{
        k: v for k, v in OBSERVED.items() if k != "rhythm"
    }, rhythm_other="Bigeminy")
    data = {"taken_at": utcnow(), "phase": "infusion", "heart_rate": 70, "rhythm": "",
            "same_as_last": True, "carry_from": last.id}
    reading = reading_services.record_reading(infusing, data, nurse)
    assert (reading.rhythm, reading.rhythm_other) == ("other", "Bigeminy")
    # A chosen rhythm is never given the last reading's words for "other".
    data = {**data, "rhythm": "nsr", "carry_from": reading.id}
    assert reading_services.record_reading(infusing, data, nurse).rhythm_other == ""
    with pytest.raises(reading_services.ReadingRefused):
        reading_services.record_reading(infusing, {**data, "carry_from": last.id}, nurse)


# --- After a save: back to the form, the row marked -------------------------------------------


def test_the_saved_row_is_marked(client, infusing, nurse):
    response = form_post(client, infusing, get(client, infusing), heart_rate=70)
    reading = newest(infusing)
    assert response.headers["Location"] == (
        f"/infusions/{infusing.id}?saved={reading.id}#reading-systolic"
    )
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    row = html[html.index(f'id="reading-{reading.id}"') - 60 :]
    assert 'class="reading reading--saved"' in row[:80]
    assert "Just saved" in row[: row.index("</tbody>")]
    assert "reading--saved" not in get(client, infusing)  # only right after the save


def test_a_critical_save_lands_on_its_banner(client, infusing, nurse):
    response = form_post(client, infusing, get(client, infusing), systolic=190, diastolic=100)
    assert response.headers["Location"].endswith("#critical-actions")


# --- The planned minutes: stop, or why it runs on ---------------------------------------------


def test_no_prompt_before_the_planned_minutes(client, infusing):
    status = section(get(client, infusing), "status")
    assert "planned minutes infused" not in status
    assert 'name="run_on-reason"' not in status


def prompt_session(make_infusion, nurse, minutes=41):
    return run_session(make_infusion(clinician=nurse), "infusing", started_minutes_ago=minutes)


def test_the_prompt_at_the_planned_minutes(client, make_infusion, nurse):
    infusion = prompt_session(make_infusion, nurse)
    status = section(get(client, infusion), "status")
    assert "41 of 40 planned minutes infused." in status
    assert "Stop the infusion now, or record why it runs on." in status
    assert ">Stop infusion</button>" in status
    assert 'name="run_on-reason"' in status and "Record why it runs on" in status


def run_on_post(client, infusion, reason):
    return client.post(
        f"/infusions/{infusion.id}/run-on",
        data={"run_on-version": infusion.version, "run_on-reason": reason},
    )


def test_the_run_on_reason_is_an_event_audited_and_never_overwritten(
    client, make_infusion, nurse, make_staff, login_as
):
    infusion = prompt_session(make_infusion, nurse)
    assert run_on_post(client, infusion, "Physician: finish the bag").status_code == 302
    status = section(get(client, infusion), "status")
    assert "Runs on: Physician: finish the bag" in status
    assert 'name="run_on-reason"' not in status  # answered: the prompt says so, asks no more
    assert ">Stop infusion</button>" not in status and 'href="#controls"' in status
    (row,) = audit_rows("session.run_on")
    assert row.actor_id == nurse.id and row.details["reason"] == "Physician: finish the bag"
    assert row.details["planned_minutes"] == 40 and row.details["minutes_run"] >= 40

    # A second reason (another clinician) is a second event; the first one stays as it was.
    login_as("pa", full_name="Pat Second")
    db.session.refresh(infusion)
    assert run_on_post(client, infusion, "Patient asked to go slower").status_code == 302
    events = db.session.scalars(
        sa.select(InfusionEvent).where(InfusionEvent.kind == "run_on").order_by(InfusionEvent.id)
    ).all()
    assert [e.reason for e in events] == ["Physician: finish the bag", "Patient asked to go slower"]
    assert len(audit_rows("session.run_on")) == 2
    page = get(client, infusion)
    assert "Runs on past the planned time" in section(page, "events")
    # The pump did not change: run-on events are not pump events.
    assert queries.pump_run(infusion, utcnow()).rate_mg_per_h == 52.5


def test_a_run_on_without_a_reason_is_refused_beside_the_box(client, make_infusion, nurse):
    infusion = prompt_session(make_infusion, nurse)
    response = run_on_post(client, infusion, "  ")
    assert response.status_code == 422
    status = section(response.get_data(as_text=True), "status")
    assert "Give the reason the infusion runs on." in status
    assert not audit_rows("session.run_on")


def test_the_service_refuses_a_run_on_before_the_planned_minutes(infusing, nurse):
    with pytest.raises(RuleError, match="12 of its planned 40 minutes"):
        lifecycle.record_run_on(infusing, nurse, "Early")
    lifecycle.stop_infusion(infusing, nurse, "Patient request")
    with pytest.raises(RuleError, match="Only a running infusion"):
        lifecycle.record_run_on(infusing, nurse, "Late")
    db.session.rollback()


def test_a_stale_run_on_is_refused(client, make_infusion, nurse):
    infusion = prompt_session(make_infusion, nurse)
    version = infusion.version
    lifecycle.pause_infusion(infusion, nurse, "Nausea")
    db.session.commit()
    response = client.post(
        f"/infusions/{infusion.id}/run-on",
        data={"run_on-version": version, "run_on-reason": "Finish the bag"},
    )
    assert response.status_code == 409
    assert not audit_rows("session.run_on")


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_the_run_on_form_needs_its_csrf_token(app, make_staff, make_infusion):
    nurse = make_staff("np")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    client.post(
        "/login", data={"username": nurse.username, "password": PASSWORD, "csrf_token": token}
    )
    infusion = prompt_session(make_infusion, nurse)
    data = {"run_on-version": infusion.version, "run_on-reason": "Finish the bag"}
    assert client.post(f"/infusions/{infusion.id}/run-on", data=data).status_code == 400
    html = client.get(f"/infusions/{infusion.id}").get_data(as_text=True)
    data["run_on-csrf_token"] = re.search(
        r'name="run_on-csrf_token"[^>]*value="([^"]+)"', html
    ).group(1)
    # The prompt's own Stop button posts the stop form's names, token included.
    prompt = html[html.index('id="run-on"') :]
    stop = dict(re.findall(r'name="(stop-[a-z_]+)" value="([^"]*)"', prompt[:2000]))
    assert set(stop) == {"stop-csrf_token", "stop-version"}
    assert client.post(f"/infusions/{infusion.id}/run-on", data=data).status_code == 302
    db.session.refresh(infusion)
    stop["stop-version"] = infusion.version  # the run-on made a new version
    assert client.post(f"/infusions/{infusion.id}/stop", data=stop).status_code == 302
    db.session.refresh(infusion)
    assert infusion.status == "recovery"


# --- An overdue reading -----------------------------------------------------------------------


def test_an_overdue_reading_is_marked_in_the_strip(client, infusing, nurse):
    last = add_reading(infusing, nurse, minutes_ago=9)  # every 5 min
    status = section(get(client, infusing), "status")
    strip = status[status.index("session-strip") :]
    assert re.search(r'class="session-strip__overdue"><dt>Next reading</dt><dd>\s*'
                     r'<span class="tag tag--critical">OVERDUE</span>', strip)
    assert f"was due {format_time(last.taken_at + timedelta(minutes=5))}" in strip
