"""The review queue, the signature panel on the session page, and the printable record."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import render_template
from flask_login import login_user

from infusion_tracker.extensions import db
from infusion_tracker.models import Addendum, AuditEvent, InfusionSession
from infusion_tracker.review import services
from infusion_tracker.timeutil import utcnow
from tests.conftest import sqlite_plan
from tests.test_signing import (
    add_adverse_event,
    add_assessment,
    add_event,
    add_reading,
    discharged_session,
    set_auth_age,
    sign_directly,
)

CRITICAL_SBP = [{"field": "systolic", "level": "critical", "message": "SBP 186 ≥ 180"}]


def queue_rows(html: str) -> list[str]:
    """The queue's body rows, as text, in page order."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)) for row in body.split("<tr")[1:]]


# --- The queue ---------------------------------------------------------------------------------


def test_queue_lists_flagged_sessions_first_then_oldest(
    client, login_as, make_staff, make_patient, make_infusion
):
    login_as("physician")
    nurse = make_staff("np")

    def session(last_name, hours_ago, **fields):
        return discharged_session(
            make_infusion,
            hours_ago=hours_ago,
            clinician=nurse,
            patient=make_patient(last_name=last_name),
            **fields,
        )

    routine_old = session("RoutineOld", 30)
    routine_new = session("RoutineNew", 5)
    critical = session("Critical", 4)
    add_reading(critical, nurse, minutes=12, severity="critical", flags=CRITICAL_SBP)
    adverse = session("Adverse", 6)
    add_adverse_event(adverse, nurse)
    override = session("Override", 3, start_override_reason="Baseline SBP 165; PRN labetalol")
    phq = session("Phq", 2)
    add_assessment(phq, nurse, items=[2, 1, 2, 1, 2, 1, 1, 2, 1], flag_physician=True)
    stopped = session("StoppedEarly", 8)  # stopped early by an AE, then recovered and discharged
    add_adverse_event(stopped, nurse, infusion_action="stopped", event_type="emergence_reaction")
    add_event(stopped, nurse, "stop", 25, reason="Stopped for an adverse event")
    asked = session("Asked", 7)  # stopped at the patient's request, no adverse event
    add_event(asked, nurse, "stop", 30, reason="Patient request")
    routine_stop = session("RoutineStop", 29)
    add_event(routine_stop, nurse, "stop", 40)
    # Not in the queue: signed, still in recovery, cancelled.
    sign_directly(session("Signed", 10), make_staff("physician"))
    session("Recovering", 1, status="recovery", discharged_at=None)
    session("Cancelled", 1, status="cancelled", discharged_at=None)

    response = client.get("/review/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    rows = queue_rows(html)
    order = [re.search(r"(\w+), Pat", row).group(1) for row in rows]
    # Flagged first, each group oldest discharge first.
    assert order == [
        "StoppedEarly",
        "Asked",
        "Adverse",
        "Critical",
        "Override",
        "Phq",
        "RoutineOld",
        "RoutineStop",
        "RoutineNew",
    ]
    tags = dict(zip(order, rows, strict=True))
    assert "Critical reading" in tags["Critical"] and "Adverse event" not in tags["Critical"]
    assert "Adverse event" in tags["Adverse"] and "Adverse event" in tags["StoppedEarly"]
    assert "Override" in tags["Override"]
    assert "PHQ-9 item 9" in tags["Phq"]
    assert "Stopped early" in tags["StoppedEarly"] and "Stopped early" in tags["Asked"]
    assert "Adverse event" not in tags["Asked"]
    for name in ("RoutineOld", "RoutineStop", "RoutineNew"):
        assert "Routine" in tags[name] and "Stopped early" not in tags[name]
    assert "9 sessions awaiting your signature" in html
    for infusion in (routine_old, routine_new, critical, adverse, override, phq, stopped, asked):
        assert f'href="/infusions/{infusion.id}#signature"' in html
        assert f'href="/infusions/{infusion.id}/print"' in html


def test_voided_rows_do_not_flag_a_session(client, login_as, make_staff, make_infusion):
    login_as("physician")
    nurse = make_staff("np")
    infusion = discharged_session(make_infusion, clinician=nurse)
    for row in (
        add_reading(infusion, nurse, minutes=5, severity="critical", flags=CRITICAL_SBP),
        add_adverse_event(infusion, nurse),
        add_assessment(infusion, nurse, flag_physician=True),
    ):
        row.voided_at, row.voided_by, row.void_reason = utcnow(), nurse, "Wrong patient"
    db.session.commit()
    (entry,) = services.review_queue().entries
    assert entry.reasons == ()
    assert "Routine" in queue_rows(client.get("/review/").get_data(as_text=True))[0]


def test_every_override_kind_flags(app, make_infusion):
    for field in ("start_override_reason", "dose_override_reason", "discharge_override_reason"):
        discharged_session(make_infusion, **{field: "Physician decision"})
    discharged_session(make_infusion)
    reasons = [entry.reasons for entry in services.review_queue().entries]
    assert reasons == [("override",), ("override",), ("override",), ()]


def test_empty_queue_says_so(client, login_as):
    login_as("physician")
    html = client.get("/review/").get_data(as_text=True)
    assert "Nothing is waiting" in html


def test_queue_pages(app, client, login_as, make_infusion):
    app.config["PER_PAGE"] = 2
    login_as("physician")
    for hours in (9, 8, 7, 6, 5):
        discharged_session(make_infusion, hours_ago=hours)
    first = client.get("/review/").get_data(as_text=True)
    last = client.get("/review/?page=3").get_data(as_text=True)
    assert len(queue_rows(first)) == 2 and "Page 1 of 3" in first
    assert len(queue_rows(last)) == 1 and "Page 3 of 3" in last
    assert client.get("/review/?page=99").status_code == 200  # clamped to the last page


def expected_reasons(infusion) -> list[str]:
    """The queue's reasons of a session, worked out here from its rows (not from SQL)."""
    found = {
        "critical": any(r.severity == "critical" and not r.is_voided for r in infusion.readings),
        "adverse_event": any(not ae.is_voided for ae in infusion.adverse_events),
        "override": any(
            (infusion.start_override_reason, infusion.dose_override_reason,
             infusion.discharge_override_reason, *(e.override_reason for e in infusion.events))
        ),
        "phq9_item9": any(a.flag_physician and not a.is_voided for a in infusion.assessments),
        "stopped_early": any(e.kind == "stop" and e.reason for e in infusion.events),
    }
    return [key for key in services.REASONS if found[key]]


def test_queue_pages_end_to_end_are_the_order_of_the_rows(
    app, make_staff, make_patient, make_protocol, make_infusion
):
    """More sessions than pages hold, every reason alone and in pairs, voided rows that do not
    count, ties on the discharge time, and sessions with reasons that are signed or still in
    recovery: the pages, one after another, are the order worked out here from the rows."""
    nurse, physician = make_staff("np"), make_staff("physician")
    patients, protocol = [make_patient() for _ in range(4)], make_protocol()
    base = utcnow() - timedelta(days=2)

    def session(i, **fields):
        return discharged_session(
            make_infusion, patient=patients[i % 4], protocol=protocol, clinician=nurse,
            physician=physician, **fields,
        )

    def void(row):
        row.voided_at, row.voided_by, row.void_reason = utcnow(), nurse, "Wrong patient"
        db.session.commit()

    # Signed long ago with reasons, before any awaiting session: never listed.
    old = session(0, discharged_at=base - timedelta(days=30))
    add_reading(old, nurse, severity="critical", flags=CRITICAL_SBP)
    add_event(old, nurse, "stop", 20, reason="Patient request")
    sign_directly(old, physician)
    for i in range(60):
        # Non-monotonic in id, three sessions per discharge time.
        fields = {"discharged_at": base + timedelta(minutes=10 * ((i * 7) % 20))}
        if i % 13 == 4:
            fields["start_override_reason"] = "Baseline SBP 165"
        if i % 17 == 5:
            fields["dose_override_reason"] = "Weight-based cap"
        if i % 19 == 6:
            fields["discharge_override_reason"] = "Aldrete 8, escort present"
        infusion = session(i, **fields)
        if i % 7 == 0:
            add_reading(infusion, nurse, minutes=12, severity="critical", flags=CRITICAL_SBP)
        if i % 11 == 1:
            void(add_reading(infusion, nurse, minutes=14, severity="critical", flags=CRITICAL_SBP))
        if i % 9 == 2:
            add_adverse_event(infusion, nurse)
        if i % 10 == 3:
            void(add_adverse_event(infusion, nurse))
        if i % 8 == 5:
            add_event(infusion, nurse, "rate_change", 15, rate_mg_per_h=60.0,
                      override_reason="Physician allowed", override_by_id=physician.id)
        if i % 12 == 9:
            add_assessment(infusion, nurse, flag_physician=True)
        if i % 15 == 8:
            void(add_assessment(infusion, nurse, flag_physician=True))
        if i % 6 == 1:
            add_event(infusion, nurse, "stop", 25, reason="Stopped for an adverse event")
        if i % 5 == 0:
            add_event(infusion, nurse, "stop", 40)  # routine: no reason
        if i in (10, 30):  # reasons, but signed or not yet discharged
            sign_directly(infusion, physician)
        if i == 20:
            infusion.status, infusion.discharged_at = "recovery", None
            db.session.commit()
    db.session.expire_all()
    awaiting = db.session.scalars(sa.select(InfusionSession).where(
        InfusionSession.status == "discharged", InfusionSession.signed_at.is_(None)
    )).all()
    reasons = {infusion.id: expected_reasons(infusion) for infusion in awaiting}
    order = sorted(awaiting, key=lambda s: (not reasons[s.id], s.discharged_at, s.id))
    expected = [(infusion.id, reasons[infusion.id]) for infusion in order]
    flagged = sum(bool(r) for r in reasons.values())
    assert len(expected) == 57 and 25 < flagged < 50  # a page holds both kinds
    assert any(len(r) > 1 for r in reasons.values())
    assert all([key] in reasons.values() for key in services.REASONS)  # each alone, somewhere
    for per_page in (25, 7):
        first = services.review_queue(1, per_page)
        assert first.total == 57 and first.pages == -(-57 // per_page)
        listed = [
            (entry.id, list(entry.reasons))
            for page in range(1, first.pages + 1)
            for entry in services.review_queue(page, per_page).entries
        ]
        assert listed == expected, per_page


def test_nav_badge_counts_what_the_queue_lists(client, login_as, make_staff, make_infusion):
    login_as("physician")
    for _ in range(3):
        discharged_session(make_infusion)
    sign_directly(discharged_session(make_infusion), make_staff("physician"))
    discharged_session(make_infusion, status="recovery", discharged_at=None)
    html = client.get("/review/").get_data(as_text=True)
    assert 'aria-label="3 waiting">3</span>' in html
    assert "3 sessions awaiting your signature" in html


@pytest.mark.parametrize("role", ["np", "pa", "admin"])
def test_queue_is_for_physicians_only(client, login_as, role):
    login_as(role)
    assert client.get("/review/").status_code == 403


def test_queue_query_count_does_not_grow_with_rows(
    client, login_as, make_staff, make_infusion, count_queries
):
    login_as("physician")
    nurse = make_staff("np")

    def fill(n):
        for i in range(n):
            infusion = discharged_session(make_infusion, hours_ago=20 + i, clinician=nurse)
            add_reading(infusion, nurse, severity="critical", flags=CRITICAL_SBP)
            add_adverse_event(infusion, nurse)

    fill(2)
    with count_queries() as few:
        client.get("/review/")
    fill(10)
    with count_queries() as many:
        html = client.get("/review/").get_data(as_text=True)
    assert len(queue_rows(html)) == 12
    assert many.count == few.count
    # login check, the queue's count (which the nav badge shows too), queue page (plus the
    # transaction statements), and the chain's last hash for the read audit row written after
    # the page (issue 9); the page's statement starts with its flagged sessions' WITH
    selects = [s for s in many.statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(selects) == 4, selects
    assert 'aria-label="12 waiting"' in html


def test_the_queues_critical_readings_come_from_their_own_index(app):
    """The backlog's critical readings are read from ix_reading_critical, a few among the
    backlog's tens of thousands of readings: SQLite's planner (without statistics) had taken
    ix_reading_figures and read them all (bench/RESULTS.md, Stop 32). The partial indexes
    are PostgreSQL's too, which plans with statistics."""
    _, compiled, _ = services._page_statement()._compiled(db.engine.dialect)
    values = compiled.construct_params({"first": 25, "per_page": 25, "offset": 0})
    plan = sqlite_plan(compiled, values)
    readings = [step for step in plan if step.startswith("SEARCH reading")]
    # Once to list the flagged sessions, once to say which are flagged for it.
    assert readings == [
        "SEARCH reading USING COVERING INDEX ix_reading_critical (severity=? AND infusion_id>?)"
    ] * 2, plan


# --- The signature panel (templates/infusions/_signature.html) ----------------------------------


def render_panel(app, client, staff, infusion, auth_age_minutes=1):
    """Render the partial as the session page would, for `staff`."""
    set_auth_age(client, auth_age_minutes)
    with client.session_transaction() as flask_session:
        auth_at = flask_session["auth_at"]
    with app.test_request_context(f"/infusions/{infusion.id}"):
        from flask import session

        session["auth_at"] = auth_at
        login_user(staff)
        return render_template("infusions/_signature.html", infusion=infusion)


def test_panel_offers_the_sign_form_to_a_physician(app, client, make_staff, make_infusion):
    physician = make_staff("physician")
    infusion = discharged_session(make_infusion)
    html = render_panel(app, client, physician, infusion)
    assert f'action="/infusions/{infusion.id}/sign"' in html
    assert app.config["ATTESTATION_TEXT"] in html
    assert f'name="version" type="hidden" value="{infusion.version}"' in html
    assert 'name="password"' not in html  # signed in recently
    html = render_panel(app, client, physician, infusion, auth_age_minutes=20)
    assert 'name="password"' in html and "more than 15 minutes ago" in html


@pytest.mark.parametrize("role", ["np", "pa"])
def test_panel_tells_np_and_pa_it_awaits_a_physician(app, client, make_staff, make_infusion, role):
    infusion = discharged_session(make_infusion)
    html = render_panel(app, client, make_staff(role), infusion)
    assert "Awaiting physician signature" in html
    assert "/sign" not in html and "/addenda" not in html


def test_panel_on_a_signed_session(app, client, make_staff, make_infusion):
    physician = make_staff("physician", full_name="Sara Signer")
    infusion = sign_directly(discharged_session(make_infusion), physician, "All reviewed.")
    db.session.add(
        Addendum(infusion=infusion, text="Phoned: well.", author=physician, created_at=utcnow())
    )
    db.session.commit()
    html = render_panel(app, client, physician, infusion)
    assert "Signed — locked." in html and "Later facts go in an addendum." in html
    assert "Sara Signer, MD" in html and "All reviewed." in html
    assert "Phoned: well." in html
    assert f'action="/infusions/{infusion.id}/addenda"' in html
    assert "/sign" not in html
    nurse_view = render_panel(app, client, make_staff("np"), infusion)
    assert "Phoned: well." in nurse_view and "/addenda" not in nurse_view


def test_panel_before_discharge(app, client, make_staff, make_infusion):
    infusion = discharged_session(make_infusion, status="recovery", discharged_at=None)
    html = render_panel(app, client, make_staff("physician"), infusion)
    assert "A physician signs once the patient is discharged." in html
    assert "/sign" not in html


def test_session_page_includes_the_panel(client, login_as, make_infusion):
    login_as("physician")
    infusion = discharged_session(make_infusion)
    html = client.get(f"/infusions/{infusion.id}").get_data(as_text=True)
    assert 'id="signature"' in html and f'action="/infusions/{infusion.id}/sign"' in html


def test_sign_from_the_session_page_end_to_end(client, login_as, make_infusion):
    login_as("physician")
    infusion = discharged_session(make_infusion)
    page = client.get(f"/infusions/{infusion.id}").get_data(as_text=True)
    version = re.search(
        r'name="version" type="hidden" value="(\d+)"', page.split('id="signature"')[1]
    )
    response = client.post(
        f"/infusions/{infusion.id}/sign",
        data={"attestation": "Reviewed in full.", "version": version.group(1)},
        follow_redirects=True,
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Session signed." in html and "Signed — locked." in html
    assert infusion.is_signed


# --- The printable record ------------------------------------------------------------------------


def full_session(make_staff, make_infusion, readings=20):
    nurse = make_staff("np", full_name="Nell Nurse")
    physician = make_staff("physician", full_name="Sara Signer")
    infusion = discharged_session(
        make_infusion,
        clinician=nurse,
        physician=physician,
        iv_site="L antecubital",
        iv_gauge="22",
        lot_number="KX-2231",
        notes="Tolerated well overall.",
        dose_override_reason="",
        start_override_reason="Baseline SBP 162; physician approved",
        start_override_by=physician,
        discharged_by=nurse,
    )
    add_reading(infusion, nurse, minutes=-10, systolic=150, diastolic=92)
    for i in range(readings - 1):
        minutes = 5 * i
        if i == 4:
            add_reading(
                infusion,
                nurse,
                minutes=minutes,
                severity="critical",
                systolic=186,
                flags=CRITICAL_SBP,
                critical_action="adverse_event",
                critical_action_by=nurse,
                critical_action_at=utcnow(),
            )
        else:
            add_reading(infusion, nurse, minutes=minutes, systolic=130 + i % 5, heart_rate=70 + i)
    voided = add_reading(infusion, nurse, minutes=7, systolic=99)
    voided.voided_at, voided.voided_by, voided.void_reason = utcnow(), nurse, "Wrong cuff size"
    add_adverse_event(
        infusion,
        nurse,
        event_type="hypertension",
        severity="moderate",
        intervention="Labetalol 10 mg IV",
        infusion_action="paused",
    )
    add_assessment(infusion, nurse)
    add_assessment(infusion, nurse, instrument="gad7", score=9, items=None)
    add_event(infusion, nurse, "start", 0, rate_mg_per_h=52.5)
    add_event(infusion, nurse, "pause", 20, reason="BP 186/95")
    add_event(infusion, nurse, "resume", 26)
    add_event(infusion, nurse, "stop", 40)
    sign_directly(infusion, physician, "I have reviewed this infusion record.")
    db.session.add(
        Addendum(
            infusion=infusion,
            text="Phoned next day: well, no headache.",
            author=physician,
            created_at=utcnow(),
        )
    )
    db.session.commit()
    return infusion


def test_print_holds_the_whole_record(client, login_as, make_staff, make_infusion):
    login_as("np")
    infusion = full_session(make_staff, make_infusion)
    response = client.get(f"/infusions/{infusion.id}/print")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    patient = infusion.patient
    for text in (
        f"{patient.last_name.upper()}, {patient.first_name}",
        f"MRN <strong>{patient.mrn}",
        "DOB <strong>17 May 1980",
        "Penicillin (rash)",
        "Session <strong>No. 1",
        "Ketamine 0.5 mg/kg over 40 min (depression) (v1)",
        "70.0 kg × 0.5 mg/kg = <strong>35.0 mg</strong>",
        "52.5 mg/h = <strong>52.5 mL/h",
        "Start override</strong> by Sara Signer, MD: Baseline SBP 162",
        "Consent on file: Yes",
        "Sam Escort",
        "L antecubital",
        "KX-2231",
        "<svg",
        "CRITICAL",
        "SBP 186 ≥ 180",
        "VOIDED",
        "Wrong cuff size",
        "Hypertension",
        "Labetalol 10 mg IV",
        "PHQ-9",
        "GAD-7",
        "Items 2 1 2 1 2 1 1 2 0",
        "Modified Aldrete <strong>10/10",
        "Infusion stopped",
        "BP 186/95",
        "Electronically signed by <strong>Sara Signer, MD",
        "I have reviewed this infusion record.",
        "Phoned next day: well, no headache.",
        "Tolerated well overall.",
        "Nell Nurse, APRN",
    ):
        assert text in html, text
    assert 'class="site-nav"' not in html and "<nav" not in html  # no navigation
    assert "style=" not in html and "<script>" not in html  # CSP: no inline style or script
    assert 'src="/static/js/print.js"' in html and "data-print" in html
    assert 'href="/static/css/record.css"' in html
    (event,) = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "session.printed")
    ).all()
    assert event.entity_id == infusion.id and event.patient_id == infusion.patient_id


def test_print_marks_an_unsigned_record(client, login_as, make_infusion):
    login_as("physician")
    infusion = discharged_session(make_infusion)
    html = client.get(f"/infusions/{infusion.id}/print").get_data(as_text=True)
    assert "NOT SIGNED" in html and "has not been signed by a physician" in html
    assert "No readings were recorded." in html


def test_print_of_a_planned_session_without_weight(client, login_as, make_infusion):
    login_as("pa")
    infusion = make_infusion(weight_kg=None, total_mg=None)
    html = client.get(f"/infusions/{infusion.id}/print").get_data(as_text=True)
    assert "weight not recorded" in html and "Not discharged." in html


def test_print_query_count_is_fixed(client, login_as, make_staff, make_infusion, count_queries):
    login_as("physician")
    small = full_session(make_staff, make_infusion, readings=3)
    large = full_session(make_staff, make_infusion, readings=40)
    small_url, large_url = f"/infusions/{small.id}/print", f"/infusions/{large.id}/print"
    with count_queries() as few:
        assert client.get(small_url).status_code == 200
    with count_queries() as many:
        assert client.get(large_url).status_code == 200
    assert many.count == few.count
    selects = [
        s
        for s in many.statements
        if s.lstrip().upper().startswith("SELECT") and "pg_advisory_xact_lock" not in s
    ]
    # login, the session with its many-to-one rows, five collections, the audit chain's tail
    # (PostgreSQL also takes the audit chain's advisory lock, not counted here)
    assert len(selects) == 8, selects


def test_print_missing_session_is_404(client, login_as):
    login_as("np")
    assert client.get("/infusions/999/print").status_code == 404
