"""Second factor (issue 9): TOTP enrolment with a QR drawn by the app, the code step at
sign-in, one use per code, hashed single-use recovery codes, the admin's reset, and the
roles that must enrol."""

import re
import time
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa

from infusion_tracker.auth.two_factor import secret_of
from infusion_tracker.extensions import db
from infusion_tracker.sealing import seal
from infusion_tracker.timeutil import utcnow
from tests.conftest import PASSWORD, audit_rows, login


def code_for(staff, when=None, step_offset=0) -> str:
    totp = pyotp.TOTP(secret_of(staff))
    return totp.generate_otp(totp.timecode(when or utcnow()) + step_offset)


def enrol(client, staff) -> list[str]:
    """Enrol through the pages; returns the recovery codes shown."""
    page = client.post("/account/two-factor", data={"action": "start"})
    assert page.status_code == 302
    db.session.refresh(staff)
    response = client.post(
        "/account/two-factor", data={"action": "confirm", "code": code_for(staff)}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return re.findall(r"<li><code>([a-z0-9-]+)</code></li>", response.get_data(as_text=True))


def test_enrolment_shows_a_qr_made_here_and_the_key_then_needs_a_code(client, login_as):
    staff = login_as("np")
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert "Set up two-factor sign-in" in page
    client.post("/account/two-factor", data={"action": "start"})
    db.session.refresh(staff)
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page  # drawn by segno, no outside service
    key = re.search(r'class="totp-key">([A-Z2-7 ]+)<', page).group(1)
    assert key.replace(" ", "") == secret_of(staff)
    wrong = client.post("/account/two-factor", data={"action": "confirm", "code": "000000"})
    assert wrong.status_code == 422 and "That code is not right" in wrong.get_data(as_text=True)
    db.session.refresh(staff)
    assert not staff.has_two_factor
    codes = client.post(
        "/account/two-factor", data={"action": "confirm", "code": code_for(staff)}
    )
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", codes.get_data(as_text=True))
    db.session.refresh(staff)
    assert staff.has_two_factor and len(codes) == 10
    # Stored hashed, never in clear.
    assert all(code not in str(staff.recovery_codes) for code in codes)
    assert len(staff.recovery_codes) == 10
    assert audit_rows("auth.two_factor_enrolled")[-1].actor_id == staff.id


def test_sign_in_asks_for_the_code_after_the_password(app, client, login_as):
    staff = login_as("np")
    enrol(client, staff)
    client.post("/logout")
    response = login(client, staff.username)
    assert response.headers["Location"] == "/login/two-factor"
    # Not signed in yet: the board sends back to the sign-in page.
    assert client.get("/").headers["Location"].startswith("/login")
    assert audit_rows("auth.password_accepted")
    wrong = client.post("/login/two-factor", data={"code": "123456"})
    assert wrong.status_code == 422
    assert audit_rows("auth.login_failed")[-1].details["reason"] == "wrong second-factor code"
    # The code of the step after the enrolment one (one step of drift is allowed).
    right = client.post("/login/two-factor", data={"code": code_for(staff, step_offset=1)})
    assert right.status_code == 302 and right.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    assert audit_rows("auth.login")[-1].details == {"second_factor": "totp"}


def test_a_code_is_accepted_once_only(client, login_as):
    staff = login_as("np")
    enrol(client, staff)
    client.post("/logout")
    login(client, staff.username)
    code = code_for(staff, step_offset=1)
    assert client.post("/login/two-factor", data={"code": code}).status_code == 302
    client.post("/logout")
    login(client, staff.username)
    replay = client.post("/login/two-factor", data={"code": code})
    assert replay.status_code == 422
    assert "already used" in replay.get_data(as_text=True)
    # The enrolment code itself was used too.
    db.session.refresh(staff)
    assert staff.totp_last_step == pyotp.TOTP(secret_of(staff)).timecode(utcnow()) + 1


def test_recovery_codes_work_once(client, login_as):
    staff = login_as("np")
    codes = enrol(client, staff)
    client.post("/logout")
    login(client, staff.username)
    assert client.post("/login/two-factor", data={"code": codes[0].upper()}).status_code == 302
    assert audit_rows("auth.login")[-1].details == {"second_factor": "recovery"}
    db.session.refresh(staff)
    assert len(staff.recovery_codes) == 9
    client.post("/logout")
    login(client, staff.username)
    assert client.post("/login/two-factor", data={"code": codes[0]}).status_code == 422


def test_the_code_step_expires(client, login_as, monkeypatch):
    staff = login_as("np")
    enrol(client, staff)
    client.post("/logout")
    login(client, staff.username)
    later = time.time() + 301
    monkeypatch.setattr(time, "time", lambda: later)
    response = client.post("/login/two-factor", data={"code": code_for(staff, step_offset=1)})
    assert response.headers["Location"] == "/login"


def test_wrong_codes_lock_the_account_like_wrong_passwords(client, login_as):
    staff = login_as("np")
    enrol(client, staff)
    client.post("/logout")
    login(client, staff.username)
    for _ in range(5):
        client.post("/login/two-factor", data={"code": "000000"})
    db.session.refresh(staff)
    assert staff.is_locked()


@pytest.mark.parametrize("app_config", [{"REQUIRE_TWO_FACTOR_ROLES": ["admin", "physician"]}])
def test_required_roles_enrol_before_anything_else(client, login_as, make_staff):
    physician = login_as("physician")
    response = client.get("/")
    assert response.headers["Location"] == "/account/two-factor"
    assert client.get("/patients/").headers["Location"] == "/account/two-factor"
    enrol(client, physician)
    assert client.get("/").status_code == 200
    # It cannot be turned off, and others may do without.
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert "Turn two-factor sign-in off" not in page
    nurse = make_staff("np")
    client.post("/logout")
    assert login(client, nurse.username).headers["Location"] == "/"
    assert client.get("/").status_code == 200


def test_optional_two_factor_can_be_turned_off_with_the_password(client, login_as):
    staff = login_as("np")
    enrol(client, staff)
    wrong = client.post("/account/two-factor", data={"action": "off", "password": "nope nope 1"})
    assert wrong.status_code == 422
    client.post("/account/two-factor", data={"action": "off", "password": PASSWORD})
    db.session.refresh(staff)
    assert not staff.has_two_factor and staff.totp_sealed is None
    assert audit_rows("auth.two_factor_disabled")


def test_the_admin_resets_a_lost_second_factor_audited(app, client, login_as, make_staff):
    nurse = make_staff("np")
    nurse.totp_sealed = seal(pyotp.random_base32(), app.config["TOTP_KEY"])
    nurse.totp_confirmed_at = utcnow() - timedelta(days=3)
    nurse.recovery_codes = ["x"]
    db.session.commit()
    admin = login_as("admin")
    page = client.get(f"/admin/staff/{nurse.id}").get_data(as_text=True)
    assert "Reset two-factor sign-in" in page
    response = client.post(f"/admin/staff/{nurse.id}/reset-two-factor")
    assert response.status_code == 302
    db.session.refresh(nurse)
    assert not nurse.has_two_factor and nurse.recovery_codes is None
    [row] = audit_rows("staff.two_factor_reset")
    assert (row.actor_id, row.entity_id) == (admin.id, nurse.id)
    client.post("/logout")
    assert login(client, nurse.username).headers["Location"] == "/"


# --- the key sealed at rest (TOTP_KEY) ---------------------------------------------------------


def test_the_database_never_holds_the_key_in_clear(app, client, login_as):
    staff = login_as("np")
    enrol(client, staff)
    secret = secret_of(staff)
    row = db.session.execute(sa.text("SELECT * FROM staff WHERE id = :id"), {"id": staff.id}).one()
    assert not any(secret in str(value) for value in row)
    assert staff.totp_sealed.startswith("gAAAAA")  # a Fernet token
    # Sealed with TOTP_KEY: another key does not open it.
    app.config["TOTP_KEY"] = "another key"
    with pytest.raises(Exception, match="cannot be opened"):
        secret_of(staff)


def test_a_wrong_totp_key_is_a_clear_error_not_a_500(app, client, login_as):
    staff = login_as("np")
    enrol(client, staff)
    client.post("/logout")
    app.config["TOTP_KEY"] = "not the key it was sealed with"
    login(client, staff.username)
    response = client.post("/login/two-factor", data={"code": "123456"})
    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "Two-factor sign-in unavailable" in page and "TOTP_KEY" in page
    db.session.refresh(staff)
    assert staff.failed_logins == 0  # a server fault is not the user's wrong code
