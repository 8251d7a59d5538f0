"""Protocols: physician-owned, versioned (an edit adds a row; the old one stays as it was),
the first-run default, the form's threshold sections and their checks."""

import html
import re

import pytest
import sqlalchemy as sa

from infusion_tracker import clinical
from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent, InfusionSession, Protocol
from infusion_tracker.protocols import services
from infusion_tracker.protocols.services import DEFAULT_PROTOCOL, PAIN_PROTOCOL


def protocols():
    return db.session.scalars(sa.select(Protocol).order_by(Protocol.id)).all()


def form_data(protocol=None, **changes):
    """What the edit form posts for a protocol (or the default one)."""
    source = protocol or Protocol(**DEFAULT_PROTOCOL)
    data = {name: getattr(source, name) for name in services.PROTOCOL_FIELDS}
    limits = clinical.Limits.from_dict(source.limits).to_dict()
    data.update({f"limit_{key}": value for key, value in limits.items()})
    data["change_reason"] = "Updated to the clinic's revised standing order."
    data.update(changes)
    return data


def row_values(protocol):
    columns = [c.key for c in Protocol.__table__.columns if c.key != "is_current"]
    return {name: getattr(protocol, name) for name in columns}


def test_default_protocol_is_created_once(app, make_staff):
    first = services.ensure_default_protocol()
    db.session.commit()
    again = services.ensure_default_protocol()
    assert again.id == first.id
    assert len(protocols()) == 1
    assert first.name == "Ketamine 0.5 mg/kg over 40 min (depression)"
    assert (first.dose_mg_per_kg, first.infusion_minutes, first.indication) == (
        0.5,
        40,
        "depression",
    )
    assert first.limits == clinical.DEFAULT_LIMITS
    assert first.version == 1 and first.is_current

    # After a physician revises it, "ensure" returns the current version, not a new copy.
    physician = make_staff("physician")
    revised = services.revise_protocol(
        first, {**DEFAULT_PROTOCOL, "max_total_mg": 90.0}, physician, reason="Lower cap"
    )
    db.session.commit()
    assert services.ensure_default_protocol().id == revised.id
    assert len(protocols()) == 2


def test_pain_protocol_constants_say_what_their_name_says():
    dose = clinical.dose(
        70,
        PAIN_PROTOCOL["dose_mg_per_kg"],
        PAIN_PROTOCOL["infusion_minutes"],
        PAIN_PROTOCOL["concentration_mg_per_ml"],
    )
    assert dose.mg_per_kg_per_h == 0.35
    assert PAIN_PROTOCOL["infusion_minutes"] == 240
    assert dose.total_mg <= PAIN_PROTOCOL["max_total_mg"]
    default = clinical.dose(
        70, DEFAULT_PROTOCOL["dose_mg_per_kg"], DEFAULT_PROTOCOL["infusion_minutes"], 1.0
    )
    assert default.total_mg == 35.0


def test_every_clinician_reads_protocols_but_only_physicians_change_them(
    client, login_as, make_protocol
):
    protocol = make_protocol()
    login_as("np")
    page = client.get("/protocols/").get_data(as_text=True)
    assert protocol.name in page
    assert "Only physicians change protocols." in page
    assert "/protocols/new" not in page
    assert client.get(f"/protocols/{protocol.id}").status_code == 200
    assert client.get("/protocols/new").status_code == 403
    assert (
        client.post(f"/protocols/{protocol.id}/edit", data=form_data(protocol)).status_code == 403
    )
    assert len(protocols()) == 1


def test_new_protocol_form_has_a_section_per_group_with_defaults(client, login_as):
    login_as("physician")
    page = html.unescape(client.get("/protocols/new").get_data(as_text=True))
    for title in (
        "Start limits",
        "Normal limits",
        "Critical thresholds",
        "Rise above the patient's baseline",
    ):
        assert f"<h2>{title}</h2>" in page
    for limit in clinical.LIMIT_FIELDS:
        value = clinical.DEFAULT_LIMITS[limit.key]
        field = re.search(rf'<input[^>]*name="limit_{limit.key}"[^>]*>', page).group(0)
        assert f'value="{value}"' in field, limit


def test_physician_creates_a_protocol(client, login_as):
    physician = login_as("physician")
    data = form_data(Protocol(**PAIN_PROTOCOL), limit_critical_sbp_high=175)
    response = client.post("/protocols/new", data=data)
    assert response.status_code == 302
    [protocol] = protocols()
    assert protocol.name == PAIN_PROTOCOL["name"]
    assert protocol.created_by_id == physician.id
    assert protocol.limits["critical_sbp_high"] == 175
    assert protocol.limits["normal_sbp_high"] == 160
    [row] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "protocol.created"))
    assert row.details["after"]["dose_mg_per_kg"] == 1.4


def test_edit_makes_a_new_version_and_leaves_the_old_row_alone(
    client, login_as, make_protocol, make_infusion
):
    physician = login_as("physician")
    old = make_protocol(limits=dict(clinical.DEFAULT_LIMITS))
    infusion = make_infusion(protocol=old)
    before = row_values(old)

    response = client.post(
        f"/protocols/{old.id}/edit",
        data=form_data(old, max_total_mg=90, limit_critical_sbp_high=175),
    )
    assert response.status_code == 302
    old_row, new_row = protocols()
    assert row_values(old_row) == before
    assert old_row.is_current is False
    assert (new_row.version, new_row.previous_version_id, new_row.is_current) == (2, old.id, True)
    assert new_row.max_total_mg == 90 and new_row.limits["critical_sbp_high"] == 175
    assert new_row.created_by_id == physician.id
    assert response.headers["Location"] == f"/protocols/{new_row.id}"
    # The session keeps the version it was planned with.
    assert db.session.get(InfusionSession, infusion.id).protocol_id == old.id

    [row] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "protocol.revised"))
    assert row.details["changes"] == {
        "max_total_mg": [100.0, 90.0],
        "limits.critical_sbp_high": [180, 175.0],
    }
    assert row.details["previous_version_id"] == old.id


def test_list_shows_current_versions_with_their_history(client, login_as, make_protocol):
    physician = login_as("physician")
    v1 = make_protocol()
    v2 = services.revise_protocol(v1, form_values(v1, infusion_minutes=45), physician, "Longer")
    v3 = services.revise_protocol(v2, form_values(v2, infusion_minutes=50), physician, "Longer")
    other = make_protocol(name="Ketamine 0.35 mg/kg/h over 4 h (chronic pain)")
    db.session.commit()

    page = client.get("/protocols/").get_data(as_text=True)
    assert f'href="/protocols/{v3.id}"' in page and f'href="/protocols/{other.id}"' in page
    assert f'href="/protocols/{v1.id}"' not in page
    assert f"/protocols/{v3.id}/history" in page

    history = client.get(f"/protocols/{v1.id}/history").get_data(as_text=True)
    positions = [history.index(f"Version {n}</a>") for n in (3, 2, 1)]
    assert positions == sorted(positions)
    assert "chronic pain" not in history
    assert [p.id for p in services.version_history(v2)] == [v3.id, v2.id, v1.id]

    old_page = client.get(f"/protocols/{v1.id}").get_data(as_text=True)
    assert "This is an older version" in old_page and f"/protocols/{v3.id}" in old_page


def form_values(protocol, **changes):
    values = {name: getattr(protocol, name) for name in services.PROTOCOL_FIELDS}
    values["limits"] = dict(protocol.limits)
    return {**values, **changes}


def test_saving_over_a_superseded_version_is_refused(client, login_as, make_staff, make_protocol):
    colleague = make_staff("physician", full_name="Grace Lin", credentials="MD")
    v1 = make_protocol()
    services.revise_protocol(v1, form_values(v1, max_total_mg=80.0), colleague, "Lower cap")
    db.session.commit()
    login_as("physician")
    # The form drawn from version 1 is posted after Dr Lin made version 2.
    response = client.post(f"/protocols/{v1.id}/edit", data=form_data(v1, max_total_mg=120))
    assert response.status_code == 409
    assert "changed by <strong>Grace Lin, MD</strong>" in response.get_data(as_text=True)
    assert len(protocols()) == 2
    # Opening the old version's edit page leads to the current one.
    v2 = protocols()[1]
    assert client.get(f"/protocols/{v1.id}/edit").headers["Location"] == f"/protocols/{v2.id}/edit"


def test_edit_without_changes_makes_no_version(client, login_as, make_protocol):
    login_as("physician")
    protocol = make_protocol(limits=dict(clinical.DEFAULT_LIMITS))
    response = client.post(f"/protocols/{protocol.id}/edit", data=form_data(protocol))
    assert response.status_code == 302
    assert len(protocols()) == 1


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dose_mg_per_kg": 9}, "Dose must be between 0.05 and 5 mg/kg."),
        ({"infusion_minutes": "forty"}, "Not a valid integer value."),
        (
            {"limit_critical_sbp_high": 400},
            "Critical systolic BP at or above must be between 40 and 300 mmHg.",
        ),
        ({"limit_normal_temp_high": ""}, "Enter temperature, highest normal."),
        (
            {"limit_normal_sbp_low": 170},
            "Systolic BP, lowest normal (170) must be below Systolic BP, highest normal (160).",
        ),
        (
            {"limit_critical_hr_high": 90},
            "Heart rate, highest normal (100) must be at or below Critical heart rate at or above "
            "(90).",
        ),
        (
            {"limit_delta_sbp_pct": 0},
            "Systolic BP rise above baseline must be between 1 and 200 %.",
        ),
        ({"name": ""}, "Enter the protocol&#39;s name."),
    ],
)
def test_impossible_or_contradictory_values_are_refused(
    client, login_as, make_protocol, changes, message
):
    login_as("physician")
    protocol = make_protocol(limits=dict(clinical.DEFAULT_LIMITS))
    response = client.post(f"/protocols/{protocol.id}/edit", data=form_data(protocol, **changes))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert len(protocols()) == 1


def test_limit_order_rules_name_real_thresholds():
    keys = {key for lower, upper, _ in services.LIMIT_ORDER for key in (lower, upper)}
    assert keys <= set(clinical.DEFAULT_LIMITS)
    assert services.limits_problems(clinical.DEFAULT_LIMITS) == {}


def test_names_are_unique_across_protocols(client, login_as, make_protocol):
    login_as("physician")
    make_protocol(name="Ketamine standard")
    other = make_protocol(name="Ketamine pain")
    response = client.post("/protocols/new", data=form_data(name="ketamine STANDARD"))
    assert "already exists" in response.get_data(as_text=True)
    response = client.post(
        f"/protocols/{other.id}/edit", data=form_data(other, name="Ketamine standard")
    )
    assert "Another protocol is already named" in response.get_data(as_text=True)
    assert len(protocols()) == 2


# --- Reasons and comparison (issue 9) ---------------------------------------------------


def test_an_edit_needs_a_reason_which_is_kept_and_audited(client, login_as, make_protocol):
    login_as("physician")
    protocol = make_protocol()
    data = form_data(protocol, max_total_mg=90, change_reason=" ")
    response = client.post(f"/protocols/{protocol.id}/edit", data=data)
    assert response.status_code == 422
    assert "Give the reason for the change." in response.get_data(as_text=True)
    assert len(protocols()) == 1
    client.post(
        f"/protocols/{protocol.id}/edit",
        data=form_data(protocol, max_total_mg=90, change_reason="Pharmacy cap lowered"),
    )
    _old, new = protocols()
    assert new.change_reason == "Pharmacy cap lowered"
    [row] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "protocol.revised"))
    assert row.details["reason"] == "Pharmacy cap lowered"
    history = client.get(f"/protocols/{new.id}/history").get_data(as_text=True)
    assert "Pharmacy cap lowered" in history and f"/protocols/{new.id}/compare" in history


def test_versions_are_compared_side_by_side(client, login_as, make_protocol, make_staff):
    login_as("np")
    old = make_protocol(limits=dict(clinical.DEFAULT_LIMITS))
    limits = {**clinical.DEFAULT_LIMITS, "critical_sbp_high": 175}
    new = services.revise_protocol(
        old,
        {**form_values(old, max_total_mg=90.0), "limits": limits},
        make_staff("physician"),
        "Tighter",
    )
    db.session.commit()
    html = client.get(f"/protocols/{new.id}/compare").get_data(as_text=True)
    changed = re.findall(r'<tr class="changed">\s*<th scope="row">([^<]+)', html)
    assert [label.strip() for label in changed] == [
        "Maximum total dose (mg)",
        next(f"{f.label} ({f.unit})" for f in clinical.LIMIT_FIELDS
             if f.key == "critical_sbp_high"),
    ]
    assert "Reason: Tighter" in html
    assert client.get(f"/protocols/{old.id}/compare").status_code == 404  # no earlier one
