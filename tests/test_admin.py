"""Staff administration and the audit log page (SPEC §1, §5)."""

import csv
import io
import json
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker import audit
from infusion_tracker.admin import services
from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent, Staff
from infusion_tracker.timeutil import clinic_today, utcnow
from tests.conftest import PASSWORD, login

NEW_PASSWORD = "violet canyon ferry 1987"


def events(action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
    )


def temporary_password_in(html: str) -> str:
    match = re.search(r'class="temporary-password"><code>([^<]+)</code>', html)
    assert match, "no temporary password on the page"
    return match.group(1)


@pytest.fixture
def admin(login_as):
    return login_as("admin", username="boss", full_name="Olive Manager")


# --- Staff list --------------------------------------------------------------------------


def test_staff_list_shows_status_in_words(client, admin, make_staff):
    make_staff("physician", username="doc", full_name="Ada Doctor", credentials="MD")
    make_staff("np", username="gone", full_name="Gail Gone", active=False)
    locked = make_staff("pa", username="locked", full_name="Lee Locked")
    locked.locked_until = utcnow() + timedelta(minutes=10)
    db.session.commit()
    html = client.get("/admin/staff/").get_data(as_text=True)
    assert "Ada Doctor, MD" in html and "Physician" in html
    assert "Deactivated" in html and "Active" in html
    assert re.search(r"Locked until \d\d:\d\d", html)
    assert "Never" in html  # doc has not signed in
    assert f'href="/admin/staff/{locked.id}"' in html


# --- Create ------------------------------------------------------------------------------


def create(client, **overrides):
    data = {"username": "NewNurse", "full_name": "Nia Nurse", "credentials": "APRN", "role": "np"}
    return client.post("/admin/staff/new", data={**data, **overrides})


def test_create_with_a_generated_temporary_password(app, client, admin):
    response = create(client)
    assert response.status_code == 200
    password = temporary_password_in(response.get_data(as_text=True))
    staff = db.session.scalar(sa.select(Staff).where(Staff.username == "newnurse"))
    assert staff.role == "np" and staff.must_change_password and staff.active
    assert password not in staff.password_hash
    (event,) = events("staff.created")[1:]
    assert event.actor_id == admin.id and event.entity_id == staff.id
    assert event.details["after"]["full_name"] == "Nia Nurse"
    assert password not in str(event.details)
    # The new person signs in with it and must choose their own password first.
    newcomer = app.test_client()
    assert login(newcomer, "newnurse", password).headers["Location"] == "/account/password"
    assert newcomer.get("/").headers["Location"] == "/account/password"


def test_create_with_a_typed_password(client, admin):
    response = create(client, password=NEW_PASSWORD)
    assert response.headers["Location"] == "/admin/staff/"
    staff = db.session.scalar(sa.select(Staff).where(Staff.username == "newnurse"))
    assert staff.must_change_password


def test_usernames_are_unique_case_insensitively(client, admin, make_staff):
    make_staff("np", username="nia")
    response = create(client, username="NIA", full_name="Another Nia")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "The username “nia” is already taken." in html
    assert 'value="Another Nia"' in html  # what was typed is kept
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Staff)) == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"username": "", "full_name": "", "role": ""}, "Enter a username."),
        ({"username": "", "full_name": "", "role": ""}, "Choose one of the four roles."),
        ({"full_name": ""}, "Enter the full name."),
        ({"full_name": "x" * 121}, "Full name: at most 120 characters."),
        ({"credentials": "x" * 61}, "Credentials: at most 60 characters."),
        ({"username": "bad name!"}, "Usernames are 2–64 characters"),
        ({"role": "superuser"}, "Choose one of the four roles."),
        ({"password": "short"}, "Password must be at least 12 characters"),
        ({"password": "password1234"}, "too common"),
    ],
)
def test_create_refusals_name_the_field_and_keep_values(client, admin, overrides, message):
    response = create(client, **overrides)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "There is a problem" in html and message in html
    if "credentials" not in overrides:
        assert 'value="APRN"' in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Staff)) == 1


# --- Edit ---------------------------------------------------------------------------------


def edit(client, staff, **overrides):
    data = {"full_name": staff.full_name, "credentials": staff.credentials, "role": staff.role}
    return client.post(f"/admin/staff/{staff.id}", data={**data, **overrides})


def test_edit_name_and_credentials_audits_before_and_after(client, admin, make_staff):
    staff = make_staff("np", username="nia", full_name="Nia Nurse", credentials="RN")
    page = client.get(f"/admin/staff/{staff.id}").get_data(as_text=True)
    assert 'value="Nia Nurse"' in page and "Reset password" in page and "Deactivate" in page
    response = edit(client, staff, full_name="Nia Nurse-Smith", credentials="APRN")
    assert response.headers["Location"] == f"/admin/staff/{staff.id}"
    assert staff.display_name == "Nia Nurse-Smith, APRN"
    (event,) = events("staff.updated")
    assert event.details["before"]["full_name"] == "Nia Nurse"
    assert event.details["after"]["credentials"] == "APRN"
    assert event.details["changes"] == {
        "full_name": ["Nia Nurse", "Nia Nurse-Smith"],
        "credentials": ["RN", "APRN"],
    }


def test_role_change_is_its_own_audit_action(client, admin, make_staff):
    staff = make_staff("np")
    edit(client, staff, role="physician")
    assert staff.role == "physician"
    (event,) = events("staff.role_changed")
    assert event.details["changes"] == {"role": ["np", "physician"]}
    assert events("staff.updated") == []


def test_saving_without_changes_writes_nothing(client, admin, make_staff):
    staff = make_staff("np")
    before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    response = edit(client, staff)
    assert response.status_code == 302
    assert b"Nothing was changed." in client.get(response.headers["Location"]).data
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == before


def test_edit_refusals_keep_values(client, admin, make_staff):
    staff = make_staff("np", full_name="Nia Nurse")
    response = edit(client, staff, full_name="", credentials="Typed", role="")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Enter the full name." in html and 'value="Typed"' in html
    assert staff.full_name == "Nia Nurse"


def test_admin_cannot_demote_themselves(client, admin):
    response = edit(client, admin, role="physician", full_name="Olive M. Manager")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "You cannot change your own role" in html
    assert admin.role == "admin" and admin.full_name == "Olive Manager"  # nothing saved
    assert events("staff.role_changed") == [] and events("staff.updated") == []


def test_another_admin_can_change_an_admins_role(client, admin, make_staff):
    other = make_staff("admin", username="second")
    edit(client, other, role="physician")
    assert other.role == "physician"


def test_edit_unknown_account_is_404(client, admin):
    assert client.get("/admin/staff/999999").status_code == 404
    assert client.post("/admin/staff/999999/deactivate").status_code == 404


# --- Deactivate, reactivate ---------------------------------------------------------------


def test_deactivate_and_reactivate(app, client, admin, make_staff):
    staff = make_staff("np", username="nia", full_name="Nia Nurse", credentials="APRN")
    audit.record("patient.viewed", actor=staff)  # a past entry made by this person
    db.session.commit()
    response = client.post(f"/admin/staff/{staff.id}/deactivate")
    assert response.headers["Location"] == f"/admin/staff/{staff.id}"
    assert not staff.active
    (event,) = events("staff.deactivated")
    assert event.details["changes"] == {"active": [True, False]}
    assert login(app.test_client(), "nia").status_code == 422  # refused
    # The name stays on what they did before.
    html = client.get("/admin/audit", query_string={"actor": staff.id}).get_data(as_text=True)
    assert "Nia Nurse, APRN" in html and "patient.viewed" in html
    assert "Deactivated" in client.get("/admin/staff/").get_data(as_text=True)

    client.post(f"/admin/staff/{staff.id}/reactivate")
    assert staff.active
    assert len(events("staff.reactivated")) == 1
    assert login(app.test_client(), "nia").status_code == 302


def test_admin_cannot_deactivate_themselves(client, admin):
    response = client.post(f"/admin/staff/{admin.id}/deactivate", follow_redirects=True)
    assert "You cannot deactivate your own account" in response.get_data(as_text=True)
    assert admin.active and events("staff.deactivated") == []


def test_repeated_deactivation_is_refused_with_a_message(client, admin, make_staff):
    staff = make_staff("np", active=False)
    response = client.post(f"/admin/staff/{staff.id}/deactivate", follow_redirects=True)
    assert "already deactivated" in response.get_data(as_text=True)
    response = client.post(f"/admin/staff/{admin.id}/reactivate", follow_redirects=True)
    assert "already active" in response.get_data(as_text=True)


# --- Reset password, unlock ---------------------------------------------------------------


def test_reset_password(app, client, admin, make_staff):
    staff = make_staff("pa", username="pat")
    their_client = app.test_client()
    assert login(their_client, "pat").status_code == 302
    staff.locked_until = utcnow() + timedelta(minutes=5)
    db.session.commit()
    response = client.post(f"/admin/staff/{staff.id}/reset-password")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "shown only this once" in html
    password = temporary_password_in(html)
    assert staff.must_change_password and not staff.is_locked()
    # Their session ended, the old password is dead, the temporary one forces a change.
    assert their_client.get("/account/password").headers["Location"].startswith("/login")
    assert login(app.test_client(), "pat", PASSWORD).status_code == 422
    newcomer = app.test_client()
    assert login(newcomer, "pat", password).headers["Location"] == "/account/password"
    response = newcomer.post(
        "/account/password",
        data={
            "current_password": password,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302 and not staff.must_change_password
    (event,) = events("staff.password_reset")
    assert event.actor_id == admin.id and event.details["unlocked"] is True
    assert password not in str(event.details)
    # The password is not kept anywhere the admin could see it again.
    assert password not in client.get(f"/admin/staff/{staff.id}").get_data(as_text=True)


def test_admin_cannot_reset_their_own_password_here(client, admin):
    response = client.post(f"/admin/staff/{admin.id}/reset-password", follow_redirects=True)
    assert "Use “Change password” for your own account" in response.get_data(as_text=True)
    assert not admin.must_change_password
    assert login(client, "boss").status_code == 302  # still the same password


def test_unlock(client, admin, make_staff):
    staff = make_staff("np", failed_logins=2, locked_until=utcnow() + timedelta(minutes=9))
    page = client.get(f"/admin/staff/{staff.id}").get_data(as_text=True)
    assert "Unlock (locked until" in page
    client.post(f"/admin/staff/{staff.id}/unlock")
    assert not staff.is_locked() and staff.failed_logins == 0
    (event,) = events("staff.unlocked")
    assert event.details["failed_logins"] == 2
    response = client.post(f"/admin/staff/{staff.id}/unlock", follow_redirects=True)
    assert "is not locked" in response.get_data(as_text=True)


def test_admin_home_is_the_staff_list(client, admin):
    assert client.get("/").headers["Location"] == "/admin/staff/"


# --- Audit log page -----------------------------------------------------------------------


@pytest.fixture
def trail(admin, make_staff, make_patient):
    """A small trail: two clinicians, one patient, a few actions."""
    nia = make_staff("np", username="nia", full_name="Nia Nurse")
    doc = make_staff("physician", username="doc", full_name="Ada Doctor")
    patient = make_patient(mrn="MRN777")
    audit.record("patient.viewed", actor=nia, patient_id=patient.id, entity=patient)
    audit.record("reading.recorded", actor=nia, patient_id=patient.id, details={"sbp": 120})
    audit.record("session.signed", actor=doc, patient_id=patient.id)
    audit.record("auth.login_failed", attempted_username="=cmd|' /C calc'!A0")
    db.session.commit()
    return {"nia": nia, "doc": doc, "patient": patient}


def audit_page(client, **filters):
    response = client.get("/admin/audit", query_string=filters)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1] if "<tbody>" in html else ""
    return re.findall(r"<code>([a-z_.]+)</code>", body)


def test_audit_filters(client, trail):
    assert rows(audit_page(client, actor=trail["nia"].id)) == [
        "reading.recorded",
        "patient.viewed",
        "staff.created",
    ]
    assert rows(audit_page(client, action="session.signed")) == ["session.signed"]
    assert set(rows(audit_page(client, action="staff."))) == {"staff.created"}
    assert rows(audit_page(client, patient="mrn777")) == [
        "session.signed",
        "reading.recorded",
        "patient.viewed",
    ]
    assert rows(audit_page(client, actor="anonymous")) == ["auth.login_failed"]
    today = clinic_today()
    assert len(rows(audit_page(client, date_from=today, date_to=today))) >= 8
    assert rows(audit_page(client, date_from=today + timedelta(days=1))) == []
    assert rows(audit_page(client, date_to=today - timedelta(days=1))) == []


def test_audit_shows_names_mrn_and_details(client, trail):
    html = audit_page(client, patient="MRN777")
    assert "Nia Nurse" in html and "Ada Doctor, MD" in html
    assert "MRN777" in html
    # Minimum necessary (issue 9): which fields, not their clinical values.
    assert "Fields: Sbp (clinical contents not shown)" in html and "120" not in html


def test_audit_prefix_works_without_the_dot(client, trail):
    assert set(rows(audit_page(client, action="staff"))) == {"staff.created"}
    assert set(rows(audit_page(client, action="auth"))) == {"auth.login", "auth.login_failed"}
    assert rows(audit_page(client, action="sta")) == []  # a start of a word is not a prefix


def test_audit_reads_like_a_ledger(client, admin, make_staff):
    from infusion_tracker.timeutil import format_datetime, utcnow

    nurse = make_staff("np", username="nia")
    until = utcnow()
    audit.record(
        "staff.updated",
        actor=admin,
        entity=nurse,
        details={"changes": {"full_name": ["Nia Old", "Nia New"]}, "locked_until": until},
    )
    db.session.commit()
    html = audit_page(client, action="staff.updated")
    assert "Staff updated" in html and "Full name: Nia Old → Nia New" in html
    assert re.search(r"Staff #\d+<br><span class=\"small\">NP Person", html)  # the record named
    assert f"Locked until: {format_datetime(until)}" in html  # clinic time, not UTC ISO


def test_the_csv_withholds_clinical_contents_too(client, trail):
    response = client.post("/admin/audit/export", data={"action": "reading.recorded"})
    [row] = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert row["details"] == "Fields: Sbp (clinical contents not shown)"


def test_audit_rows_escape_every_text_they_show(client, admin, make_staff):
    # The rows are written in Python (admin/audit_cells), not by Jinja's autoescape.
    hostile = make_staff("np", username="hostile", full_name="<i>Nia</i>", credentials="<b>")
    audit.record(
        "staff.updated",
        actor=hostile,
        entity=hostile,
        details={"changes": {"full_name": ["<s>old", "<s>new"]}},
    )
    audit.record("auth.login_failed", attempted_username="<script>alert(1)</script>")
    db.session.commit()
    body = audit_page(client).split("<tbody>", 1)[1]
    assert not re.search(r"<(i|b|s|script)>", body)
    nia = "&lt;i&gt;Nia&lt;/i&gt;, &lt;b&gt;"
    assert f'<td>{nia} <span class="muted">(hostile)</span></td>' in body  # who
    assert f'Staff #{hostile.id}<br><span class="small">{nia}</span>' in body
    assert "<li>Full name: &lt;s&gt;old → &lt;s&gt;new</li>" in body
    assert "<td>anonymous (&lt;script&gt;alert(1)&lt;/script&gt;)</td>" in body  # who, typed


def test_the_filter_boxes_show_each_view_s_own_values_errors_and_actors(
    client, trail, make_staff, make_patient
):
    # The boxes are kept drawn (admin/routes.audit_filter_fields): under what they show.
    def box(html: str, field: str) -> str:
        after = html.split(f'<label class="field__label" for="{field}">', 1)[1]
        return after.split("</div>\n</div>")[0]

    missing = box(audit_page(client, patient="MRN888"), "patient")
    assert 'value="MRN888"' in missing and 'id="patient-error"' in missing
    assert 'value="MRN777"' in box(audit_page(client, patient="MRN777"), "patient")
    make_patient(mrn="MRN888")  # the same box typed the same way, now without its error
    db.session.commit()
    found = box(audit_page(client, patient="MRN888"), "patient")
    assert 'value="MRN888"' in found and "patient-error" not in found
    nia = trail["nia"]
    assert f'<option selected value="{nia.id}">' in box(audit_page(client, actor=nia.id), "actor")
    zed = make_staff("pa", username="zed", full_name="Zed Newcomer")
    db.session.commit()
    assert f'<option value="{zed.id}">Zed Newcomer, PA-C (zed)</option>' in box(
        audit_page(client, actor=nia.id), "actor"
    )


def test_audit_sort(client, trail):
    newest = rows(audit_page(client))
    oldest = rows(audit_page(client, sort="oldest"))
    assert newest == list(reversed(oldest))
    assert oldest[0] == "staff.created" and newest[0] == "auth.login_failed"


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"actor": "99999"}, "Not a valid choice"),
        ({"sort": "sideways"}, "Not a valid choice"),
        ({"date_from": "31/02/2024"}, "Not a valid date value"),
        ({"date_from": "2024-05-02", "date_to": "2024-05-01"}, "on or after the start date"),
        ({"patient": "NOPE"}, "No patient has the MRN “NOPE”."),
        ({"action": "x" * 61}, "Action: at most 60 characters."),
    ],
)
def test_audit_bad_filters_are_explained(client, trail, filters, message):
    html = audit_page(client, **filters)
    assert "There is a problem" in html and message in html


def test_audit_bad_page_numbers_do_not_break(client, trail):
    for page in ("abc", "-3", "0", "99999"):
        assert client.get("/admin/audit", query_string={"page": page}).status_code == 200


class TestAuditPagination:
    @pytest.fixture
    def app_config(self):
        return {"PER_PAGE": 3}

    def test_pages_keep_the_filters(self, client, admin):
        for number in range(7):
            audit.record("test.event", actor=admin, details={"n": number})
        db.session.commit()
        first = audit_page(client, action="test.event", sort="oldest")
        assert "7 entries, page 1 of 3" in first
        assert "N: 0" in first and "N: 3" not in first
        link = re.search(r'href="(/admin/audit\?[^"]*page=2[^"]*)"', first).group(1)
        assert "action=test.event" in link and "sort=oldest" in link
        third = client.get(link.replace("page=2", "page=3").replace("&amp;", "&"))
        assert rows(third.get_data(as_text=True)) == ["test.event"]


    def test_a_date_range_pages_in_time_order_and_its_export_keeps_every_row(
        self, client, admin, monkeypatch
    ):
        for number in range(7):
            audit.record("test.event", actor=admin, details={"n": number})
        db.session.commit()
        today = clinic_today().isoformat()
        first = audit_page(client, action="test.event", date_from=today, date_to=today)
        assert "7 entries, page 1 of 3" in first
        assert first.index("N: 6") < first.index("N: 5") < first.index("N: 4")
        monkeypatch.setattr(services, "EXPORT_CHUNK", 2)  # keyset paging, by time
        for sort, expected in (("newest", list(range(6, -1, -1))), ("oldest", list(range(7)))):
            response = client.post(
                "/admin/audit/export",
                data={"action": "test.event", "date_from": today, "date_to": today, "sort": sort},
            )
            table = csv.DictReader(io.StringIO(response.get_data(as_text=True)))
            assert [json.loads(row["details"])["n"] for row in table] == expected

    def test_the_whole_log_is_counted(self, client, admin):
        # No filter: the count statement has no WHERE to name the log's table by.
        for number in range(7):
            audit.record("test.event", actor=admin, details={"n": number})
        db.session.commit()
        total = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
        first = audit_page(client)
        assert f"{total} entries, page 1 of {-(-total // 3)}" in first

    def test_the_pager_counts_only_so_far(self, client, admin, monkeypatch):
        monkeypatch.setattr(services, "COUNT_LIMIT", 4)
        for number in range(7):
            audit.record("test.event", actor=admin, details={"n": number})
        db.session.commit()
        first = audit_page(client, action="test.event", sort="oldest")
        assert "More than 4 entries, page 1" in first and "Export these entries as CSV" in first
        link = re.search(r'href="(/admin/audit\?[^"]*page=2[^"]*)"', first).group(1)
        second = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
        assert "N: 3" in second and "N: 5" in second and 'rel="next"' in second
        third = client.get(link.replace("page=2", "page=3").replace("&amp;", "&"))
        third = third.get_data(as_text=True)
        assert "N: 6" in third and 'rel="next"' not in third


def test_audit_page_query_count_does_not_grow_with_rows(client, admin, count_queries):
    def queries() -> list[str]:
        with count_queries() as counter:
            assert client.get("/admin/audit").status_code == 200
        return counter.statements

    audit.record("test.event", actor=admin, patient_id=None)
    db.session.commit()
    first = queries()
    for _ in range(20):
        audit.record("test.event", actor=admin)
    db.session.commit()
    drawn = queries()
    # The signed-in user, the filter's staff list, the count, the page's rows with the names
    # and MRNs they show; the entries themselves only when the page's table is drawn (a page
    # with new entries), not when the same page is shown again.
    assert len(first) == len(drawn) == 5, drawn
    assert "WHERE audit_event.id IN (" in drawn[-1]
    again = queries()
    assert again == drawn[:-1]


def test_csv_export_is_filtered_escaped_and_audited(client, admin, trail):
    response = client.post("/admin/audit/export", data={"patient": "MRN777", "sort": "oldest"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["action"] for row in table] == [
        "patient.viewed",
        "reading.recorded",
        "session.signed",
    ]
    assert {row["patient_mrn"] for row in table} == {"MRN777"}
    (event,) = events("audit.exported")
    assert event.actor_id == admin.id
    assert event.details["patient_id"] == trail["patient"].id

    response = client.post("/admin/audit/export", data={"actor": "anonymous"})
    (row,) = csv.DictReader(io.StringIO(response.get_data(as_text=True)))
    assert row["actor"].startswith("anonymous (")  # not a formula
    response = client.post("/admin/audit/export", data={})
    all_rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert all_rows[0]["action"] == "audit.exported"  # newest first, the exports included


def test_csv_export_with_bad_filters_returns_the_form(client, trail):
    response = client.post("/admin/audit/export", data={"date_from": "not a date"})
    assert response.status_code == 200
    assert b"Not a valid date value" in response.data
    assert events("audit.exported") == []


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("ok", "ok"),
        (None, ""),
        (7, "7"),
    ],
)
def test_csv_cells_cannot_start_a_formula(value, cell):
    assert services._cell(value) == cell
