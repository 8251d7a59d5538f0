"""A page of patient search results is kept under the patient list's version, which the
database itself moves on every write to a patient (models.PatientListVersion, triggers), so a
search typed again reads one number instead of its matches, and never shows a list that
changed: a patient registered, renamed or archived through the app, or written straight to the
table as an import would."""

import re
import time
from datetime import date

import sqlalchemy as sa

from infusion_tracker.extensions import db
from infusion_tracker.models import PatientListVersion


def names_in(response) -> list[str]:
    assert response.status_code == 200
    return re.findall(
        r'<td><a href="/patients/\d+">([^<]+)</a></td>', response.get_data(as_text=True)
    )


def list_version() -> int:
    db.session.rollback()
    version = db.session.get(PatientListVersion, 1).version
    db.session.rollback()  # outside a request SQLite's transaction holds the write lock
    return version


def elsewhere(statement: str, **params) -> None:
    """A write by another connection, not through the app's models (an import, a script)."""
    with db.engine.begin() as connection:
        connection.execute(sa.text(statement), params)


INSERT = (
    "INSERT INTO patient (mrn, first_name, last_name, first_name_key, last_name_key, "
    "date_of_birth, sex, indication, indication_other, allergies, medications, "
    "emergency_contact, notes, active, created_at, version) VALUES (:mrn, :first, :last, "
    ":first_key, :last_key, :born, 'female', 'trd', '', '', '', '', '', :active, :now, 1)"
)


def test_a_search_typed_again_reads_the_list_version_not_its_matches(
    client, login_as, make_patient, count_queries
):
    login_as("np")
    for number in range(3):
        make_patient(first_name="Ann", last_name=f"Smith{number}")
    with count_queries() as first:
        assert len(names_in(client.get("/patients/?q=smi"))) == 3
    with count_queries() as again:
        assert len(names_in(client.get("/patients/?q=smi"))) == 3
    # Signed-in user, the list's version, the page, its count, the audit row (the chain's
    # last row and the insert); again without the page and its count.
    assert (first.count, again.count) == (6, 4)
    assert any("FROM patient" in statement for statement in first.statements)
    assert not any("FROM patient " in statement for statement in again.statements)


def test_kept_results_follow_every_write_to_a_patient(client, login_as, make_patient):
    login_as("np")
    make_patient(first_name="Ann", last_name="Smith", mrn="S-1")
    assert names_in(client.get("/patients/?q=smi")) == ["Smith, Ann"]

    # Written straight to the table, as an import would: no model, no service.
    elsewhere(INSERT, mrn="S-2", first="Bea", last="Smithers", first_key="bea",
              last_key="smithers", born=date(1970, 1, 2), active=True, now="2026-01-01 00:00:00")
    assert names_in(client.get("/patients/?q=smi")) == ["Smith, Ann", "Smithers, Bea"]

    elsewhere("UPDATE patient SET last_name = 'Smythe', last_name_key = 'smythe' "
              "WHERE mrn = 'S-2'")
    assert names_in(client.get("/patients/?q=smi")) == ["Smith, Ann"]
    assert names_in(client.get("/patients/?q=smy")) == ["Smythe, Bea"]

    elsewhere("UPDATE patient SET active = :no WHERE mrn = 'S-1'", no=False)
    assert names_in(client.get("/patients/?q=smi")) == []

    elsewhere("DELETE FROM patient WHERE mrn = 'S-2'")
    assert names_in(client.get("/patients/?q=smy")) == []


def test_the_list_version_moves_on_and_never_repeats(app, make_patient):
    """Past one more, it moves to the time of the write (microseconds): a database restored
    from an older backup does not reach a version already kept, for other rows, again."""
    before = list_version()
    make_patient(last_name="Marsh")
    after = list_version()
    assert after > before
    assert abs(after - time.time() * 1_000_000) < 120 * 1_000_000
    make_patient(last_name="Marsh")
    assert list_version() > after
