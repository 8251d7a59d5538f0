"""Fixtures: a fresh app and database per test (SQLite file, or PostgreSQL when
TEST_DATABASE_URL is set), builders for staff/patients/infusions, and login helpers."""

import os
import re

import pytest
import sqlalchemy as sa
from flask import message_flashed
from flask.testing import FlaskClient

from infusion_tracker import create_app
from infusion_tracker.extensions import db

# The browser tests' fixtures (live server, Chromium page) live in their own module.
pytest_plugins = ["tests.browser_support"]

PASSWORD = "plum orbit lantern 42"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


def postgres_reachable(url: str) -> str | None:
    """None when the server answers, else the reason it does not."""
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # any driver or network error means "not reachable"
        return str(error).splitlines()[0]
    return None


def pytest_sessionstart(session):
    if TEST_DATABASE_URL:
        reason = postgres_reachable(TEST_DATABASE_URL)
        if reason:
            pytest.exit(f"TEST_DATABASE_URL is set but PostgreSQL is unreachable: {reason}", 2)


def base_config(database_url: str) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "AUDIT_KEY": "test-audit-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "WTF_CSRF_ENABLED": False,
        # Still scrypt, with a lower work factor so the suite stays quick.
        "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
        "CLINIC_TIMEZONE": "America/New_York",
        # Many sign-ins from one test client; tests/test_throttle.py switches it back on.
        "RATELIMIT_ENABLED": False,
    }


class FreshContextClient(FlaskClient):
    """Each request runs in its own app context, as in production: its own `g`, its own
    database session. Before it, the test's session commits, which saves pending rows,
    releases SQLite's write lock and expires loaded objects so they reload afterwards."""

    def open(self, *args, **kwargs):
        db.session.commit()
        kwargs.setdefault("buffered", True)
        with self.application.app_context():
            return super().open(*args, **kwargs)


def reset_schema() -> None:
    db.drop_all()
    db.create_all()


@pytest.fixture
def app_config():
    """Override in a test module (or parametrize) to change settings."""
    return {}


@pytest.fixture
def app(tmp_path, app_config):
    url = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'test.db'}"
    app = create_app({**base_config(url), **app_config})
    app.test_client_class = FreshContextClient
    with app.app_context():
        reset_schema()
        yield app
        db.session.remove()
        if TEST_DATABASE_URL:
            db.drop_all()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def no_patient_named_in_a_flash(request):
    """Issue 9, defect 7: the session cookie is signed, not encrypted, so no flash message
    of any flow the suite drives (lifecycle, readings, ledger, devices, ...) may name a
    patient or give an MRN. Checked after the test against every patient then stored."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    messages = []

    def remember(sender, message, category, **extra):
        messages.append(str(message))

    message_flashed.connect(remember, app)
    yield
    message_flashed.disconnect(remember, app)
    if not messages:
        return
    from infusion_tracker.models import Patient

    db.session.remove()  # the test's own open transaction would hold SQLite's write lock
    patients = db.session.execute(
        sa.select(Patient.first_name, Patient.last_name, Patient.mrn)
    ).all()
    words = {word for patient in patients for word in patient if word}
    for message in messages:
        named = [w for w in words if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", message)]
        assert not named, f"a flash names a patient ({named}): {message}"


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_staff(app):
    from infusion_tracker.auth.services import create_staff

    counter = {"n": 0}

    def make(
        role="np", username=None, password=PASSWORD, full_name=None, credentials=None, **extra
    ):
        counter["n"] += 1
        username = username or f"{role}{counter['n']}"
        defaults = {"admin": "MBA", "physician": "MD", "np": "APRN", "pa": "PA-C"}
        staff = create_staff(
            username,
            full_name or f"{role.upper()} Person {counter['n']}",
            role,
            password,
            credentials=defaults.get(role, "") if credentials is None else credentials,
        )
        for key, value in extra.items():
            setattr(staff, key, value)
        db.session.commit()
        return staff

    return make


def login(client, username, password=PASSWORD):
    return client.post("/login", data={"username": username, "password": password})


@pytest.fixture
def login_as(client, make_staff):
    """Create a staff member of the role and sign the test client in as them."""

    def do(role="np", **kwargs):
        staff = make_staff(role, **kwargs)
        response = login(client, staff.username, kwargs.get("password", PASSWORD))
        assert response.status_code == 302, response.get_data(as_text=True)
        return staff

    return do


def audit_rows(action: str | None = None) -> list:
    """Audit rows in the order written, optionally of one action."""
    from infusion_tracker.models import AuditEvent

    query = sa.select(AuditEvent).order_by(AuditEvent.id)
    if action:
        query = query.where(AuditEvent.action == action)
    return db.session.scalars(query).all()


def section(html: str, start_id: str) -> str:
    """The HTML of one <section id=...> of a page."""
    start = html.index(f'id="{start_id}"')
    return html[start : html.index("</section>", start)]


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert match, "no csrf_token in page"
    return match.group(1)


class QueryCounter:
    """Statements sent to the database, less transaction control (SQLite's BEGIN, PostgreSQL's
    audit-chain lock), so a page's count is the same on both backends."""

    CONTROL = ("BEGIN", "SELECT pg_advisory_xact_lock")

    def __init__(self):
        self.statements: list[str] = []

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().startswith(self.CONTROL):
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(app):
    """Usage: with count_queries() as counter: ...; counter.count"""
    from contextlib import contextmanager

    @contextmanager
    def counting():
        counter = QueryCounter()
        engine = db.engine
        sa.event.listen(engine, "before_cursor_execute", counter)
        try:
            yield counter
        finally:
            sa.event.remove(engine, "before_cursor_execute", counter)

    return counting


@pytest.fixture
def make_protocol(app):
    from infusion_tracker.models import Protocol
    from infusion_tracker.protocols.services import DEFAULT_PROTOCOL

    def make(**fields):
        values = dict(DEFAULT_PROTOCOL)
        values.update(fields)
        protocol = Protocol(**values)
        db.session.add(protocol)
        db.session.commit()
        return protocol

    return make


@pytest.fixture
def make_patient(app):
    from datetime import date

    from infusion_tracker.models import Patient

    counter = {"n": 0}

    def make(**fields):
        counter["n"] += 1
        values = {
            "mrn": f"T{counter['n']:05d}",
            "first_name": "Pat",
            "last_name": f"Example{counter['n']}",
            "date_of_birth": date(1980, 5, 17),
            "sex": "female",
            "indication": "trd",
            "allergies": "Penicillin (rash)",
        }
        values.update(fields)
        patient = Patient(**values)
        db.session.add(patient)
        db.session.commit()
        return patient

    return make


@pytest.fixture
def make_infusion(app, make_staff, make_patient, make_protocol):
    """A planned session; pass status/started_at etc. to place it further along."""
    from datetime import timedelta

    from infusion_tracker.models import InfusionSession
    from infusion_tracker.timeutil import utcnow

    def make(patient=None, protocol=None, clinician=None, physician=None, **fields):
        patient = patient or make_patient()
        protocol = protocol or make_protocol()
        clinician = clinician or make_staff("np")
        physician = physician or make_staff("physician")
        number = len(patient.infusions) + 1
        values = {
            "patient": patient,
            "series_number": number,
            "protocol": protocol,
            "room": "Room 1",
            "status": "planned",
            "scheduled_for": utcnow() + timedelta(minutes=5),
            "clinician": clinician,
            "physician": physician,
            "indication": patient.indication,
            "weight_kg": 70.0,
            "drug": protocol.drug,
            "concentration_mg_per_ml": protocol.concentration_mg_per_ml,
            "dose_mg_per_kg": protocol.dose_mg_per_kg,
            "total_mg": round(70.0 * protocol.dose_mg_per_kg, 1),
            "duration_min": protocol.infusion_minutes,
        }
        values.update(fields)
        infusion = InfusionSession(**values)
        db.session.add(infusion)
        db.session.commit()
        return infusion

    return make
