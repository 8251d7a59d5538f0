"""Infusion protocols: physician-owned and versioned (SPEC §2).

A protocol row is never edited. An edit adds the next version (pointing at the previous one
through previous_version_id) and makes it the current one; the old row keeps its values, so
every session keeps the exact version it ran under.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from .. import audit
from ..clinical import DEFAULT_LIMITS, LIMIT_FIELDS, Limits
from ..errors import RuleError, StaleRecord
from ..extensions import db
from ..models import Protocol, Staff
from ..timeutil import utcnow

# The values an edit may change (name included); limits are compared key by key.
PROTOCOL_FIELDS = (
    "name",
    "drug",
    "indication",
    "dose_mg_per_kg",
    "infusion_minutes",
    "max_total_mg",
    "concentration_mg_per_ml",
    "reading_interval_infusion_min",
    "reading_interval_recovery_min",
    "min_observation_min",
)

# First-run protocol: ketamine 0.5 mg/kg over 40 minutes for depression (SPEC §2; the dose
# of Berman 2000 / Zarate 2006 and most ketamine clinics). The data migration and the demo
# use these same values.
DEFAULT_PROTOCOL: dict[str, Any] = {
    "name": "Ketamine 0.5 mg/kg over 40 min (depression)",
    "drug": "ketamine",
    "indication": "depression",
    "dose_mg_per_kg": 0.5,
    "infusion_minutes": 40,
    "max_total_mg": 100.0,
    "concentration_mg_per_ml": 1.0,
    "reading_interval_infusion_min": 5,
    "reading_interval_recovery_min": 15,
    "min_observation_min": 30,
    "limits": dict(DEFAULT_LIMITS),
}

# The demo's chronic-pain protocol: 0.35 mg/kg/h for 4 hours = 1.4 mg/kg over 240 minutes,
# with readings every 15 minutes over the long infusion and an hour's observation after it.
PAIN_PROTOCOL: dict[str, Any] = {
    "name": "Ketamine 0.35 mg/kg/h over 4 h (chronic pain)",
    "drug": "ketamine",
    "indication": "crps",
    "dose_mg_per_kg": 1.4,
    "infusion_minutes": 240,
    "max_total_mg": 200.0,
    "concentration_mg_per_ml": 1.0,
    "reading_interval_infusion_min": 15,
    "reading_interval_recovery_min": 15,
    "min_observation_min": 60,
    "limits": dict(DEFAULT_LIMITS),
}


def get_protocol_or_404(protocol_id: int) -> Protocol:
    return db.get_or_404(Protocol, protocol_id)


def current_protocols() -> list[Protocol]:
    return list(
        db.session.scalars(
            sa.select(Protocol)
            .where(Protocol.is_current.is_(True))
            .order_by(Protocol.name, Protocol.id)
        )
    )


def version_history(protocol: Protocol) -> list[Protocol]:
    """Every version of this protocol's chain, newest first (one recursive query each way)."""
    earlier = (
        sa.select(Protocol.id, Protocol.previous_version_id)
        .where(Protocol.id == protocol.id)
        .cte("earlier", recursive=True)
    )
    earlier = earlier.union_all(
        sa.select(Protocol.id, Protocol.previous_version_id).join(
            earlier, Protocol.id == earlier.c.previous_version_id
        )
    )
    later = sa.select(Protocol.id).where(Protocol.id == protocol.id).cte("later", recursive=True)
    later = later.union_all(
        sa.select(Protocol.id).join(later, Protocol.previous_version_id == later.c.id)
    )
    ids = sa.union(sa.select(earlier.c.id), sa.select(later.c.id))
    return list(
        db.session.scalars(
            sa.select(Protocol)
            .where(Protocol.id.in_(sa.select(ids.subquery().c.id)))
            .options(joinedload(Protocol.created_by))
            .order_by(Protocol.version.desc(), Protocol.id.desc())
        )
    )


def current_version_of(protocol: Protocol) -> Protocol:
    """The current version in this protocol's chain (itself when it is current)."""
    if protocol.is_current:
        return protocol
    return next((p for p in version_history(protocol) if p.is_current), protocol)


def limits_problems(limits: dict[str, float]) -> dict[str, str]:
    """Limits that contradict each other, by key: the normal range must sit inside the
    critical thresholds, and each low must be below its high."""
    problems: dict[str, str] = {}
    labels = {f.key: f.label for f in LIMIT_FIELDS}
    for lower, upper, strict in LIMIT_ORDER:
        low, high = limits.get(lower), limits.get(upper)
        if low is None or high is None:
            continue
        if (low >= high) if strict else (low > high):
            word = "below" if strict else "at or below"
            problems.setdefault(
                lower, f"{labels[lower]} ({low:g}) must be {word} {labels[upper]} ({high:g})."
            )
    return problems


# (lower key, upper key, strictly below?) — thresholds that must keep their order.
LIMIT_ORDER: tuple[tuple[str, str, bool], ...] = (
    ("normal_sbp_low", "normal_sbp_high", True),
    ("critical_sbp_low", "normal_sbp_low", False),
    ("normal_sbp_high", "critical_sbp_high", False),
    ("normal_dbp_low", "normal_dbp_high", True),
    ("normal_dbp_high", "critical_dbp_high", False),
    ("normal_hr_low", "normal_hr_high", True),
    ("critical_hr_low", "normal_hr_low", False),
    ("normal_hr_high", "critical_hr_high", False),
    ("normal_rr_low", "normal_rr_high", True),
    ("critical_rr_low", "normal_rr_low", False),
    ("normal_rr_high", "critical_rr_high", False),
    ("critical_spo2_below", "normal_spo2_low", False),
    ("normal_temp_low", "normal_temp_high", True),
    ("critical_moaas_max", "normal_moaas_low", True),
    ("start_hr_min", "start_hr_max", True),
)


def _values(data: dict[str, Any]) -> dict[str, Any]:
    values = {name: data[name] for name in PROTOCOL_FIELDS}
    values["name"] = values["name"].strip()
    values["drug"] = values["drug"].strip()
    values["limits"] = Limits.from_dict(data.get("limits")).to_dict()
    problems = limits_problems(values["limits"])
    if problems:
        raise RuleError(" ".join(problems.values()))
    return values


def _snapshot(protocol: Protocol) -> dict[str, Any]:
    values = audit.snapshot(protocol, PROTOCOL_FIELDS)
    values["limits"] = Limits.from_dict(protocol.limits).to_dict()
    return values


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed, with the limits flattened so each changed threshold is listed."""
    flat_before = {**before, **{f"limits.{k}": v for k, v in before["limits"].items()}}
    flat_after = {**after, **{f"limits.{k}": v for k, v in after["limits"].items()}}
    for flat in (flat_before, flat_after):
        del flat["limits"]
    return audit.changes(flat_before, flat_after)


def _name_taken(name: str, chain: list[Protocol] | None = None) -> bool:
    """Is the name used by any version of another protocol? (Old versions keep their
    names, and name + version is unique.)"""
    query = sa.select(Protocol.id).where(sa.func.lower(Protocol.name) == name.lower())
    if chain:
        query = query.where(Protocol.id.not_in([p.id for p in chain]))
    return db.session.scalar(query.limit(1)) is not None


def create_protocol(data: dict[str, Any], actor: Staff | None) -> Protocol:
    """A new protocol, version 1 (physicians only; the view checks the role)."""
    values = _values(data)
    if _name_taken(values["name"]):
        raise RuleError(
            f"A protocol named “{values['name']}” already exists; edit it to make a new version."
        )
    protocol = Protocol(
        **values,
        version=1,
        is_current=True,
        created_at=utcnow(),
        created_by_id=actor.id if actor is not None else None,
    )
    db.session.add(protocol)
    audit.record(
        "protocol.created",
        entity=protocol,
        actor=actor,
        details={"after": _snapshot(protocol), "version": 1},
    )
    return protocol


REASON_MAX = 500


def revise_protocol(
    protocol: Protocol, data: dict[str, Any], actor: Staff, reason: str = ""
) -> Protocol | None:
    """Save an edit as the next version, with the reason for it; the edited row is left as
    it was apart from no longer being current. None when nothing changed. A save drawn from
    a version that is no longer current is refused (someone else made a newer one)."""
    if not protocol.is_current:
        newer = current_version_of(protocol)
        who = newer.created_by.display_name if newer.created_by else "another user"
        raise StaleRecord(who, newer.created_at, what="This protocol")
    values = _values(data)
    before = _snapshot(protocol)
    changes = _diff(before, values)
    if not changes:
        return None
    reason = (reason or "").strip()
    if not reason:
        raise RuleError("Give the reason for the change.", field="change_reason")
    if len(reason) > REASON_MAX:
        raise RuleError(f"The reason is at most {REASON_MAX} characters.", field="change_reason")
    if values["name"] != protocol.name and _name_taken(values["name"], version_history(protocol)):
        raise RuleError(f"Another protocol is already named “{values['name']}”.")
    # Compare-and-set: only one editor can retire this version, so two racing saves cannot
    # both create "the next version".
    retired = db.session.execute(
        sa.update(Protocol)
        .where(Protocol.id == protocol.id, Protocol.is_current.is_(True))
        .values(is_current=False)
        .execution_options(synchronize_session=False)
    )
    if retired.rowcount != 1:
        raise StaleRecord("another user", None, what="This protocol")
    set_committed_value(protocol, "is_current", False)
    revision = Protocol(
        **values,
        version=protocol.version + 1,
        previous_version_id=protocol.id,
        is_current=True,
        created_at=utcnow(),
        created_by_id=actor.id,
        change_reason=reason,
    )
    db.session.add(revision)
    audit.record(
        "protocol.revised",
        entity=revision,
        actor=actor,
        details={
            "previous_version_id": protocol.id,
            "version": revision.version,
            "changes": changes,
            "reason": reason,
        },
    )
    return revision


def ensure_default_protocol(actor: Staff | None = None) -> Protocol:
    """The first-run depression protocol; idempotent: returns the current version of the
    default's chain when it already exists (even if a physician has since revised it)."""
    first = db.session.scalar(
        sa.select(Protocol)
        .where(Protocol.name == DEFAULT_PROTOCOL["name"])
        .order_by(Protocol.version)
        .limit(1)
    )
    if first is not None:
        return current_version_of(first)
    return create_protocol(DEFAULT_PROTOCOL, actor)


# How the comparison names each field (the form's labels, with their units).
FIELD_LABELS = {
    "name": "Name",
    "drug": "Drug",
    "indication": "Indication",
    "dose_mg_per_kg": "Dose (mg/kg)",
    "infusion_minutes": "Infusion time (minutes)",
    "max_total_mg": "Maximum total dose (mg)",
    "concentration_mg_per_ml": "Concentration (mg/mL)",
    "reading_interval_infusion_min": "Reading interval during the infusion (minutes)",
    "reading_interval_recovery_min": "Reading interval during recovery (minutes)",
    "min_observation_min": "Minimum observation after the infusion (minutes)",
}


def compare_rows(older: Protocol, newer: Protocol) -> list[tuple[str, Any, Any, bool]]:
    """[(label, older value, newer value, changed)] for every field and threshold, for the
    side-by-side comparison of two versions."""
    rows = [
        (FIELD_LABELS.get(name, name), getattr(older, name), getattr(newer, name))
        for name in PROTOCOL_FIELDS
    ]
    old_limits = Limits.from_dict(older.limits).to_dict()
    new_limits = Limits.from_dict(newer.limits).to_dict()
    rows += [
        (f"{f.label} ({f.unit})" if f.unit else f.label, old_limits[f.key], new_limits[f.key])
        for f in LIMIT_FIELDS
    ]
    return [(label, old, new, old != new) for label, old, new in rows]
