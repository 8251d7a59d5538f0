"""Patients: register (MRN generation), edit with optimistic locking, archive/reactivate,
search by name/MRN/date of birth, the patient page's allergy banner and view audit."""

import html
import re
from datetime import date

import pytest
import sqlalchemy as sa

from infusion_tracker.extensions import db
from infusion_tracker.models import Patient
from infusion_tracker.patients import services
from tests.conftest import audit_rows

FORM = {
    "first_name": "Dana",
    "last_name": "Whitfield",
    "date_of_birth": "1975-03-09",
    "sex": "female",
    "indication": "trd",
    "allergies": "",
    "medications": "Sertraline 100 mg daily",
    "emergency_contact": "Sam Whitfield (husband) 555-0101",
    "notes": "",
}


def patient_by_name(last_name):
    return db.session.scalar(sa.select(Patient).where(Patient.last_name == last_name))


def test_register_generates_sequential_mrns_and_audits(client, login_as):
    nurse = login_as("np")
    response = client.post("/patients/new", data=FORM)
    assert response.status_code == 302
    first = patient_by_name("Whitfield")
    assert response.headers["Location"] == f"/patients/{first.id}"
    assert first.mrn == "IT-000001"
    assert first.created_by_id == nurse.id
    assert first.date_of_birth == date(1975, 3, 9)

    client.post("/patients/new", data={**FORM, "last_name": "Okafor"})
    assert patient_by_name("Okafor").mrn == "IT-000002"

    created = audit_rows("patient.created")
    assert [row.patient_id for row in created] == [first.id, patient_by_name("Okafor").id]
    assert created[0].details["after"]["last_name"] == "Whitfield"
    assert created[0].actor_id == nurse.id


def test_generated_mrn_never_collides_with_a_typed_one(client, login_as, make_patient):
    login_as("pa")
    make_patient(mrn="IT-000041")
    make_patient(mrn="it-x")  # not a number: ignored by the generator
    client.post("/patients/new", data=FORM)
    assert patient_by_name("Whitfield").mrn == "IT-000042"


def test_typed_mrn_is_normalised_and_must_be_unique(client, login_as, make_patient):
    login_as("np")
    make_patient(mrn="A-77")
    response = client.post("/patients/new", data={**FORM, "mrn": " a-77 "})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "MRN A-77 already belongs to another patient." in page
    assert 'value="Whitfield"' in page  # what was typed comes back
    assert patient_by_name("Whitfield") is None

    client.post("/patients/new", data={**FORM, "mrn": "b-12"})
    assert patient_by_name("Whitfield").mrn == "B-12"


def test_mrn_generation_retries_when_the_number_is_taken_meanwhile(app, make_staff, monkeypatch):
    """Two registrations racing for the same number: the loser takes the next one."""
    actor = make_staff("np")
    values = {**FORM, "mrn": "", "date_of_birth": date(1975, 3, 9)}
    services.create_patient(values, actor)
    # Pretend the generator read the table before the first insert landed.
    answers = iter(["IT-000001", "IT-000002"])
    monkeypatch.setattr(services, "next_mrn", lambda: next(answers))
    patient = services.create_patient({**values, "last_name": "Late"}, actor)
    db.session.commit()
    assert patient.mrn == "IT-000002"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"date_of_birth": "2999-01-01"}, "Date of birth must be between 1900-01-01 and today."),
        ({"date_of_birth": "17/05/1980"}, "Not a valid date value."),
        ({"date_of_birth": ""}, "Enter the date of birth."),
        ({"indication": "other"}, "Describe the indication when it is Other."),
        ({"sex": "robot"}, "Not a valid choice."),
        ({"first_name": ""}, "Enter the first name."),
        ({"mrn": "IT 000"}, "MRN may hold letters, digits and hyphens only."),
        ({"emergency_contact": "x" * 201}, "Field cannot be longer than 200 characters."),
    ],
)
def test_register_refuses_bad_values_with_a_message(client, login_as, changes, message):
    login_as("np")
    response = client.post("/patients/new", data={**FORM, **changes})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Patient.id))) == 0


def test_date_of_birth_accepts_us_format_and_other_indication(client, login_as):
    login_as("np")
    client.post(
        "/patients/new",
        data={
            **FORM,
            "date_of_birth": "03/09/1975",
            "indication": "other",
            "indication_other": "Bipolar depression",
        },
    )
    patient = patient_by_name("Whitfield")
    assert patient.date_of_birth == date(1975, 3, 9)
    assert patient.indication_label == "Bipolar depression"


def test_patient_page_shows_allergies_prominently_and_audits_the_view(
    client, login_as, make_patient
):
    nurse = login_as("np")
    allergic = make_patient(allergies="Penicillin (rash); latex")
    none_known = make_patient(allergies="")
    page = client.get(f"/patients/{allergic.id}").get_data(as_text=True)
    assert "banner--critical allergy-banner" in page
    assert "<strong>Allergies:</strong> Penicillin (rash); latex" in page
    page = client.get(f"/patients/{none_known.id}").get_data(as_text=True)
    assert "No known allergies" in page
    viewed = audit_rows("patient.viewed")
    assert [(row.patient_id, row.actor_id) for row in viewed] == [
        (allergic.id, nurse.id),
        (none_known.id, nurse.id),
    ]


def test_patient_page_demographics(client, login_as, make_patient):
    login_as("pa")
    patient = make_patient(
        first_name="Rosa",
        last_name="Ibarra",
        mrn="IT-000777",
        date_of_birth=date(1990, 1, 2),
        sex="female",
        indication="ptsd",
        medications="Prazosin 2 mg",
        emergency_contact="Luis",
    )
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    for text in (
        "Rosa Ibarra",
        "IT-000777",
        "1990-01-02",
        "Female",
        "PTSD",
        "Prazosin 2 mg",
        "Luis",
        "No sessions yet.",
        "No outcome scores yet.",
    ):
        assert text in page


def edit_form(patient, **changes):
    values = {
        "mrn": patient.mrn,
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth.isoformat(),
        "sex": patient.sex,
        "indication": patient.indication,
        "indication_other": patient.indication_other,
        "allergies": patient.allergies,
        "medications": patient.medications,
        "emergency_contact": patient.emergency_contact,
        "notes": patient.notes,
        "version": patient.version,
    }
    values.update(changes)
    return values


def current_values(patient):
    return {name: getattr(patient, name) for name in services.PATIENT_FIELDS}


def test_edit_saves_and_audits_before_and_after(client, login_as, make_patient):
    nurse = login_as("np")
    patient = make_patient(allergies="")
    page = client.get(f"/patients/{patient.id}/edit").get_data(as_text=True)
    assert 'name="version" type="hidden" value="1"' in page
    response = client.post(
        f"/patients/{patient.id}/edit",
        data=edit_form(patient, allergies="Sulfa (hives)", medications="Bupropion"),
    )
    assert response.status_code == 302
    assert patient.allergies == "Sulfa (hives)"
    assert patient.version == 2
    assert patient.updated_by_id == nurse.id
    [row] = audit_rows("patient.updated")
    assert row.details["changes"] == {
        "allergies": ["", "Sulfa (hives)"],
        "medications": ["", "Bupropion"],
    }
    assert row.patient_id == patient.id


def test_edit_without_changes_keeps_the_version(client, login_as, make_patient):
    login_as("np")
    patient = make_patient()
    response = client.post(f"/patients/{patient.id}/edit", data=edit_form(patient))
    assert response.status_code == 302
    assert patient.version == 1
    assert audit_rows("patient.updated") == []


def test_stale_edit_is_refused_with_who_changed_it(client, login_as, make_staff, make_patient):
    patient = make_patient()
    colleague = make_staff("pa", full_name="Priya Shah", credentials="PA-C")
    services.update_patient(
        patient, {**current_values(patient), "notes": "Prefers afternoon slots"}, colleague, 1
    )
    db.session.commit()
    login_as("np")
    # This form was drawn from version 1, before the colleague's save.
    response = client.post(
        f"/patients/{patient.id}/edit", data=edit_form(patient, version=1, notes="Mine")
    )
    assert response.status_code == 409
    page = html.unescape(response.get_data(as_text=True))
    assert "This patient's record was changed by <strong>Priya Shah, PA-C</strong> at" in page
    assert patient.notes == "Prefers afternoon slots"
    assert patient.version == 2


def test_edit_to_another_patients_mrn_is_refused(client, login_as, make_patient):
    login_as("np")
    make_patient(mrn="IT-000001")
    patient = make_patient(mrn="IT-000002")
    response = client.post(f"/patients/{patient.id}/edit", data=edit_form(patient, mrn="it-000001"))
    assert response.status_code == 422
    assert "MRN IT-000001 already belongs to another patient." in response.get_data(as_text=True)
    assert patient.mrn == "IT-000002"


def test_archive_and_reactivate(client, login_as, make_patient):
    login_as("np")
    patient = make_patient(last_name="Archer")
    assert client.post(f"/patients/{patient.id}/archive").status_code == 302
    assert patient.active is False
    assert patient.version == 2  # an edit form opened before archiving is now stale
    assert names_in(client.get("/patients/?q=Archer")) == []
    assert names_in(client.get("/patients/?q=Archer&archived=y")) == ["Archer, Pat"]
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Archived" in page and "Reactivate patient" in page

    again = client.post(f"/patients/{patient.id}/archive", follow_redirects=True)
    assert "is already archived" in again.get_data(as_text=True)

    client.post(f"/patients/{patient.id}/reactivate")
    assert patient.active is True
    assert len(audit_rows("patient.archived")) == 1
    assert len(audit_rows("patient.reactivated")) == 1


@pytest.fixture
def clinic(make_patient):
    make_patient(
        first_name="Maria", last_name="Lopez", mrn="IT-000101", date_of_birth=date(1980, 5, 17)
    )
    make_patient(
        first_name="Mario",
        last_name="Lopez-Grant",
        mrn="IT-000102",
        date_of_birth=date(1966, 12, 1),
    )
    make_patient(first_name="Ann", last_name="Marsh", mrn="X-5", date_of_birth=date(1980, 5, 17))
    make_patient(
        first_name="José", last_name="Núñez", mrn="IT-000104", date_of_birth=date(1990, 2, 3)
    )
    make_patient(
        first_name="Old",
        last_name="Lopez",
        mrn="IT-000103",
        active=False,
        date_of_birth=date(1950, 1, 1),
    )


def names_in(response):
    """The names listed in the search results, in order."""
    return re.findall(
        r'<td><a href="/patients/\d+">([^<]+)</a></td>', response.get_data(as_text=True)
    )


@pytest.mark.parametrize(
    "query, expected",
    [
        ("lopez", ["Lopez, Maria", "Lopez-Grant, Mario"]),
        ("maria lopez", ["Lopez, Maria"]),
        ("Lopez, Mari", ["Lopez, Maria", "Lopez-Grant, Mario"]),
        ("IT-000102", ["Lopez-Grant, Mario"]),
        ("it-0001", ["Lopez, Maria", "Lopez-Grant, Mario", "Núñez, José"]),
        # Names match from their start, without accents, case or punctuation.
        ("nunez jo", ["Núñez, José"]),
        ("NÚÑ", ["Núñez, José"]),
        ("lopez-g", ["Lopez-Grant, Mario"]),
        ("lopezgr", ["Lopez-Grant, Mario"]),
        ("o'lopez", []),
        ("ez", []),
        ("-", []),
        ("1980-05-17", ["Lopez, Maria", "Marsh, Ann"]),
        ("05/17/1980", ["Lopez, Maria", "Marsh, Ann"]),
        ("12/01/1966", ["Lopez-Grant, Mario"]),
        ("50%", []),
    ],
)
def test_search(client, login_as, clinic, query, expected):
    login_as("np")
    response = client.get("/patients/", query_string={"q": query})
    assert response.status_code == 200
    assert names_in(response) == expected


def test_search_keys_follow_a_renamed_patient(client, login_as, make_patient):
    login_as("np")
    patient = make_patient(first_name="Ann", last_name="Marsh")
    patient.last_name = "Élan"
    db.session.commit()
    assert names_in(client.get("/patients/?q=elan")) == ["Élan, Ann"]
    assert names_in(client.get("/patients/?q=marsh")) == []


def test_search_is_answered_from_indexes(app):
    """No scan of the patient table, whatever is typed (SQLite's plan; PostgreSQL's planner
    may rightly prefer a scan of a small table)."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's EXPLAIN QUERY PLAN")

    def plan(text: str) -> list[str]:
        found = services.search_statement(text)
        statement = found.rows.params(**found.params, page_limit=25, page_offset=0)
        compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
        return [row[-1] for row in db.session.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}"))]

    for text in ("lop", "maria lopez", "IT-0001", "lopez, IT-0001", "1980-05-17"):
        details = plan(text)
        assert not [line for line in details if line.startswith("SCAN patient")], (text, details)
    # A name's matches are checked and sorted in the indexes of its two ranges: only the
    # page's rows are read, however many patients three letters match (Stop 37).
    for text in ("lop", "maria lopez"):
        details = plan(text)
        for index in ("ix_patient_first_name_search", "ix_patient_last_name_search"):
            assert [line for line in details if f"USING COVERING INDEX {index} " in line], details
        by_row = [n for n, line in enumerate(details) if "INTEGER PRIMARY KEY" in line]
        assert len(by_row) == 1 and details[by_row[0] - 1] == "SCAN page", details
    # The whole list is read in its order from an index: no sort of every patient.
    assert plan("") == ["SCAN patient USING INDEX ix_patient_name_order"]


def test_search_explains_an_impossible_date(client, login_as, clinic):
    login_as("np")
    page = client.get("/patients/?q=13/45/1980").get_data(as_text=True)
    assert "is not a valid date; write it as YYYY-MM-DD or MM/DD/YYYY" in page


@pytest.mark.parametrize("app_config", [{"PER_PAGE": 2}])
def test_search_paginates(client, login_as, make_patient):
    login_as("np")
    for n in range(5):
        make_patient(last_name=f"Page{n}")
    first = client.get("/patients/").get_data(as_text=True)
    assert "Page 1 of 3" in first and "Page0" in first and "Page2" not in first
    last = client.get("/patients/?page=3").get_data(as_text=True)
    assert "Page4" in last and "Page0" not in last
    assert client.get("/patients/?page=99").status_code == 200


@pytest.mark.parametrize("app_config", [{"PER_PAGE": 2}])
def test_the_whole_list_with_archived_patients_is_counted(client, login_as, make_patient):
    # No text and archived included: the count statement has no WHERE to name the table by.
    login_as("np")
    for n in range(3):
        make_patient(last_name=f"Page{n}")
    html = client.get("/patients/?archived=y").get_data(as_text=True)
    assert "3 patients." in html and "Page 1 of 2" in html


@pytest.mark.parametrize("app_config", [{"PER_PAGE": 2}])
def test_search_counts_up_to_its_limit_then_says_more_than(
    client, login_as, make_patient, monkeypatch
):
    login_as("np")
    monkeypatch.setattr(services, "COUNT_LIMIT", 3)
    for n in range(3):
        make_patient(last_name=f"Page{n}")
    html = client.get("/patients/?q=page").get_data(as_text=True)
    assert "3 patients matching “page”." in html and "Page 1 of 2" in html
    for n in range(3, 6):
        make_patient(last_name=f"Page{n}")
    html = client.get("/patients/?q=page").get_data(as_text=True)
    assert "More than 3 patients match “page”, by name." in html
    assert "Page 1</span>" in html and "Page 1 of" not in html
    assert "Page0" in html and "Page1" in html and "Page2" not in html
    assert 'href="/patients/?q=page&amp;page=2">Next</a>' in html
    third = client.get("/patients/?q=page&page=3").get_data(as_text=True)
    assert "Page4" in third and "Page5" in third and "Page 3</span>" in third
    # Past the count the pager cannot tell the last page: a full page offers the next one.
    assert 'href="/patients/?q=page&amp;page=4">Next</a>' in third
    searched = audit_rows("patient.searched")
    assert searched[-2].details["results"] == "more than 3"
    assert searched[0].details["results"] == 3


def test_admin_sees_no_patient_data(client, login_as, make_patient):
    patient = make_patient()
    login_as("admin")
    assert client.get("/patients/").status_code == 403
    assert client.get(f"/patients/{patient.id}").status_code == 403
    assert audit_rows("patient.viewed") == []
