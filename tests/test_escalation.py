"""Role escalation by posted fields (issue 9, the suite, item 6): fields a form does not
draw are ignored, whoever posts them. Each form is posted as drawn (read from the page, like
a browser), plus the columns an attacker would aim at."""

from infusion_tracker.extensions import db
from tests.conftest import login
from tests.suite.test_fuzz import forms_on


def drawn_form(client, page: str, action: str) -> dict[str, str]:
    [fields] = [f for a, f in forms_on(client.get(page).get_data(as_text=True), page)
                if a == action]
    return fields


def test_a_nurse_cannot_sign_reassign_or_discharge_through_the_details_form(
    client, infusing, make_staff
):
    doctor = infusing.physician
    page = f"/infusions/{infusing.id}"
    fields = drawn_form(client, page, f"/infusions/{infusing.id}/edit")
    nurse_id = infusing.clinician_id
    escort = next(name for name in fields if name.endswith("escort_name"))
    prefix = escort[: -len("escort_name")]
    extra = {f"{prefix}{name}": value for name, value in {
        "status": "discharged", "physician_id": str(nurse_id), "signed_by_id": str(nurse_id),
        "signed_at": "2026-01-01T00:00", "total_mg": "9999", "version": "1"}.items()
        if f"{prefix}{name}" not in fields}
    extra |= {"status": "discharged", "signed_by_id": str(nurse_id), "role": "admin"}
    answer = client.post(f"/infusions/{infusing.id}/edit",
                         data={**fields, escort: "Sam Escort", **extra})
    assert answer.status_code == 302
    db.session.refresh(infusing)
    assert infusing.status == "infusing" and infusing.physician_id == doctor.id
    assert infusing.signed_by_id is None and infusing.signed_at is None
    assert infusing.clinician.role == "np"


def test_an_admin_cannot_set_hidden_columns_of_an_account(client, login_as, make_staff):
    login_as("admin")
    nurse = make_staff("np", username="nia")
    token, sealed = nurse.session_token, nurse.totp_sealed
    page = f"/admin/staff/{nurse.id}"
    fields = drawn_form(client, page, page)
    answer = client.post(page, data={
        **fields, "full_name": "Nia Changed", "password_hash": "x", "session_token": "mine",
        "totp_sealed": "gAAAAA", "failed_logins": "0", "locked_until": "", "active": "y",
        "must_change_password": "", "recovery_codes": "[]"})
    assert answer.status_code == 302
    db.session.refresh(nurse)
    assert nurse.full_name == "Nia Changed"  # the drawn field is saved...
    assert (nurse.session_token, nurse.totp_sealed) == (token, sealed)  # ...nothing else
    assert nurse.password_hash != "x"


def test_a_nurse_posting_a_role_to_their_own_account_pages_stays_a_nurse(
    client, make_staff
):
    nurse = make_staff("np", username="nia")
    login(client, "nia")
    for page in ("/account/two-factor", "/account/password"):
        client.post(page, data={"role": "admin", "action": "start"})
    db.session.refresh(nurse)
    assert nurse.role == "np"
    assert client.get("/admin/staff/").status_code == 403
