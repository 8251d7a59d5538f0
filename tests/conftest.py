"""Fixtures: a fresh app and database per test (SQLite file, or PostgreSQL when
TEST_DATABASE_URL is set), builders for staff/patients/infusions, and login helpers."""

import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import message_flashed
from flask.testing import FlaskClient

from infusion_tracker import create_app
from infusion_tracker.database import TRANSACTION_CONTROL
from infusion_tracker.extensions import db
from infusion_tracker.timeutil import clinic_today, from_clinic

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
        "TOTP_KEY": "test-totp-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "WTF_CSRF_ENABLED": False,
        # Still scrypt, with a lower work factor so the suite stays quick.
        "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
        "CLINIC_TIMEZONE": "America/New_York",
        # Many sign-ins from one test client; tests/test_throttle.py switches it back on.
        "RATELIMIT_ENABLED": False,
        # Per test (the default file in instance/ would carry counts from one test to the next).
        "RATELIMIT_STORAGE_URI": "memory://",
        # A checkpoint thread per test database would outlive its test (tests/test_checkpoint.py
        # turns it on; the live suite's gunicorn runs with it).
        "SQLITE_CHECKPOINT_SECONDS": None,
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


@pytest.fixture(autouse=True)
def every_change_to_a_sessions_rows_makes_a_new_version(request):
    """Issue 8: what a worker keeps drawn (a session's readings table, the patient and session
    pages) is found by the session's version, so every request that adds, changes or voids a
    row of a session (a reading, event, adverse event, score, ledger entry or recorded ledger
    reason) must make a new version of that session in the same transaction
    (guards.begin_row_change). An addendum, a later fact on a signed session, leaves the
    version as signed: the session page's fingerprint names addenda (infusions/drawn.py).
    Checked at every commit of every request the suite drives."""
    if "app" not in request.fixturenames:
        yield
        return
    from flask import has_request_context

    from infusion_tracker.models import (
        AdverseEvent,
        Assessment,
        InfusionEvent,
        InfusionSession,
        LedgerDiscrepancy,
        LedgerEntry,
        Reading,
    )

    session_rows = (Reading, InfusionEvent, AdverseEvent, Assessment, LedgerEntry,
                    LedgerDiscrepancy)
    broken: list[str] = []

    def written(session, obj) -> bool:
        return obj in session.new or session.is_modified(obj, include_collections=False)

    def seen(session) -> tuple[set[int], set[int]]:
        """(sessions whose rows changed, sessions given a new version) in this ORM session's
        transaction: per ORM session, since requests in threads commit side by side."""
        return session.info.setdefault("rows_changed", set()), session.info.setdefault(
            "versioned", set()
        )

    def after_flush(session, context):
        if not has_request_context():
            return
        changed, versioned = seen(session)
        for obj in [*session.new, *session.dirty]:
            if isinstance(obj, InfusionSession) and written(session, obj):
                versioned.add(obj.id)
            elif isinstance(obj, session_rows) and obj.infusion_id and written(session, obj):
                changed.add(obj.infusion_id)

    def executed(state):
        """The same for a row or a version written by a statement of its own (as a reading
        charted from the session page is: guards.new_version, readings._added)."""
        if not has_request_context() or not (state.is_insert or state.is_update):
            return
        changed, versioned = seen(state.session)
        table, values = state.statement.table, state.parameters or {}
        if state.is_update and table is InfusionSession.__table__:
            versioned.add(values["infusion_id"])
        elif state.is_insert and table in session_tables:
            changed.add(values["infusion_id"])

    def before_commit(session):
        changed, versioned = seen(session)
        if changed - versioned:
            broken.append(f"rows of sessions {sorted(changed - versioned)} changed, no new version")

    def after_transaction_end(session, transaction):
        if transaction.parent is None:
            session.info.pop("rows_changed", None)
            session.info.pop("versioned", None)

    session_tables = tuple(model.__table__ for model in session_rows)
    hooks = (
        ("after_flush", after_flush),
        ("do_orm_execute", executed),
        ("before_commit", before_commit),
        ("after_transaction_end", after_transaction_end),
    )
    for name, hook in hooks:
        sa.event.listen(sa.orm.Session, name, hook)
    yield
    for name, hook in hooks:
        sa.event.remove(sa.orm.Session, name, hook)
    assert not broken, broken


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


def sqlite_plan(compiled, values: dict) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of a compiled statement, one line a step, with `values`
    bound as parameters, as the app sends it (not written in: the planner may choose
    otherwise for a literal). Skips the test on any other database."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's EXPLAIN QUERY PLAN")
    parameters = tuple(values[name] for name in compiled.positiontup)
    rows = db.session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", parameters)
    return [row[-1] for row in rows]


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
    """Statements sent to the database, less transaction control (SQLite's BEGIN and its
    read-only switch, PostgreSQL's audit-chain lock), so a page's count is the same on both
    backends."""

    def __init__(self):
        self.statements: list[str] = []

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().startswith(TRANSACTION_CONTROL):
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


# --- Builders that go through the services (issue 7: tests build only real states) ---------

VITALS = {"systolic": 128, "diastolic": 78, "heart_rate": 72, "resp_rate": 14, "spo2": 98}
CHECKLIST = {
    "consent_on_file": True,
    "npo_confirmed": True,
    "escort_name": "Sam Escort",
    "pregnancy_status": "not_applicable",
    "med_allergy_review_done": True,
}
NO_BASELINE_OVERRIDE = "Test: started without a baseline reading"
ALDRETE = {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2}


def add_reading(infusion, by=None, *, at=None, minutes_ago=0, phase="infusion", **values):
    """Chart a reading through infusions.readings.record_reading (validated, flags and NEWS2
    computed, audited), at `at` or `minutes_ago`; VITALS unless a value is given (None leaves
    it out). A baseline after the start is confirmed, as the form asks."""
    from infusion_tracker.infusions.readings import record_reading
    from infusion_tracker.timeutil import utcnow

    data = {**VITALS, **values, "phase": phase}
    data["taken_at"] = at or utcnow() - timedelta(minutes=minutes_ago)
    if phase == "baseline" and infusion.started_at:
        data["confirm_baseline"] = True
    reading = record_reading(infusion, data, by or infusion.clinician)
    db.session.commit()
    return reading


def run_session(
    infusion,
    until="infusing",
    *,
    started_minutes_ago=10,
    checked_in_minutes_ago=None,
    infused_minutes=None,
    by=None,
    baseline=True,
):
    """Take a planned session through infusions.lifecycle at past times: check in (30 minutes
    before the start unless told), a baseline, start (a start event at the ordered rate), and
    on to `until` (checked_in, infusing, recovery, discharged, or signed by its physician).
    `baseline=False` charts no reading: the physician overrides the start gate instead. Stops
    after `infused_minutes` (default the planned duration, or now if sooner) and discharges
    after the minimum observation. Times are relative to now."""
    from infusion_tracker.infusions import lifecycle
    from infusion_tracker.timeutil import utcnow

    by = by or infusion.clinician
    now = utcnow()
    started = now - timedelta(minutes=started_minutes_ago)
    checked_in = now - timedelta(minutes=checked_in_minutes_ago or started_minutes_ago + 30)
    lifecycle.check_in(infusion, by, at=checked_in)
    db.session.commit()
    if until == "checked_in":
        return infusion
    # The checklist items the session does not have yet, completed through the details form.
    missing = {name: value for name, value in CHECKLIST.items() if not getattr(infusion, name)}
    if missing:
        lifecycle.update_infusion(infusion, missing, by, infusion.version)
        db.session.commit()
    if baseline:
        # The baseline a minute after check-in, so a test's own baseline is the newer one.
        add_reading(infusion, by, at=checked_in + timedelta(minutes=1), phase="baseline")
        lifecycle.start_infusion(infusion, by, at=started)
    else:
        # No reading at all: the supervising physician overrides the start gate, with a reason.
        lifecycle.start_infusion(
            infusion, infusion.physician, at=started, override_reason=NO_BASELINE_OVERRIDE
        )
    db.session.commit()
    if until == "infusing":
        return infusion
    ran = (
        min(infusion.duration_min, started_minutes_ago)
        if infused_minutes is None
        else infused_minutes
    )
    lifecycle.stop_infusion(
        infusion,
        by,
        reason="" if ran >= infusion.duration_min else "Test: stopped early",
        at=started + timedelta(minutes=ran),
    )
    db.session.commit()
    if until == "recovery":
        return infusion
    lifecycle.discharge(
        infusion,
        {
            **ALDRETE,
            "escort": "Sam Escort",
            "at": infusion.ended_at + timedelta(minutes=infusion.protocol.min_observation_min),
        },
        by,
    )
    db.session.commit()
    if until == "signed":
        from infusion_tracker.ledger.services import explain_session
        from infusion_tracker.review.services import sign_infusion

        # The pump ran without a ledger draw: the physician records why, then signs.
        explain_session(infusion, infusion.physician, "Test session without a drawn vial.")
        sign_infusion(
            infusion, infusion.physician, "Reviewed.", infusion.version, password_required=False
        )
        db.session.commit()
        return infusion
    assert infusion.status == until, f"run_session stops at {until!r}"
    return infusion


@pytest.fixture
def nurse(login_as):
    """The NP the test client is signed in as (override to chart as someone not signed in)."""
    return login_as("np")


@pytest.fixture
def charted_baseline():
    """Whether `infusing` charts its baseline; a module whose tests count readings from none
    overrides this with False (the start gate is then overridden by the physician)."""
    return True


@pytest.fixture
def infusing(make_infusion, nurse, charted_baseline):
    """The nurse's session, infusing for 12 minutes, started through the lifecycle (check-in
    42 minutes ago, a baseline, a start event at the ordered rate)."""
    return run_session(
        make_infusion(clinician=nurse),
        "infusing",
        started_minutes_ago=12,
        baseline=charted_baseline,
    )


# --- A demo-shaped session: a 40-minute infusion, paused for 5 minutes --------------------
# (the chart geometry tests, in pytest and in Chromium, measure it)


@dataclass
class Scenario:
    infusion_id: int
    patient_id: int
    nurse: str  # username; the password is conftest.PASSWORD
    day: date
    # (clinic-local time, systolic, diastolic, heart rate, SpO2) of each reading drawn.
    readings: list[tuple[datetime, int, int, int, int]]
    voided_at: datetime
    events: list[datetime]  # start, pause, resume, stop
    critical_at: datetime
    phq9: list[tuple[datetime, int]]
    gad7: list[tuple[datetime, int]]


def later_today() -> datetime:
    """A time later in the clinic's day than now (or its last minute): a session planned then is
    on today's board whatever hour the suite runs."""
    from infusion_tracker.timeutil import clinic_day_bounds, utcnow

    now, end = utcnow(), clinic_day_bounds(clinic_today())[1]
    return max(now, min(now + timedelta(hours=1), end - timedelta(minutes=1)))


def local_time(day: date, hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return from_clinic(datetime(day.year, day.month, day.day, hour, minute))


DEMO_VITALS = [  # time, phase, SBP, DBP, HR, SpO2
    ("09:50", "baseline", 122, 78, 72, 98),
    ("10:05", "infusion", 128, 80, 76, 98),
    ("10:10", "infusion", 134, 83, 79, 97),
    ("10:15", "infusion", 138, 85, 80, 97),
    ("10:20", "infusion", 150, 90, 84, 96),
    ("10:25", "infusion", 186, 104, 96, 95),  # critical: SBP at or above 180
    ("10:30", "infusion", 158, 94, 88, 96),
    ("10:35", "infusion", 146, 88, 84, 97),
    ("10:40", "infusion", 140, 86, 80, 98),
    ("10:50", "recovery", 132, 82, 76, 98),
    ("10:55", "recovery", 126, 80, 74, 99),
]
VOIDED = ("10:22", "infusion", 212, 60, 130, 88)  # entered in error, then voided


@pytest.fixture
def scenario(app, login_as, make_staff, make_patient, make_protocol):
    """A finished session three days ago, charted as the demo does, plus outcome scores."""
    from infusion_tracker.extensions import db
    from infusion_tracker.infusions import lifecycle, readings
    from infusion_tracker.patients.assessments import record_assessment

    nurse = login_as("np")
    physician = make_staff("physician")
    patient = make_patient()
    protocol = make_protocol()
    day = clinic_today() - timedelta(days=3)
    infusion = lifecycle.plan_infusion(
        patient,
        {
            "protocol_id": protocol.id,
            "clinician_id": nurse.id,
            "physician_id": physician.id,
            "scheduled_for": local_time(day, "09:40"),
            "room": "Room 2",
            "weight_kg": 70.0,
            "duration_min": 40,
        },
        nurse,
    )
    lifecycle.check_in(infusion, nurse, at=local_time(day, "09:40"))
    lifecycle.update_infusion(
        infusion,
        {
            "consent_on_file": True,
            "npo_confirmed": True,
            "escort_name": "Spouse",
            "pregnancy_status": "negative",
            "med_allergy_review_done": True,
        },
        nurse,
        infusion.version,
    )

    def chart(hhmm, phase, sbp, dbp, hr, spo2):
        values = {
            "taken_at": local_time(day, hhmm),
            "phase": phase,
            "systolic": sbp,
            "diastolic": dbp,
            "heart_rate": hr,
            "resp_rate": 14,
            "spo2": spo2,
            "rhythm": "nsr",
            "avpu": "A",
            "moaas": 5,
        }
        return readings.record_reading(infusion, values, nurse)

    events = [local_time(day, t) for t in ("10:00", "10:12", "10:17", "10:45")]
    chart(*DEMO_VITALS[0])
    lifecycle.start_infusion(infusion, nurse, at=events[0])
    for row in DEMO_VITALS[1:3]:
        chart(*row)
    lifecycle.pause_infusion(infusion, nurse, "Patient asked for a break", at=events[1])
    chart(*DEMO_VITALS[3])
    lifecycle.resume_infusion(infusion, nurse, at=events[2])
    chart(*DEMO_VITALS[4])
    wrong = chart(*VOIDED)
    readings.void_reading(wrong, nurse, "Entered on the wrong patient")
    for row in DEMO_VITALS[5:9]:
        chart(*row)
    lifecycle.stop_infusion(infusion, nurse, at=events[3])
    for row in DEMO_VITALS[9:]:
        chart(*row)

    phq9 = [(local_time(day - timedelta(days=7 * n), "09:30"), s) for n, s in ((6, 21), (3, 15))]
    phq9 += [(local_time(day, "09:30"), 11)]
    gad7 = [(local_time(day - timedelta(days=7 * n), "09:31"), s) for n, s in ((6, 14), (0, 9))]
    for instrument, scores in (("phq9", phq9), ("gad7", gad7)):
        for taken_at, score in scores:
            record_assessment(
                patient, instrument=instrument, score=score, actor=nurse, taken_at=taken_at
            )
    built = Scenario(
        infusion_id=infusion.id,
        patient_id=patient.id,
        nurse=nurse.username,
        day=day,
        readings=[(local_time(day, t), s, d, h, o) for t, _phase, s, d, h, o in DEMO_VITALS],
        voided_at=local_time(day, VOIDED[0]),
        events=events,
        critical_at=local_time(day, "10:25"),
        phq9=phq9,
        gad7=gad7,
    )
    # SQLite: commit after reading the ids, so this thread holds no lock the live server needs.
    db.session.commit()
    return built
