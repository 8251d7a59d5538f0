"""The permission sweep: every endpoint in app.url_map, for anonymous and each role, gets
the expected answer. An endpoint missing from EXPECTED fails, so a new route cannot ship
without a decision about who may use it."""

import pytest

from tests.conftest import PASSWORD, login

PUBLIC = "public"
ANY_STAFF = frozenset({"admin", "physician", "np", "pa"})
CLINICIANS = frozenset({"physician", "np", "pa"})
PHYSICIAN = frozenset({"physician"})
ADMIN = frozenset({"admin"})

# endpoint -> PUBLIC, or the roles allowed to use it (everyone else gets 403).
EXPECTED = {
    "static": PUBLIC,
    "auth.login": PUBLIC,
    "auth.setup": PUBLIC,
    "main.healthz": PUBLIC,
    "auth.logout": ANY_STAFF,
    "auth.change_password": ANY_STAFF,
    "auth.keep_alive": ANY_STAFF,
    "main.board": ANY_STAFF,  # admin is redirected to the staff list
    "main.board_version_json": CLINICIANS,  # the live board's poll (issue 10)
    "main.board_rooms": CLINICIANS,
    "admin.staff_list": ADMIN,
    "admin.audit_log": ADMIN,
    "patients.search": CLINICIANS,
    "patients.new": CLINICIANS,
    "patients.view": CLINICIANS,
    "patients.edit": CLINICIANS,
    "patients.archive": CLINICIANS,
    "patients.reactivate": CLINICIANS,
    "patients.new_assessment": CLINICIANS,
    "patients.void_assessment": CLINICIANS,
    "protocols.index": CLINICIANS,
    "protocols.view": CLINICIANS,
    "protocols.history": CLINICIANS,
    "protocols.new": PHYSICIAN,
    "protocols.edit": PHYSICIAN,
    "admin.audit_export": ADMIN,
    "admin.staff_new": ADMIN,
    "admin.staff_edit": ADMIN,
    "admin.staff_deactivate": ADMIN,
    "admin.staff_reactivate": ADMIN,
    "admin.staff_unlock": ADMIN,
    "admin.staff_reset_password": ADMIN,
    "infusions.plan": CLINICIANS,
    "infusions.detail": CLINICIANS,
    "infusions.update": CLINICIANS,
    "infusions.check_in": CLINICIANS,
    "infusions.start": CLINICIANS,
    "infusions.pause": CLINICIANS,
    "infusions.resume": CLINICIANS,
    "infusions.rate": CLINICIANS,
    "infusions.stop": CLINICIANS,
    "infusions.run_on": CLINICIANS,  # issue 10: why an infusion runs past its planned minutes
    "infusions.discharge": CLINICIANS,
    "infusions.cancel": CLINICIANS,
    "review.queue": PHYSICIAN,
    "review.sign": PHYSICIAN,
    "review.add_addendum": PHYSICIAN,
    "review.print_record": CLINICIANS,
    "exports.readings_csv": CLINICIANS,
    "exports.fhir_bundle": CLINICIANS,
    "infusions.record_reading": CLINICIANS,
    "infusions.void_reading": CLINICIANS,
    "infusions.correct_reading": CLINICIANS,
    "infusions.review_critical_reading": CLINICIANS,
    "infusions.record_adverse_event": CLINICIANS,
    "infusions.void_adverse_event": CLINICIANS,
    "infusions.correct_adverse_event": CLINICIANS,
    # Monitor intake (issue 10): devices authenticate with a token, not a login.
    "devices.device_list": ADMIN,
    "devices.device_new": ADMIN,
    "devices.device_detail": ADMIN,
    "devices.device_revoke": ADMIN,
    "devices.api_hl7": PUBLIC,  # 401 without a device token
    "devices.api_hl7_openapi": PUBLIC,  # the interface description, no data
    "devices.accept_proposed": CLINICIANS,
    "devices.dismiss_proposed": CLINICIANS,
    # Controlled-substance ledger and quality report (issue 11): clinicians act, admins read.
    "ledger.stock": ANY_STAFF,
    "ledger.vials": ANY_STAFF,
    "ledger.vial": ANY_STAFF,
    "ledger.vial_print": ANY_STAFF,
    "ledger.vial_csv": ANY_STAFF,
    "ledger.discrepancies": ANY_STAFF,
    "ledger.stock_report": ANY_STAFF,
    "ledger.period_report": ANY_STAFF,
    "ledger.receive": CLINICIANS,
    "ledger.waste_vial": CLINICIANS,
    "ledger.correct": CLINICIANS,
    "ledger.count": CLINICIANS,
    "ledger.session": CLINICIANS,
    "ledger.draw": CLINICIANS,
    "ledger.give": CLINICIANS,
    "ledger.waste": CLINICIANS,
    "ledger.resolve": PHYSICIAN | ADMIN,
    "ledger.explain": PHYSICIAN,
    "quality.report": PHYSICIAN | ADMIN,
    "quality.table_csv": PHYSICIAN | ADMIN,
    # Hardening (issue 9): the second factor.
    "two_factor.sign_in": PUBLIC,
    "two_factor.account": ANY_STAFF,
    "admin.staff_reset_two_factor": ADMIN,
    "protocols.compare": CLINICIANS,
}

ROLES = ("admin", "physician", "np", "pa")


@pytest.fixture
def world(make_staff, make_patient, make_protocol, make_infusion):
    """One of everything, so that every <int:…> URL parameter (given as 1) names a row."""
    staff = {role: make_staff(role, username=f"sweep-{role}") for role in ROLES}
    protocol = make_protocol()
    patient = make_patient()
    make_infusion(patient=patient, protocol=protocol, clinician=staff["np"],
                  physician=staff["physician"])
    from infusion_tracker.extensions import db
    from infusion_tracker.models import Assessment
    from infusion_tracker.timeutil import utcnow

    db.session.add(Assessment(patient_id=patient.id, instrument="phq9", score=14,
                              taken_at=utcnow(), recorded_by_id=staff["np"].id))
    from infusion_tracker.models import AdverseEvent, Reading

    db.session.add(Reading(infusion_id=1, taken_at=utcnow(), phase="baseline", systolic=185,
                           severity="critical", recorded_by_id=staff["np"].id))
    db.session.add(AdverseEvent(infusion_id=1, onset_at=utcnow(), event_type="nausea",
                                severity="mild", recorded_by_id=staff["np"].id))
    db.session.commit()
    # Ledger (issue 11): vial 1 with a receipt (entry 1), and discrepancy 1 from a count.
    from infusion_tracker.ledger import services as ledger

    (vial,) = ledger.receive_vials(actor=staff["np"], quantity=1, drug="ketamine",
                                   strength_mg_per_ml=50, volume_ml=10, lot="L1",
                                   expiry=utcnow().date().replace(year=utcnow().year + 1),
                                   supplier="S", invoice_number="I1")
    ledger.record_count(staff["np"], {vial.id: 9.0}, "sweep-pa", PASSWORD)
    db.session.commit()
    return staff


def urls(app):
    for rule in app.url_map.iter_rules():
        values = {}
        for arg in rule.arguments:
            values[arg] = "app.css" if arg == "filename" else 1
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods & {"GET", "POST"}):
            yield rule.endpoint, method, path


def test_every_endpoint_has_an_expectation(app):
    missing = sorted({rule.endpoint for rule in app.url_map.iter_rules()} - set(EXPECTED))
    assert not missing, f"endpoints with no permission expectation: {missing}"


def call(client, method, path):
    return client.get(path) if method == "GET" else client.post(path, data={})


def test_anonymous_is_sent_to_login(app, world):
    client = app.test_client()
    for endpoint, method, path in urls(app):
        response = call(client, method, path)
        assert response.status_code != 500, (endpoint, method, path)
        if EXPECTED[endpoint] == PUBLIC:
            continue
        assert response.status_code == 302, (endpoint, method, path, response.status_code)
        assert response.headers["Location"].startswith("/login"), (endpoint, method, path)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_the_expected_answer(app, world, role):
    for endpoint, method, path in urls(app):
        if endpoint == "auth.logout":
            continue  # would end the sweep's own session; covered in the auth tests
        client = app.test_client()
        assert login(client, f"sweep-{role}").status_code == 302
        response = call(client, method, path)
        expected = EXPECTED[endpoint]
        where = (role, endpoint, method, path, response.status_code)
        assert response.status_code != 500, where
        if expected == PUBLIC or role in expected:
            assert response.status_code != 403, where
            location = response.headers.get("Location", "")
            assert not location.startswith("/login"), where
        else:
            assert response.status_code == 403, where
