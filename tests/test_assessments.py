"""Outcome scores: item-by-item PHQ-9 with the total computed, total-only entry, ranges
named per instrument, the item-9 physician flag, links to sessions, void and correction."""

import html
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker.extensions import db
from infusion_tracker.models import Assessment, AuditEvent
from infusion_tracker.patients import assessments
from infusion_tracker.timeutil import utcnow


def scores():
    return db.session.scalars(sa.select(Assessment).order_by(Assessment.id)).all()


def audit_actions():
    return [row.action for row in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))]


def phq9_items(*answers):
    return {f"item_{n}": str(a) for n, a in enumerate(answers, start=1)}


def page_text(response):
    return html.unescape(response.get_data(as_text=True))


def test_form_offers_the_nine_phq9_items_with_their_wording(client, login_as, make_patient):
    login_as("np")
    patient = make_patient()
    page = page_text(client.get(f"/patients/{patient.id}/assessments/new"))
    assert assessments.PHQ9_STEM in page
    for number, wording in enumerate(assessments.PHQ9_ITEMS, start=1):
        assert f"{number}. {wording}" in page
        for value, label in assessments.PHQ9_ANSWERS.items():
            assert f'name="item_{number}" type="radio" value="{value}"' in page
            assert f"{value} — {label}" in page
    # Taken at defaults to now, in clinic time, to the minute.
    assert 'name="taken_at" type="datetime-local" value="' in page


def test_phq9_item_entry_computes_the_total(client, login_as, make_patient):
    nurse = login_as("np")
    patient = make_patient()
    response = client.post(
        f"/patients/{patient.id}/assessments/new",
        data={"instrument": "phq9", **phq9_items(2, 3, 1, 2, 1, 2, 1, 0, 0)},
    )
    assert response.status_code == 302
    [score] = scores()
    assert (score.score, score.items, score.flag_physician) == (
        12,
        [2, 3, 1, 2, 1, 2, 1, 0, 0],
        False,
    )
    assert score.recorded_by_id == nurse.id
    assert abs(score.taken_at - utcnow()) < timedelta(minutes=1)  # blank time means now
    assert "assessment.recorded" in audit_actions()


def test_item_nine_flags_the_physician_loudly(client, login_as, make_patient):
    login_as("pa")
    patient = make_patient()
    response = client.post(
        f"/patients/{patient.id}/assessments/new",
        data={"instrument": "phq9", **phq9_items(1, 1, 1, 1, 1, 1, 1, 1, 2)},
        follow_redirects=True,
    )
    page = page_text(response)
    assert (
        "PHQ-9 item 9 (thoughts of death or self-harm) answered 2: the physician is flagged" in page
    )
    assert "Physician flag:" in page and "Item 9 positive" in page
    [score] = scores()
    assert score.flag_physician is True and score.score == 10
    [row] = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "assessment.recorded")
    )
    assert row.details["after"]["flag_physician"] is True
    assert row.patient_id == patient.id


def test_a_later_phq9_without_item_nine_clears_the_banner(client, login_as, make_patient):
    nurse = login_as("np")
    patient = make_patient()
    assessments.record_assessment(
        patient,
        instrument="phq9",
        score=None,
        items=[1] * 8 + [1],
        actor=nurse,
        taken_at=utcnow() - timedelta(days=7),
    )
    assessments.record_assessment(
        patient, instrument="phq9", score=None, items=[0] * 9, actor=nurse
    )
    page = page_text(client.get(f"/patients/{patient.id}"))
    assert "Physician flag:" not in page
    assert "Item 9 positive" in page  # the older entry still carries its tag


@pytest.mark.parametrize(
    "data, message",
    [
        ({"instrument": "phq9", "score": "28"}, "PHQ-9 score must be between 0 and 27."),
        ({"instrument": "gad7", "score": "22"}, "GAD-7 score must be between 0 and 21."),
        ({"instrument": "madrs", "score": "-1"}, "MADRS score must be between 0 and 60."),
        ({"instrument": "pain_nrs", "score": "11"}, "Pain NRS score must be between 0 and 10."),
        ({"instrument": "cssrs", "score": "4"}, "C-SSRS screen score must be between 0 and 3."),
        ({"instrument": "gad7", "score": "seven"}, "Not a valid integer value."),
        ({"instrument": "gad7"}, "Enter the GAD-7 score."),
        ({"instrument": "phq9"}, "Enter the PHQ-9 score or answer the nine items."),
        ({"score": "5"}, "Choose the instrument."),
        (
            {"instrument": "phq9", **phq9_items(1, 1, 1)},
            "Answer all nine PHQ-9 items (3 answered), or none and enter the total score.",
        ),
        (
            {"instrument": "gad7", "score": "5", **phq9_items(1, 1, 1, 1, 1, 1, 1, 1, 1)},
            "The nine item answers are for PHQ-9 only, not GAD-7.",
        ),
        (
            {"instrument": "phq9", "score": "20", **phq9_items(1, 1, 1, 1, 1, 1, 1, 1, 1)},
            "The nine items add up to 9, not 20.",
        ),
        (
            {"instrument": "phq9", **phq9_items(1, 1, 1, 1, 1, 1, 1, 1, 7)},
            "PHQ-9 needs nine answers, each 0 to 3.",
        ),
        (
            {"instrument": "phq9", "score": "5", "taken_at": "2999-01-01T10:00"},
            "The time taken cannot be in the future.",
        ),
        (
            {"instrument": "phq9", "score": "5", "taken_at": "yesterday"},
            "Enter the time taken as a date and time, e.g. 2025-03-01 14:05.",
        ),
    ],
)
def test_bad_scores_are_refused_with_a_message_and_the_input_kept(
    client, login_as, make_patient, data, message
):
    login_as("np")
    patient = make_patient()
    response = client.post(f"/patients/{patient.id}/assessments/new", data=data)
    assert response.status_code == 422
    page = page_text(response)
    assert message in page
    if "score" in data:
        assert f'value="{data["score"]}"' in page
    assert scores() == []


def test_total_only_scores_and_cssrs_words(client, login_as, make_patient):
    login_as("np")
    patient = make_patient()
    for instrument, score in (
        ("gad7", 11),
        ("madrs", 30),
        ("pain_nrs", 6),
        ("cadss", 12),
        ("cssrs", 2),
    ):
        response = client.post(
            f"/patients/{patient.id}/assessments/new",
            data={"instrument": instrument, "score": str(score)},
        )
        assert response.status_code == 302
    assert [(s.instrument, s.score, s.items) for s in scores()] == [
        ("gad7", 11, None),
        ("madrs", 30, None),
        ("pain_nrs", 6, None),
        ("cadss", 12, None),
        ("cssrs", 2, None),
    ]
    page = page_text(client.get(f"/patients/{patient.id}"))
    assert "2 — Moderate risk" in page


def test_taken_at_is_clinic_time(client, login_as, make_patient):
    login_as("np")
    patient = make_patient()
    client.post(
        f"/patients/{patient.id}/assessments/new",
        data={"instrument": "gad7", "score": "4", "taken_at": "2024-01-15T09:30"},
    )
    # America/New_York in January is UTC-5.
    assert scores()[0].taken_at == datetime(2024, 1, 15, 14, 30, tzinfo=UTC)


def test_linked_to_a_session_and_back_to_the_session_page(
    client, login_as, make_patient, make_infusion
):
    login_as("np")
    patient = make_patient()
    infusion = make_infusion(patient=patient, status="checked_in", checked_in_at=utcnow())
    page = page_text(
        client.get(
            f"/patients/{patient.id}/assessments/new?infusion_id={infusion.id}"
            f"&next=/infusions/{infusion.id}"
        )
    )
    assert f'<option selected value="{infusion.id}">Infusion 1' in page
    assert f'name="next" type="hidden" value="/infusions/{infusion.id}"' in page
    response = client.post(
        f"/patients/{patient.id}/assessments/new",
        data={
            "instrument": "phq9",
            "score": "17",
            "infusion_id": str(infusion.id),
            "next": f"/infusions/{infusion.id}",
        },
    )
    assert response.headers["Location"] == f"/infusions/{infusion.id}"
    assert scores()[0].infusion_id == infusion.id


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "\\\\evil"])
def test_next_only_returns_within_the_site(client, login_as, make_patient, target):
    login_as("np")
    patient = make_patient()
    response = client.post(
        f"/patients/{patient.id}/assessments/new",
        data={"instrument": "gad7", "score": "3", "next": target},
    )
    assert response.headers["Location"] == f"/patients/{patient.id}"


def test_another_patients_session_cannot_be_linked(client, login_as, make_patient, make_infusion):
    login_as("np")
    patient = make_patient()
    someone_else = make_infusion()
    response = client.post(
        f"/patients/{patient.id}/assessments/new",
        data={"instrument": "gad7", "score": "3", "infusion_id": str(someone_else.id)},
    )
    assert response.status_code == 422
    assert "Not a valid choice." in page_text(response)
    assert scores() == []


@pytest.fixture
def signed_infusion(make_infusion, make_patient, make_staff):
    physician = make_staff("physician")
    return make_infusion(
        patient=make_patient(),
        physician=physician,
        status="discharged",
        started_at=utcnow() - timedelta(hours=3),
        signed_at=utcnow(),
        signed_by=physician,
    )


def test_a_signed_session_takes_no_new_scores(client, login_as, signed_infusion):
    login_as("np")
    response = client.post(
        f"/patients/{signed_infusion.patient_id}/assessments/new",
        data={"instrument": "phq9", "score": "9", "infusion_id": str(signed_infusion.id)},
    )
    assert response.status_code == 422
    assert "This session was signed and is locked." in page_text(response)
    assert scores() == []


def test_void_keeps_the_score_visible_struck_through(client, login_as, make_patient):
    nurse = login_as("np")
    patient = make_patient()
    score = assessments.record_assessment(patient, instrument="gad7", score=15, actor=nurse)
    db.session.commit()
    form = page_text(client.get(f"/patients/assessments/{score.id}/void"))
    assert "Reason for voiding" in form

    refused = client.post(f"/patients/assessments/{score.id}/void", data={"reason": " "})
    assert "Give the reason for voiding this score." in page_text(refused)
    assert score.voided_at is None

    response = client.post(
        f"/patients/assessments/{score.id}/void", data={"reason": "Wrong patient's form"}
    )
    assert response.headers["Location"] == f"/patients/{patient.id}"
    assert score.voided_by_id == nurse.id and score.void_reason == "Wrong patient's form"
    page = page_text(client.get(f"/patients/{patient.id}"))
    assert f'<tr id="assessment-{score.id}" class="voided">' in page
    assert f"by {nurse.display_name}: Wrong patient's form" in page
    [row] = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "assessment.voided")
    )
    assert row.details["reason"] == "Wrong patient's form" and row.patient_id == patient.id

    again = client.post(f"/patients/assessments/{score.id}/void", data={"reason": "twice"})
    assert "already voided" in page_text(again)


def test_only_the_recorder_or_a_physician_voids(client, login_as, make_staff, make_patient):
    patient = make_patient()
    recorder = make_staff("np")
    score = assessments.record_assessment(patient, instrument="gad7", score=15, actor=recorder)
    db.session.commit()
    login_as("pa")
    page = page_text(client.get(f"/patients/assessments/{score.id}/void"))
    assert "Only the person who recorded this score, or a physician, may void it." in page
    response = client.post(f"/patients/assessments/{score.id}/void", data={"reason": "mine now"})
    assert response.status_code == 422
    assert score.voided_at is None

    client.post("/logout")
    login_as("physician")
    client.post(f"/patients/assessments/{score.id}/void", data={"reason": "Duplicate entry"})
    assert score.voided_at is not None


def test_scores_of_a_signed_session_cannot_be_voided(client, login_as, make_staff, signed_infusion):
    physician = login_as("physician")
    score = Assessment(
        patient_id=signed_infusion.patient_id,
        infusion_id=signed_infusion.id,
        instrument="phq9",
        score=8,
        taken_at=utcnow() - timedelta(hours=4),
        recorded_by_id=physician.id,
    )
    db.session.add(score)
    db.session.commit()
    assert client.get(f"/patients/assessments/{score.id}/void").status_code == 409
    response = client.post(f"/patients/assessments/{score.id}/void", data={"reason": "typo"})
    assert response.status_code == 409
    assert "This session was signed and is locked." in page_text(response)
    assert score.voided_at is None


def test_a_correction_is_a_new_row_pointing_at_the_voided_one(client, login_as, make_patient):
    nurse = login_as("np")
    patient = make_patient()
    wrong = assessments.record_assessment(
        patient, instrument="phq9", score=None, items=[1] * 9, actor=nurse
    )
    db.session.commit()
    page = page_text(client.get(f"/patients/{patient.id}/assessments/new?corrects={wrong.id}"))
    assert "Correcting PHQ-9 9" in page
    for number in range(1, 10):
        assert f'<input checked id="item_{number}-1" name="item_{number}"' in page

    missing_reason = client.post(
        f"/patients/{patient.id}/assessments/new",
        data={
            "instrument": "phq9",
            "corrects_id": str(wrong.id),
            **phq9_items(1, 1, 1, 1, 1, 1, 1, 1, 0),
        },
    )
    assert "Give the reason for the correction." in page_text(missing_reason)

    client.post(
        f"/patients/{patient.id}/assessments/new",
        data={
            "instrument": "phq9",
            "corrects_id": str(wrong.id),
            "correction_reason": "Item 9 was ticked by mistake",
            **phq9_items(1, 1, 1, 1, 1, 1, 1, 1, 0),
        },
    )
    old, new = scores()
    assert (new.score, new.corrects_id, new.flag_physician) == (8, old.id, False)
    assert old.is_voided
    assert old.void_reason == f"Corrected by entry #{new.id}: Item 9 was ticked by mistake"
    assert audit_actions()[-2:] == ["assessment.recorded", "assessment.voided"]


def test_the_patient_page_offers_no_void_for_a_signed_sessions_score(
    client, login_as, signed_infusion
):
    physician = login_as("physician")
    score = Assessment(
        patient_id=signed_infusion.patient_id,
        infusion_id=signed_infusion.id,
        instrument="gad7",
        score=8,
        taken_at=utcnow() - timedelta(hours=4),
        recorded_by_id=physician.id,
    )
    db.session.add(score)
    db.session.commit()
    page = page_text(client.get(f"/patients/{signed_infusion.patient_id}"))
    row = page.split(f'<tr id="assessment-{score.id}"')[1].split("</tr>")[0]
    assert "Locked: session signed" in row and "/void" not in row
