"""No patient data in the session cookie (issue 9, defect 7): the cookie is signed, not
encrypted, so anyone holding it reads its flash messages."""

import os
from datetime import timedelta

import pytest
from flask import message_flashed

from infusion_tracker.timeutil import utcnow

NAME, MRN = ("Whitfield", "Dana"), "IT-000001"
GOOD_ALDRETE = {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2}


def cookie_contents(app, client) -> str:
    cookie = client.get_cookie("session")
    if cookie is None:
        return ""
    serializer = app.session_interface.get_signing_serializer(app)
    return repr(serializer.loads(cookie.value))


@pytest.fixture
def flashed(app):
    messages = []

    def remember(sender, message, category, **extra):
        messages.append(message)

    message_flashed.connect(remember, app)
    yield messages
    message_flashed.disconnect(remember, app)


def test_the_patient_flows_put_no_name_or_mrn_in_the_cookie(
    app, client, login_as, make_protocol, make_staff, flashed
):
    from infusion_tracker.extensions import db
    from infusion_tracker.models import InfusionSession, Patient

    nurse = login_as("np")
    physician = make_staff("physician")
    protocol = make_protocol()
    seen = []

    def post(path, **data):
        response = client.post(path, data=data)
        assert response.status_code == 302, (path, response.get_data(as_text=True)[:2000])
        seen.append(cookie_contents(app, client))
        return response

    post(
        "/patients/new",
        first_name=NAME[1],
        last_name=NAME[0],
        date_of_birth="1975-03-09",
        sex="female",
        indication="trd",
        medications="Sertraline 100 mg daily",
    )
    patient = db.session.query(Patient).one()
    assert patient.mrn == MRN
    post(f"/patients/{patient.id}/archive")
    post(f"/patients/{patient.id}/archive")  # refused: "already archived"
    post(f"/patients/{patient.id}/reactivate")
    post(
        f"/patients/{patient.id}/infusions/new",
        protocol_id=protocol.id,
        scheduled_for=(utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        room="Room 3",
        clinician_id=nurse.id,
        physician_id=physician.id,
        weight="70",
    )
    infusion = db.session.query(InfusionSession).one()
    now = utcnow()
    infusion.status = "recovery"
    infusion.checked_in_at = now - timedelta(minutes=100)
    infusion.started_at = now - timedelta(minutes=80)
    infusion.ended_at = now - timedelta(minutes=40)
    db.session.commit()
    post(
        f"/infusions/{infusion.id}/discharge",
        version=infusion.version,
        escort="Sam Driver",
        **GOOD_ALDRETE,
    )
    assert infusion.status == "discharged"

    assert len(flashed) >= 6, flashed
    for text in [*seen, *flashed]:
        for word in (*NAME, MRN):
            assert word not in text, text


# --- Files readable by their owner only (issue 9, defect 8) -----------------------------------


def mode(path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.skipif(
    os.environ.get("TEST_DATABASE_URL") is not None,
    reason="the database files are SQLite's",
)
def test_the_database_its_wal_and_shm_and_backups_are_owner_only(
    app, client, runner, login_as, tmp_path
):
    login_as("np")  # writes: the WAL and SHM exist now
    database = tmp_path / "test.db"
    for path in (database, tmp_path / "test.db-wal", tmp_path / "test.db-shm"):
        assert path.exists() and mode(path) == 0o600, (path, oct(mode(path)))
    backup = tmp_path / "copies" / "backup.db"
    result = runner.invoke(args=["backup", str(backup)])
    assert result.exit_code == 0, result.output
    assert mode(backup) == 0o600


def test_an_existing_database_file_is_made_owner_only_when_opened(tmp_path):
    from infusion_tracker import create_app
    from infusion_tracker.extensions import db
    from tests.conftest import base_config

    database = tmp_path / "old.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    app = create_app(base_config(f"sqlite:///{database}"))
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    assert mode(database) == 0o600


def test_the_instance_folder_and_secret_key_are_owner_only(app, tmp_path):
    from pathlib import Path

    from infusion_tracker import create_app
    from infusion_tracker.config import secret_key_from_instance
    from tests.conftest import base_config

    instance = Path(app.instance_path)
    instance.chmod(0o755)
    create_app(base_config(f"sqlite:///{tmp_path / 'other.db'}"))
    assert mode(instance) == 0o700
    secret_key_from_instance(str(tmp_path / "fresh"))
    assert mode(tmp_path / "fresh" / "secret_key") == 0o600
