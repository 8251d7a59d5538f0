"""Sign-in, sign-out, first-run setup, one's own password, and the password policy."""

import re

import pytest
import sqlalchemy as sa

from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent, Staff
from infusion_tracker.passwords import common_passwords, problems, temporary_password
from tests.conftest import PASSWORD, login

NEW_PASSWORD = "violet canyon ferry 1987"
LONGEST = (
    "the quick brown fox jumps over the lazy dog while seven wizards quietly judge a boxing "
    "match near the old harbour lighthouse at dusk"
)[:128]


def actions() -> list[str]:
    return list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)))


def error_summary(response) -> str:
    match = re.search(r'<div class="error-summary".*?</div>', response.get_data(as_text=True), re.S)
    assert match, "no error summary"
    return match.group(0)


def setup_data(**overrides):
    data = {
        "username": "Office",
        "full_name": "Olive Manager",
        "credentials": "MBA",
        "new_password": PASSWORD,
        "confirm_password": PASSWORD,
    }
    return {**data, **overrides}


# --- First-run setup --------------------------------------------------------------------


def test_setup_then_login_lands_admin_on_staff_list(client):
    assert client.get("/login").headers["Location"] == "/setup"  # no account yet
    page = client.get("/setup")
    assert b"Create the first administrator" in page.data
    response = client.post("/setup", data=setup_data())
    assert response.status_code == 302
    assert client.get("/setup").status_code == 404
    staff = db.session.scalar(sa.select(Staff))
    assert (staff.username, staff.role, staff.display_name) == (
        "office",
        "admin",
        "Olive Manager, MBA",
    )
    response = client.post("/login", data={"username": "OFFICE", "password": PASSWORD})
    assert response.headers["Location"] == "/admin/staff/"
    page = client.get("/admin/staff/")
    assert b"Olive Manager, MBA" in page.data
    assert actions() == ["staff.created", "auth.login"]


def test_setup_refusal_keeps_what_was_typed(client):
    page = client.post("/setup", data=setup_data(new_password="short", confirm_password="short"))
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert "There is a problem" in html
    assert "Password must be at least 12 characters" in html
    assert 'value="Olive Manager"' in html and 'value="Office"' in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Staff)) == 0


def test_setup_mismatched_and_bad_username(client):
    html = client.post(
        "/setup", data=setup_data(username="bad name!", confirm_password="something else 123")
    ).get_data(as_text=True)
    assert "The two passwords do not match." in html
    html = client.post("/setup", data=setup_data(username="bad name!")).get_data(as_text=True)
    assert "Usernames are 2–64 characters" in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Staff)) == 0


def test_setup_is_gone_once_any_account_exists(client, make_staff):
    make_staff("np")
    assert client.get("/setup").status_code == 404
    assert client.post("/setup", data=setup_data()).status_code == 404
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Staff)) == 1


# --- Sign in and out ----------------------------------------------------------------------


def test_login_is_case_insensitive_and_recorded(client, make_staff):
    staff = make_staff("np", username="jroe")
    response = login(client, "JRoe")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert staff.last_login_at is not None
    event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "auth.login")).one()
    assert event.actor_id == staff.id


def test_wrong_password_and_unknown_user_get_the_same_answer(client, make_staff):
    make_staff("np", username="jroe")
    wrong = client.post("/login", data={"username": "jroe", "password": "not the password"})
    unknown = client.post("/login", data={"username": "nobody", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 422
    message = "Username or password is not correct, or the account is locked or inactive."
    assert message in wrong.get_data(as_text=True)
    assert error_summary(wrong) == error_summary(unknown)
    rows = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "auth.login_failed")
    ).all()
    assert [row.actor_name for row in rows] == ["anonymous (jroe)", "anonymous (nobody)"]
    assert rows[0].entity_type == "staff" and rows[1].entity_id is None


def test_login_keeps_the_username_but_never_the_password(client, make_staff):
    make_staff("np", username="jroe")
    html = client.post(
        "/login", data={"username": "jroe", "password": "secret typed 12345"}
    ).get_data(as_text=True)
    assert 'value="jroe"' in html
    assert "secret typed 12345" not in html


def test_empty_login_form_explains(client, make_staff):
    make_staff("np")
    html = client.post("/login", data={}).get_data(as_text=True)
    assert "Enter your username." in html and "Enter your password." in html


def test_deactivated_account_cannot_sign_in(client, make_staff):
    make_staff("np", username="gone", active=False)
    response = login(client, "gone")
    assert response.status_code == 422
    assert "not correct, or the account is locked or inactive" in response.get_data(as_text=True)


def test_signed_in_user_visiting_login_goes_home(client, login_as):
    login_as("admin")
    assert client.get("/login").headers["Location"] == "/admin/staff/"


def test_next_goes_to_a_page_on_this_site(client, make_staff):
    make_staff("np", username="jroe")
    response = client.post(
        "/login?next=/account/password", data={"username": "jroe", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/account/password"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "evil.example",
    ],
)
def test_next_never_leaves_the_site(client, make_staff, target):
    make_staff("np", username="jroe")
    response = client.post(
        "/login", query_string={"next": target}, data={"username": "jroe", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_anonymous_is_sent_to_login_with_next(client, make_staff):
    make_staff("np")
    response = client.get("/account/password")
    assert response.headers["Location"] == "/login?next=/account/password"


def test_logout_is_post_only_and_audited(client, login_as):
    staff = login_as("np")
    assert client.get("/logout").status_code == 405
    assert client.get("/account/password").status_code == 200  # the GET changed nothing
    response = client.post("/logout")
    assert response.headers["Location"] == "/login"
    assert client.get("/account/password").headers["Location"].startswith("/login")
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "auth.logout")
    ).one()
    assert event.actor_id == staff.id


# --- One's own password ---------------------------------------------------------------------


def change(client, current=PASSWORD, new=NEW_PASSWORD, confirm=None):
    return client.post(
        "/account/password",
        data={
            "current_password": current,
            "new_password": new,
            "confirm_password": new if confirm is None else confirm,
        },
    )


def test_change_password(client, login_as):
    staff = login_as("physician")
    old_hash = staff.password_hash
    response = change(client)
    assert response.status_code == 302
    assert staff.password_hash != old_hash and staff.password_hash.startswith("scrypt:")
    assert staff.password_changed_at is not None
    assert client.get("/account/password").status_code == 200  # this session continues
    assert "auth.password_changed" in actions()
    client.post("/logout")
    assert login(client, staff.username).status_code == 422  # old password refused
    assert login(client, staff.username, NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("wrong password 123", NEW_PASSWORD, None, "The current password is not correct."),
        (PASSWORD, "short", None, "Password must be at least 12 characters"),
        (PASSWORD, "password1234", None, "too common"),
        (PASSWORD, NEW_PASSWORD, "violet canyon ferry 1988", "The two passwords do not match."),
        (PASSWORD, PASSWORD, None, "must differ from the current one"),
        ("", "", "", "Enter your current password."),
    ],
)
def test_change_password_refusals(client, login_as, current, new, confirm, message):
    staff = login_as("np")
    old_hash = staff.password_hash
    response = change(client, current, new, confirm)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "There is a problem" in html and message in html
    assert staff.password_hash == old_hash


def test_wrong_current_password_counts_toward_lockout(client, login_as, app):
    staff = login_as("np")
    for _ in range(app.config["LOCKOUT_THRESHOLD"] - 1):
        assert change(client, current="wrong password 123").status_code == 422
    assert staff.failed_logins == app.config["LOCKOUT_THRESHOLD"] - 1
    response = change(client, current="wrong password 123")
    assert response.headers["Location"] == "/login"
    assert staff.is_locked()
    assert client.get("/account/password").headers["Location"].startswith("/login")
    assert "auth.locked_out" in actions()


def test_reset_password_forces_a_change_before_anything_else(client, make_staff):
    staff = make_staff("np", username="fresh", must_change_password=True)
    response = login(client, "fresh")
    assert response.headers["Location"] == "/account/password"
    assert client.get("/").headers["Location"] == "/account/password"
    assert b"Your password was reset" in client.get("/account/password").data
    assert change(client).status_code == 302
    assert staff.must_change_password is False
    assert client.get("/").status_code == 200


# --- The password policy ---------------------------------------------------------------------


def test_common_password_list_is_large():
    assert len(common_passwords()) >= 5000


@pytest.mark.parametrize(
    "password",
    [
        "x" * 11,
        "y" * 129,
        "password1234",
        "Password2024!!",
        "qwertyuiop123",
        "iloveyou1234",
        "abcabcabcabc",
        "qwerty qwerty",
        "111111111111",
        "infusion2024!",
        "jroe-is-my-name",
        # Issue 9 defect 6: a digit run, a keyboard walk, a shifted keyboard row, repeats.
        "123456789012",
        "qwertyuiopas",
        "!@#$%^&*()_+",
        "zxcvbnm,./zxcvbnm",
        "9876543210987",
    ],
)
def test_policy_refuses(app, password):
    assert problems(password, "jroe")


@pytest.mark.parametrize(
    "password",
    [PASSWORD, "correct horse battery staple", "all lower case words here", LONGEST],
)
def test_policy_accepts_long_uncommon_passwords_without_composition_rules(app, password):
    assert len(password) <= 128
    assert problems(password, "jroe") == []


def test_weak_passwords_are_refused_with_zxcvbn_feedback_on_the_form(client, login_as):
    login_as("np")
    response = client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": "!@#$%^&*()_+",
            "confirm_password": "!@#$%^&*()_+",
        },
    )
    html = response.get_data(as_text=True)
    assert response.status_code in (200, 422)
    assert "That password is too easy to guess." in html
    assert "Straight rows of keys are easy to guess." in html


def test_the_minimum_strength_is_a_setting(app):
    # zxcvbn scores: "monkeybanana12" 2, "bluehouse2024" 3.
    assert problems("monkeybanana12", "jroe") and problems("bluehouse2024", "jroe") == []
    app.config["PASSWORD_MIN_SCORE"] = 4
    assert problems("bluehouse2024", "jroe")
    app.config["PASSWORD_MIN_SCORE"] = 2
    assert problems("monkeybanana12", "jroe") == []


def test_temporary_passwords_meet_the_policy_and_differ(app):
    first, second = temporary_password(), temporary_password()
    assert first != second
    assert problems(first) == [] and len(first) >= 16


def test_first_visit_goes_to_setup_without_asking_to_sign_in(client):
    response = client.get("/", follow_redirects=True)
    assert response.request.path == "/setup"
    assert "Please sign in" not in response.get_data(as_text=True)
