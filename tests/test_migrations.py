"""The migrations build the same schema as the models, on SQLite and on PostgreSQL, and the
first run gets the default protocol and the append-only audit table."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from infusion_tracker import create_app
from infusion_tracker.extensions import db
from tests.conftest import TEST_DATABASE_URL, base_config


@pytest.fixture
def migrated_app(tmp_path):
    url = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'migrated.db'}"
    app = create_app(base_config(url))
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade()
        yield app
        db.session.remove()
        downgrade(revision="base")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        db.engine.dispose()


def test_migrations_match_the_models(migrated_app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True}
        )
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_first_run_has_the_default_protocol(migrated_app):
    from infusion_tracker.models import Protocol
    from infusion_tracker.protocols.services import DEFAULT_PROTOCOL, ensure_default_protocol

    protocol = db.session.scalar(sa.select(Protocol))
    # The migration writes its values out; they must match what the code calls the default.
    assert {key: getattr(protocol, key) for key in DEFAULT_PROTOCOL} == DEFAULT_PROTOCOL
    assert protocol.version == 1 and protocol.is_current
    assert ensure_default_protocol() is protocol


def test_migrated_audit_table_refuses_update_and_delete(migrated_app):
    from infusion_tracker import audit

    audit.record("test.event", details={"n": 1})
    db.session.commit()
    for statement in ("UPDATE audit_event SET action = 'x'", "DELETE FROM audit_event"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            db.session.execute(sa.text(statement))
        db.session.rollback()
    assert audit.verify_chain().ok


def test_migrated_patient_list_version_moves_with_every_write_to_a_patient(migrated_app):
    """0018's triggers, as models.PATIENT_LIST_TRIGGERS builds them for the tests."""
    import importlib

    from infusion_tracker.models import PATIENT_LIST_TRIGGERS
    from tests.test_search_kept import INSERT, elsewhere, list_version

    migration = importlib.import_module(
        "infusion_tracker.migrations.versions.0018_patient_list_version"
    )
    assert migration.TRIGGERS == PATIENT_LIST_TRIGGERS
    versions = [list_version()]
    elsewhere(INSERT, mrn="M-1", first="Ann", last="Marsh", first_key="ann", last_key="marsh",
              born="1970-01-02", active=True, now="2026-01-01 00:00:00")
    versions.append(list_version())
    elsewhere("UPDATE patient SET notes = 'x'")
    versions.append(list_version())
    elsewhere("DELETE FROM patient")
    versions.append(list_version())
    assert versions == sorted(set(versions)), versions


# --- 0002: vocabulary CHECK constraints --------------------------------------------------


def _check_constraints(bind) -> dict[str, dict[str, str]]:
    inspector = sa.inspect(bind)
    return {
        table: {ck["name"]: ck["sqltext"] for ck in inspector.get_check_constraints(table)}
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


def test_migrated_check_constraints_are_the_models(migrated_app):
    # compare_metadata does not look at CHECK constraints, so compare them here.
    migrated = _check_constraints(db.engine)
    expected = {
        table.name: {
            ck.name: str(ck.sqltext)
            for ck in table.constraints
            if isinstance(ck, sa.CheckConstraint) and not ck.name.startswith("ck_%")
        }
        for table in db.metadata.sorted_tables
    }
    assert {t: set(cks) for t, cks in migrated.items()} == {
        t: set(cks) for t, cks in expected.items()
    }
    assert "ck_reading_phase" in migrated["reading"]
    if db.engine.dialect.name == "sqlite":  # PostgreSQL rewrites the text; SQLite keeps it
        assert migrated == expected


def _chart_a_session():
    """A discharged session with a reading pair, an infusion event, an adverse event and a
    score, written through the models as the app writes them."""
    from datetime import UTC, datetime, timedelta

    from infusion_tracker.models import (
        AdverseEvent,
        Assessment,
        InfusionSession,
        Reading,
        UTCDateTime,
    )

    start = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    # staff and protocol as they were at 0001 (0006_harden adds columns to both models).
    staff_at_0001 = sa.table(
        "staff", sa.column("id"), sa.column("username"), sa.column("full_name"),
        sa.column("credentials"), sa.column("role"), sa.column("active"),
        sa.column("password_hash"), sa.column("failed_logins"),
        sa.column("must_change_password"), sa.column("session_token"),
        sa.column("created_at", UTCDateTime()),
    )  # fmt: skip
    db.session.execute(
        staff_at_0001.insert().values(
            username="np", full_name="Nina Park", credentials="", role="np", active=True,
            password_hash="x", failed_logins=0, must_change_password=False,
            session_token="t" * 32, created_at=start,
        )
    )  # fmt: skip
    nurse_id = db.session.scalar(sa.select(staff_at_0001.c.id))
    protocol_id = db.session.scalar(sa.select(sa.table("protocol", sa.column("id")).c.id))
    # patient as it was at 0001 (0011_perf_search adds the name keys).
    patient_at_0001 = sa.table(
        "patient", sa.column("id"), sa.column("mrn"), sa.column("first_name"),
        sa.column("last_name"), sa.column("date_of_birth", sa.Date()), sa.column("sex"),
        sa.column("indication"), sa.column("indication_other"), sa.column("allergies"),
        sa.column("medications"), sa.column("emergency_contact"), sa.column("notes"),
        sa.column("active"), sa.column("created_at", UTCDateTime()), sa.column("version"),
    )  # fmt: skip
    db.session.execute(
        patient_at_0001.insert().values(
            mrn="M1", first_name="Ada", last_name="Lowe", sex="female", indication="trd",
            date_of_birth=datetime(1980, 1, 1).date(), indication_other="", allergies="",
            medications="", emergency_contact="", notes="", active=True, created_at=start,
            version=1,
        )
    )  # fmt: skip
    patient_id = db.session.scalar(sa.select(patient_at_0001.c.id))
    infusion = InfusionSession(
        patient_id=patient_id, series_number=1, protocol_id=protocol_id,
        status="discharged", scheduled_for=start, clinician_id=nurse_id, physician_id=nurse_id,
        indication="trd", weight_kg=70, concentration_mg_per_ml=1, dose_mg_per_kg=0.5,
        duration_min=40, pregnancy_status="", aldrete_total=10,
    )  # fmt: skip
    db.session.add(infusion)
    db.session.flush()
    # Readings through the table, naming only columns 0001 has (0007 adds submission_key).
    readings = Reading.__table__
    db.session.execute(readings.insert().values(
        infusion_id=infusion.id, taken_at=start, phase="baseline", systolic=128, diastolic=80,
        heart_rate=72, rhythm="nsr", avpu="A", recorded_by_id=nurse_id,
    ))  # fmt: skip
    critical_at = start + timedelta(minutes=20)
    critical_id = db.session.execute(readings.insert().values(
        infusion_id=infusion.id, taken_at=critical_at, phase="infusion",
        systolic=184, diastolic=96, moaas=4, pain=2, severity="critical",
        flags=[{"field": "systolic", "level": "critical", "message": "SBP 184 ≥ 180"}],
        critical_action="adverse_event", recorded_by_id=nurse_id,
    )).inserted_primary_key[0]  # fmt: skip
    # infusion_event as it was at 0001 (later revisions add columns the model now has).
    event_at_0001 = sa.table(
        "infusion_event", sa.column("infusion_id"), sa.column("kind"), sa.column("reason"),
        sa.column("occurred_at", UTCDateTime()), sa.column("recorded_by_id"),
        sa.column("created_at", UTCDateTime()),
    )  # fmt: skip
    db.session.execute(
        event_at_0001.insert().values(
            infusion_id=infusion.id, kind="start", reason="", occurred_at=start,
            recorded_by_id=nurse_id, created_at=start,
        )
    )  # fmt: skip
    db.session.execute(AdverseEvent.__table__.insert().values(  # 0007 adds a column
        infusion_id=infusion.id, onset_at=critical_at, event_type="hypertension",
        severity="moderate", infusion_action="slowed", reading_id=critical_id,
        recorded_by_id=nurse_id,
    ))  # fmt: skip
    db.session.add_all([
        Assessment(
            patient_id=patient_id, infusion=infusion, instrument="phq9", score=18,
            items=[2] * 9, taken_at=start, recorded_by_id=nurse_id,
        ),
    ])  # fmt: skip
    db.session.commit()
    db.session.remove()  # no transaction left open (on SQLite it would hold the write lock)


SNAPSHOT = {
    "infusion_session": "SELECT id, status, indication, pregnancy_status, aldrete_total "
    "FROM infusion_session",
    "reading": "SELECT id, infusion_id, phase, systolic, rhythm, avpu, moaas, severity, "
    "critical_action FROM reading ORDER BY id",
    "infusion_event": "SELECT id, infusion_id, kind FROM infusion_event",
    "adverse_event": "SELECT id, reading_id, event_type, severity, infusion_action "
    "FROM adverse_event",
    "assessment": "SELECT id, infusion_id, instrument, score FROM assessment",
    "patient": "SELECT id, mrn, sex, indication FROM patient",
    "audit_event": "SELECT count(*) FROM audit_event",
}


def _snapshot():
    with db.engine.connect() as conn:
        return {name: conn.execute(sa.text(sql)).all() for name, sql in SNAPSHOT.items()}


@pytest.fixture
def app_at_0001(tmp_path):
    url = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'old.db'}"
    app = create_app(base_config(url))
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(revision="0001")
        yield app
        db.session.remove()
        downgrade(revision="base")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        db.engine.dispose()


def test_upgrade_from_0001_keeps_every_row(app_at_0001):
    from infusion_tracker import audit

    _chart_a_session()
    audit.record("test.before_upgrade", details={"n": 1})
    db.session.commit()
    before = _snapshot()
    assert len(before["reading"]) == 2 and before["adverse_event"] and before["assessment"]
    db.session.remove()

    upgrade()

    assert _snapshot() == before
    assert "ck_reading_phase" in _check_constraints(db.engine)["reading"]
    with db.engine.connect() as conn:  # 0011 computed the search keys of existing patients
        keys = conn.execute(sa.text("SELECT first_name_key, last_name_key FROM patient")).all()
    assert [tuple(row) for row in keys] == [("ada", "lowe")]
    # The rebuilt tables kept their foreign keys and the audit table kept its triggers.
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text("UPDATE adverse_event SET reading_id = 999"))
        conn.rollback()
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            conn.execute(sa.text("DELETE FROM audit_event"))
        conn.rollback()
    assert audit.verify_chain().ok


def test_upgrade_refuses_rows_outside_a_vocabulary_and_changes_nothing(app_at_0001, capfd):
    _chart_a_session()
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE reading SET phase = 'lunch' WHERE phase = 'baseline'"))
    before = _snapshot()

    with pytest.raises(SystemExit):  # flask-migrate logs the error and exits 1
        upgrade()
    message = capfd.readouterr().err
    assert "must be corrected by hand" in message
    assert "reading.phase: 1 row(s) outside" in message
    assert _snapshot() == before
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    assert "ck_reading_phase" not in _check_constraints(db.engine).get("reading", {})


OUT_OF_VOCABULARY = [
    "UPDATE infusion_session SET status = 'bogus'",
    "UPDATE infusion_session SET pregnancy_status = 'maybe'",
    "UPDATE infusion_session SET aldrete_total = 11",
    "UPDATE reading SET phase = 'lunch'",
    "UPDATE reading SET severity = 'severe'",
    "UPDATE reading SET rhythm = 'wobbly'",
    "UPDATE reading SET avpu = 'a'",
    "UPDATE reading SET moaas = 6",
    "UPDATE reading SET critical_action = 'ignored'",
    "UPDATE infusion_event SET kind = 'bolus'",
    "UPDATE adverse_event SET severity = 'critical'",
    "UPDATE adverse_event SET event_type = 'boredom'",
    "UPDATE adverse_event SET infusion_action = 'doubled'",
    "UPDATE assessment SET score = 28",
    "UPDATE assessment SET instrument = 'bdi'",
    "UPDATE patient SET sex = 'F'",
    "UPDATE protocol SET indication = 'anxiety'",
]


def test_the_database_refuses_values_outside_the_vocabularies(migrated_app):
    _chart_a_session()
    with db.engine.connect() as conn:
        for statement in OUT_OF_VOCABULARY:
            with pytest.raises(sa.exc.IntegrityError):
                conn.execute(sa.text(statement))
                pytest.fail(f"accepted: {statement}")
            conn.rollback()
        # Blank stays allowed where "not assessed" is blank; NULL where not measured.
        conn.execute(sa.text("UPDATE reading SET rhythm = '', avpu = '', moaas = NULL"))
        conn.rollback()


# --- 0008: the TOTP key sealed at rest ----------------------------------------------------


def test_0008_seals_clear_totp_keys_and_downgrade_opens_them(migrated_app):
    from infusion_tracker.sealing import unseal

    key = migrated_app.config["TOTP_KEY"]
    db.session.commit()
    downgrade(revision="0007_reading_submission_key")
    clear = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    db.session.execute(sa.text(
        "INSERT INTO staff (username, full_name, credentials, role, password_hash, active, "
        "must_change_password, failed_logins, session_token, created_at, totp_secret) VALUES "
        "('md', 'M D', '', 'physician', 'x', true, false, 0, 'tok', '2026-01-01', :secret)"),
        {"secret": clear})
    db.session.commit()
    upgrade()
    sealed = db.session.execute(sa.text("SELECT totp_sealed FROM staff")).scalar_one()
    assert clear not in sealed and unseal(sealed, key) == clear
    db.session.commit()  # SQLite: release the write lock the migration needs
    downgrade(revision="0007_reading_submission_key")
    assert db.session.execute(sa.text("SELECT totp_secret FROM staff")).scalar_one() == clear
    db.session.execute(sa.text("DELETE FROM staff"))
    db.session.commit()
    upgrade()
