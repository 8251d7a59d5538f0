"""A signature covers exactly what the physician saw (issue 7): a reading voided or an adverse
event added after the sign form was opened makes the signature stale (409, with what changed),
through the real routes, as two people at two browsers."""

import re

from infusion_tracker.extensions import db
from infusion_tracker.ledger import services as ledger
from infusion_tracker.timeutil import to_clinic, utcnow
from tests.conftest import PASSWORD, login, run_session


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', html
    )
    assert match, f"no hidden {name} in the page"
    return match.group(1)


def test_a_reading_voided_and_an_adverse_event_added_after_the_sign_form_opened_refuse_it(
    app, make_staff, make_infusion
):
    np_ = make_staff("np", full_name="Nell Nurse")
    doctor = make_staff("physician", full_name="Ada Doctor")
    infusion = make_infusion(clinician=np_, physician=doctor)
    run_session(infusion, "discharged", started_minutes_ago=180)
    (reading,) = infusion.readings  # its baseline
    # The pump ran without a ledger draw: the physician records why, so only staleness is tested.
    ledger.explain_session(infusion, doctor, "Test session without a drawn vial.")
    db.session.commit()

    physician_browser, nurse_browser = app.test_client(), app.test_client()
    assert login(physician_browser, doctor.username, PASSWORD).status_code == 302
    assert login(nurse_browser, np_.username, PASSWORD).status_code == 302

    page = physician_browser.get(f"/infusions/{infusion.id}").get_data(as_text=True)
    form = page[page.index(f'action="/infusions/{infusion.id}/sign"') :]
    version, opened_at = hidden(form, "version"), hidden(form, "opened_at")
    assert int(version) == infusion.version

    voided = nurse_browser.post(
        f"/readings/{reading.id}/void",
        data={f"void-reading-{reading.id}-reason": "Cuff slipped"},
    )
    assert voided.status_code == 302
    serious = nurse_browser.post(
        f"/infusions/{infusion.id}/adverse-events",
        data={
            "ae-onset_at": to_clinic(infusion.ended_at).strftime("%Y-%m-%dT%H:%M"),
            "ae-event_type": "hypertension",
            "ae-severity": "severe",
            "ae-infusion_action": "none",
            "ae-intervention": "Labetalol 10 mg IV",
        },
    )
    assert serious.status_code == 302, serious.get_data(as_text=True)

    response = physician_browser.post(
        f"/infusions/{infusion.id}/sign",
        data={
            "attestation": "I have reviewed this record.",
            "version": version,
            "opened_at": opened_at,
            "password": PASSWORD,
        },
    )
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    changes = html[html.index('class="changes-since"') :]
    changes = changes[: changes.index("</ul>")]
    assert f"reading voided by {np_.username}" in changes
    assert f"adverse event recorded by {np_.username}" in changes
    assert "explain" not in changes  # drawn before the form was opened: not a change since
    db.session.refresh(infusion)
    assert infusion.signed_at is None and infusion.signed_by_id is None
    # Drawn afresh, the form signs.
    page = physician_browser.get(f"/infusions/{infusion.id}").get_data(as_text=True)
    form = page[page.index(f'action="/infusions/{infusion.id}/sign"') :]
    again = physician_browser.post(
        f"/infusions/{infusion.id}/sign",
        data={
            "attestation": "I have reviewed this record.",
            "version": hidden(form, "version"),
            "opened_at": hidden(form, "opened_at"),
            "password": PASSWORD,
        },
    )
    assert again.status_code == 302
    db.session.refresh(infusion)
    assert infusion.signed_by_id == doctor.id and infusion.signed_at <= utcnow()
