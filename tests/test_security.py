"""The security baseline (SPEC §8): sessions that end everywhere, idle and absolute limits,
lockout, CSRF, headers, cookies, and error pages that fit the layout and leak nothing."""

import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import abort
from flask.sessions import SecureCookieSessionInterface

from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent
from infusion_tracker.permissions import public
from infusion_tracker.timeutil import utcnow
from tests.conftest import PASSWORD, csrf_token_from, login

SIGNED_IN_PAGE = "/account/password"
REFUSAL = "Username or password is not correct, or the account is locked or inactive."


def sent_to_login(response) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/login")


def count(action: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    )


def error_summary(response) -> str:
    match = re.search(r'<div class="error-summary".*?</div>', response.get_data(as_text=True), re.S)
    assert match, "no error summary"
    return match.group(0)


# --- Sessions end everywhere ------------------------------------------------------------------


def replay(app, cookie: str):
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief.get(SIGNED_IN_PAGE)


def test_cookie_copied_before_logout_does_not_work_after(app, client, login_as):
    login_as("np")
    cookie = client.get_cookie("session").value
    assert replay(app, cookie).status_code == 200  # the copy works while the session lives
    client.post("/logout")
    assert sent_to_login(replay(app, cookie))


def test_password_change_ends_other_sessions(app, client, login_as):
    staff = login_as("np")
    other_workstation = app.test_client()
    assert login(other_workstation, staff.username).status_code == 302
    cookie = client.get_cookie("session").value
    response = client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": "violet canyon ferry 1987",
            "confirm_password": "violet canyon ferry 1987",
        },
    )
    assert response.status_code == 302
    assert sent_to_login(replay(app, cookie))
    assert sent_to_login(other_workstation.get(SIGNED_IN_PAGE))
    assert client.get(SIGNED_IN_PAGE).status_code == 200  # the one that changed it continues


def test_deactivation_ends_the_users_sessions(app, client, make_staff):
    nurse = make_staff("np", username="nurse")
    admin = make_staff("admin", username="boss")
    nurse_client = app.test_client()
    assert login(nurse_client, "nurse").status_code == 302
    cookie = nurse_client.get_cookie("session").value
    assert login(client, admin.username).status_code == 302
    assert client.post(f"/admin/staff/{nurse.id}/deactivate").status_code == 302
    assert sent_to_login(nurse_client.get(SIGNED_IN_PAGE))
    assert sent_to_login(replay(app, cookie))
    # Reactivating does not bring the old session back.
    client.post(f"/admin/staff/{nurse.id}/reactivate")
    assert sent_to_login(replay(app, cookie))


# --- The session cookie ------------------------------------------------------------------------


def test_a_cookie_written_before_by_flasks_tagged_json_is_still_read(app, client, login_as):
    """A browser signed in before the cookie was written in orjson (security.SessionJSON) stays
    signed in, and the message it had waiting (a pair, which Flask's JSON tagged) is shown."""
    login_as("np")
    with client.session_transaction() as session:
        value = {**session, "_flashes": [("success", "Reading at 10:05 recorded.")]}
    flasks_own = SecureCookieSessionInterface().get_signing_serializer(app)
    assert '{" t"' in flasks_own.serializer.dumps(value)
    client.set_cookie("session", flasks_own.dumps(value))
    response = client.get(SIGNED_IN_PAGE)
    assert response.status_code == 200
    assert (
        '<div class="flash flash--success" role="status">Reading at 10:05 recorded.</div>'
        in response.get_data(as_text=True)
    )


# --- Idle and absolute limits ------------------------------------------------------------------


def age_session(client, **seconds_ago):
    now = time.time()
    with client.session_transaction() as session:
        for key, ago in seconds_ago.items():
            session[key] = now - ago


def test_idle_logout_after_15_minutes(client, login_as):
    login_as("np")
    age_session(client, seen_at=14 * 60)
    assert client.get(SIGNED_IN_PAGE).status_code == 200  # activity resets the idle clock
    age_session(client, seen_at=15 * 60 + 5)
    response = client.get(SIGNED_IN_PAGE)
    assert sent_to_login(response)
    assert "next=/account/password" in response.headers["Location"]
    assert sent_to_login(client.get(SIGNED_IN_PAGE))  # and it stays signed out


def test_absolute_limit_of_12_hours_despite_activity(client, login_as):
    login_as("np")
    age_session(client, login_at=11 * 3600 + 3000, seen_at=10)
    assert client.get(SIGNED_IN_PAGE).status_code == 200
    age_session(client, login_at=12 * 3600 + 5, seen_at=10)
    assert sent_to_login(client.get(SIGNED_IN_PAGE))


def test_a_session_without_timestamps_is_not_trusted(client, login_as):
    login_as("np")
    with client.session_transaction() as session:
        session.pop("login_at")
    assert sent_to_login(client.get(SIGNED_IN_PAGE))


class TestConfiguredLimits:
    @pytest.fixture
    def app_config(self):
        return {"IDLE_TIMEOUT_MINUTES": 2, "SESSION_MAX_HOURS": 1}

    def test_idle_setting(self, client, login_as):
        login_as("np")
        age_session(client, seen_at=90)
        assert client.get(SIGNED_IN_PAGE).status_code == 200
        age_session(client, seen_at=125)
        assert sent_to_login(client.get(SIGNED_IN_PAGE))

    def test_absolute_setting(self, app, client, login_as):
        assert app.permanent_session_lifetime == timedelta(hours=1)
        login_as("np")
        age_session(client, login_at=3605, seen_at=5)
        assert sent_to_login(client.get(SIGNED_IN_PAGE))


# --- Lockout ----------------------------------------------------------------------------------


def fail(client, username="jroe"):
    return client.post("/login", data={"username": username, "password": "not the password"})


def test_five_failures_lock_the_account_with_the_same_message(client, make_staff):
    staff = make_staff("np", username="jroe")
    for _ in range(4):
        fail(client)
    assert not staff.is_locked() and staff.failed_logins == 4
    fifth = fail(client)
    assert staff.is_locked()
    assert staff.locked_until - utcnow() > timedelta(minutes=14)
    assert count("auth.locked_out") == 1
    locked = login(client, "jroe")  # the right password, but locked
    unknown = fail(client, "nobody")
    assert locked.status_code == 422 and REFUSAL in locked.get_data(as_text=True)
    assert error_summary(locked) == error_summary(unknown) == error_summary(fifth)
    assert count("auth.login") == 0


def test_admin_unlocks(app, client, make_staff):
    staff = make_staff("np", username="jroe")
    admin = make_staff("admin", username="boss")
    for _ in range(5):
        fail(client)
    assert staff.is_locked()
    office = app.test_client()
    assert login(office, admin.username).status_code == 302
    assert b"Locked until" in office.get("/admin/staff/").data
    assert office.post(f"/admin/staff/{staff.id}/unlock").status_code == 302
    assert not staff.is_locked()
    assert count("staff.unlocked") == 1
    assert login(client, "jroe").status_code == 302


def test_lock_expires(client, make_staff):
    staff = make_staff("np", username="jroe")
    for _ in range(5):
        fail(client)
    assert login(client, "jroe").status_code == 422
    staff.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert login(client, "jroe").status_code == 302
    assert staff.failed_logins == 0


class TestLockoutSettings:
    @pytest.fixture
    def app_config(self):
        return {"LOCKOUT_THRESHOLD": 2, "LOCKOUT_MINUTES": 60}

    def test_threshold_and_duration_come_from_settings(self, client, make_staff):
        staff = make_staff("np", username="jroe")
        fail(client)
        assert not staff.is_locked()
        fail(client)
        assert staff.locked_until - utcnow() > timedelta(minutes=59)


# --- CSRF ---------------------------------------------------------------------------------------


class TestCsrf:
    """With CSRF switched on: no token → 400; the token from the page → accepted."""

    @pytest.fixture
    def app_config(self):
        return {"WTF_CSRF_ENABLED": True}

    def test_login(self, client, make_staff):
        make_staff("np", username="jroe")
        data = {"username": "jroe", "password": PASSWORD}
        refused = client.post("/login", data=data)
        assert refused.status_code == 400
        assert b"Form expired" in refused.data
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        assert client.post("/login", data={**data, "csrf_token": token}).status_code == 302

    def signed_in(self, client, username):
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        data = {"username": username, "password": PASSWORD, "csrf_token": token}
        assert client.post("/login", data=data).status_code == 302

    def test_logout(self, client, make_staff):
        make_staff("np", username="jroe")
        self.signed_in(client, "jroe")
        assert client.post("/logout").status_code == 400
        assert client.get(SIGNED_IN_PAGE).status_code == 200  # still signed in
        token = csrf_token_from(client.get(SIGNED_IN_PAGE).get_data(as_text=True))
        assert client.post("/logout", data={"csrf_token": token}).status_code == 302
        assert sent_to_login(client.get(SIGNED_IN_PAGE))

    def test_staff_create(self, client, make_staff):
        make_staff("admin", username="boss")
        self.signed_in(client, "boss")
        data = {
            "username": "newbie",
            "full_name": "New Person",
            "credentials": "PA-C",
            "role": "pa",
        }
        assert client.post("/admin/staff/new", data=data).status_code == 400
        assert count("staff.created") == 1  # only boss
        token = csrf_token_from(client.get("/admin/staff/new").get_data(as_text=True))
        response = client.post("/admin/staff/new", data={**data, "csrf_token": token})
        assert response.status_code == 200
        assert b"Temporary password" in response.data
        assert count("staff.created") == 2

    def test_password_change(self, client, make_staff):
        make_staff("np", username="jroe")
        self.signed_in(client, "jroe")
        data = {
            "current_password": PASSWORD,
            "new_password": "violet canyon ferry 1987",
            "confirm_password": "violet canyon ferry 1987",
        }
        assert client.post(SIGNED_IN_PAGE, data=data).status_code == 400
        assert count("auth.password_changed") == 0
        token = csrf_token_from(client.get(SIGNED_IN_PAGE).get_data(as_text=True))
        assert client.post(SIGNED_IN_PAGE, data={**data, "csrf_token": token}).status_code == 302
        assert count("auth.password_changed") == 1

    def test_every_page_form_carries_a_token(self, client, make_staff):
        admin = make_staff("admin", username="boss")
        nurse = make_staff("np", username="nurse")
        self.signed_in(client, "boss")
        for path in (
            "/admin/staff/",
            "/admin/staff/new",
            f"/admin/staff/{nurse.id}",
            f"/admin/staff/{admin.id}",
            "/admin/audit",
            SIGNED_IN_PAGE,
        ):
            html = client.get(path).get_data(as_text=True)
            for form in re.findall(r"<form\b.*?</form>", html, re.S):
                if 'method="get"' in form:
                    continue
                assert 'name="csrf_token"' in form, (path, form[:200])


# --- Headers and cookies --------------------------------------------------------------------


def test_security_headers_on_every_response(client, login_as):
    for response in (client.get("/login"), client.get("/no-such-page")):
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
    login_as("np")
    response = client.get(SIGNED_IN_PAGE)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_script_or_style(client, login_as, make_staff):
    nurse = make_staff("np")
    login_as("admin")
    for path in (
        "/admin/staff/",
        "/admin/staff/new",
        f"/admin/staff/{nurse.id}",
        "/admin/audit",
        SIGNED_IN_PAGE,
    ):
        html = client.get(path).get_data(as_text=True)
        assert "style=" not in html, path
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert " on" + "click=" not in html, path


def test_session_cookie_flags(client, make_staff):
    make_staff("np", username="jroe")
    cookie = login(client, "jroe").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


class TestSecureCookies:
    @pytest.fixture
    def app_config(self):
        return {"SESSION_COOKIE_SECURE": True}

    def test_secure_flag_and_hsts(self, client, make_staff):
        make_staff("np", username="jroe")
        response = client.post(
            "/login",
            data={"username": "jroe", "password": PASSWORD},
            base_url="https://localhost",
        )
        assert "Secure" in response.headers["Set-Cookie"]
        assert "max-age" in response.headers["Strict-Transport-Security"]


# --- Error pages and refusals -----------------------------------------------------------------


def test_403_fits_the_layout_and_is_audited(client, login_as):
    nurse = login_as("np")
    response = client.get("/admin/staff/")
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert 'class="site-header"' in html and "Not allowed" in html
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "auth.access_denied")
    ).one()
    assert event.actor_id == nurse.id
    assert event.details == {"path": "/admin/staff/", "method": "GET"}


def test_clinicians_cannot_manage_staff_on_the_server(client, login_as, make_staff):
    target = make_staff("pa", username="target")
    login_as("physician")
    for path in (
        f"/admin/staff/{target.id}/deactivate",
        f"/admin/staff/{target.id}/reset-password",
        "/admin/staff/new",
    ):
        assert (
            client.post(path, data={"username": "x", "full_name": "x", "role": "admin"}).status_code
            == 403
        )
    assert target.active and count("auth.access_denied") == 3
    assert count("staff.created") == 2  # the two fixtures only


def test_404_page(client, login_as):
    login_as("admin")
    assert client.get("/admin/staff/999999").status_code == 404
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert b"There is no such page or record." in response.data
    assert b'class="site-header"' in response.data


def test_get_changes_nothing(client, login_as, make_staff):
    nurse = make_staff("np", username="nurse")
    login_as("admin")
    for path in (
        "/logout",
        f"/admin/staff/{nurse.id}/deactivate",
        f"/admin/staff/{nurse.id}/reset-password",
        f"/admin/staff/{nurse.id}/unlock",
        f"/admin/staff/{nurse.id}/reactivate",
        "/admin/audit/export",
    ):
        assert client.get(path).status_code == 405, path
    assert nurse.active
    assert count("staff.password_reset") == 0 and count("audit.exported") == 0


class TestErrorPages:
    @pytest.fixture
    def app_config(self):
        return {"PROPAGATE_EXCEPTIONS": False}

    @pytest.fixture
    def routes(self, app):
        def boom():
            raise RuntimeError("secret-internal-detail in /srv/app.py line 42")

        def conflict():
            abort(409)

        def bad():
            abort(400)

        app.add_url_rule("/_test/boom", "test_boom", public(boom))
        app.add_url_rule("/_test/conflict", "test_conflict", public(conflict))
        app.add_url_rule("/_test/bad", "test_bad", public(bad))

    @pytest.mark.parametrize(
        ("path", "code", "title"),
        [
            ("/_test/boom", 500, "Something went wrong"),
            ("/_test/conflict", 409, "Not allowed now"),
            ("/_test/bad", 400, "Bad request"),
        ],
    )
    def test_pages_fit_the_layout_and_leak_nothing(self, client, routes, path, code, title):
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == code
        assert title in html and f"Error {code}" in html
        assert 'class="site-header"' in html
        assert "secret-internal-detail" not in html and "Traceback" not in html
        assert response.headers["Cache-Control"] == "no-store"


def test_show_on_form_puts_a_refusal_beside_its_field(app):
    from infusion_tracker.auth.forms import ChangePasswordForm
    from infusion_tracker.errors import RuleError, show_on_form

    with app.test_request_context(method="POST"):
        form = ChangePasswordForm(meta={"csrf": False})
        show_on_form(form, RuleError("too short", field="password"), {"password": "new_password"})
        show_on_form(form, RuleError("wrong", "current_password"))
        show_on_form(form, RuleError("renamed", field="old"), old="confirm_password")
        show_on_form(form, RuleError("no such field", field="weight_kg"))
        show_on_form(form, RuleError("general"))
    assert form.new_password.errors == ["too short"]
    assert form.current_password.errors == ["wrong"]
    assert form.confirm_password.errors == ["renamed"]
    assert form.form_errors == ["no such field", "general"]
