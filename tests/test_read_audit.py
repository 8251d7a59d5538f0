"""Every page or export that shows a patient's data leaves exactly one read row (issue 9,
defect 1): who, what, which patient. The walk is derived from app.url_map, so a new GET page
cannot ship without a decision here."""

import pytest

from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent, InfusionSession
from tests.conftest import login
from tests.test_permissions import world  # noqa: F401  (the fixture: one of everything)

PATIENT = "patient 1"  # the read row names patient 1
NONE = None  # a list or a report of many patients: ids in details, no patient_id

# GET endpoint -> (role that may see it, the read row's action, its patient).
READS = {
    "patients.view": ("np", "patient.viewed", PATIENT),
    "patients.edit": ("np", "patient.edit_viewed", PATIENT),
    "patients.search": ("np", "patient.searched", NONE),
    "patients.new_assessment": ("np", "assessment.form_viewed", PATIENT),
    "patients.void_assessment": ("np", "assessment.viewed", PATIENT),
    "main.board": ("np", "board.viewed", NONE),
    "main.board_rooms": ("np", "board.viewed", NONE),  # the live board fetching its rooms
    "infusions.plan": ("np", "session.plan_viewed", PATIENT),
    "infusions.detail": ("np", "session.viewed", PATIENT),
    "infusions.discharge": ("np", "discharge.viewed", PATIENT),
    "infusions.correct_reading": ("np", "reading.viewed", PATIENT),
    "infusions.correct_adverse_event": ("np", "adverse_event.viewed", PATIENT),
    "review.queue": ("physician", "review_queue.viewed", NONE),
    "review.print_record": ("np", "session.printed", PATIENT),
    "exports.readings_csv": ("np", "export.readings_csv", PATIENT),
    "exports.fhir_bundle": ("np", "export.fhir", PATIENT),
    "devices.accept_proposed": ("np", "proposed_reading.viewed", PATIENT),
    "ledger.session": ("np", "ledger.session_viewed", PATIENT),
    "ledger.vial": ("np", "ledger.vial_viewed", NONE),
    "ledger.vial_print": ("np", "ledger.vial_printed", NONE),
    "ledger.vial_csv": ("np", "ledger.vial_exported", NONE),
    "ledger.period_report": ("np", "ledger.period_viewed", NONE),
    "quality.report": ("physician", "quality.viewed", NONE),  # aggregate, no patient id
    "quality.table_csv": ("physician", "quality.exported", NONE),
}

# GET endpoints that show no patient's data (or, for the audit log, only the trail itself).
NO_PATIENT_DATA = {
    "static", "auth.login", "auth.setup", "auth.change_password", "main.healthz",
    "main.board_version_json",  # the live board's fingerprint: a hash, no names or ids
    "admin.staff_list", "admin.staff_new", "admin.staff_edit", "admin.audit_log", "patients.new",
    "protocols.index", "protocols.view", "protocols.history", "protocols.new", "protocols.edit",
    "protocols.compare", "two_factor.account", "two_factor.sign_in",
    "devices.device_list", "devices.device_new", "devices.device_detail",
    "devices.api_hl7_openapi", "ledger.stock", "ledger.vials", "ledger.discrepancies",
    "ledger.stock_report", "ledger.receive", "ledger.waste_vial", "ledger.correct",
    "ledger.count", "ledger.resolve",
}

PATHS = {  # URLs that need more than "every id is 1"
    "patients.search": "/patients/?q=a",
    "quality.table_csv": "/quality/summary.csv",
}


def get_endpoints(app):
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods:
            values = {arg: "app.css" if arg == "filename" else 1 for arg in rule.arguments}
            yield rule.endpoint, rule.build(values, append_unknown=False)[1]


def test_every_get_endpoint_is_classified(app):
    endpoints = {endpoint for endpoint, _ in get_endpoints(app)}
    assert not endpoints - set(READS) - NO_PATIENT_DATA, "GET pages with no read-audit decision"
    stale = (set(READS) | NO_PATIENT_DATA) - endpoints
    assert not stale, f"not GET endpoints (any more): {sorted(stale)}"


@pytest.fixture
def reading_world(world):  # noqa: F811
    from infusion_tracker.models import Device, DeviceMessage, ProposedReading
    from infusion_tracker.timeutil import utcnow

    # Recovery, so the discharge form shows (not a redirect); a proposed monitor reading.
    db.session.get(InfusionSession, 1).status = "recovery"
    device = Device(name="Monitor 1", room="Room 1", token_hash="x" * 64)
    db.session.add(device)
    db.session.flush()
    message = DeviceMessage(device_id=device.id, via="http", raw="MSH|", outcome="AA")
    db.session.add(message)
    db.session.flush()
    db.session.add(ProposedReading(device_id=device.id, message_id=message.id, infusion_id=1,
                                   observed_at=utcnow(), systolic=120, phase="baseline"))
    db.session.commit()
    return world


@pytest.mark.parametrize("endpoint", sorted(READS))
def test_each_page_showing_patient_data_leaves_one_read_row(app, reading_world, endpoint):
    role, action, patient = READS[endpoint]
    path = dict(get_endpoints(app)).get(endpoint)
    path = PATHS.get(endpoint, path)
    client = app.test_client()
    assert login(client, f"sweep-{role}").status_code == 302
    before = db.session.scalar(db.select(db.func.max(AuditEvent.id)))
    response = client.get(path)
    assert response.status_code == 200, (endpoint, path, response.status_code)
    db.session.expire_all()
    rows = db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.id > before).order_by(AuditEvent.id)
    ).all()
    assert [row.action for row in rows] == [action], endpoint
    (row,) = rows
    assert row.actor_name == f"sweep-{role}"
    assert row.patient_id == (1 if patient == PATIENT else None), endpoint
    assert row.remote_addr == "127.0.0.1"


def test_a_search_row_holds_the_query_and_ids_not_names(app, world):  # noqa: F811
    client = app.test_client()
    login(client, "sweep-np")
    client.get("/patients/?q=ex")  # the one patient, Pat Example1
    (row,) = db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.action == "patient.searched")
    ).all()
    assert row.details == {"query": "ex", "results": 1, "shown": [1]}


def test_read_rows_are_not_listed_as_changes_on_the_sign_form():
    from infusion_tracker.review.services import READ_ACTIONS

    assert {action for _, action, _ in READS.values()} <= set(READ_ACTIONS)
