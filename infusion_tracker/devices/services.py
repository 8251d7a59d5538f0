"""Monitor intake: devices (registered, revoked), messages received (kept raw, answered with an
ACK), proposed readings (accepted into the chart through the reading service, or dismissed).

Services add, flush and audit; the caller commits.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from .. import audit
from ..errors import RuleError
from ..extensions import db
from ..infusions import guards, readings
from ..models import (
    DEVICE_VALUE_FIELDS,
    PHASES,
    Device,
    DeviceMessage,
    InfusionSession,
    ProposedReading,
    Reading,
    Staff,
)
from ..timeutil import clinic_zone, utcnow
from . import hl7

log = logging.getLogger(__name__)

NAME_MAX, IDENTIFIER_MAX = 80, 120
# The phase a value observed now belongs to (the reading form suggests the same).
PHASE_FOR_STATUS = {
    "checked_in": "baseline",
    "infusing": "infusion",
    "paused": "infusion",
    "recovery": "recovery",
    "stopped_early": "recovery",
}
# Fields an accepting clinician may change (mean arterial pressure is shown, not charted).
EDITABLE_FIELDS = tuple(name for name in DEVICE_VALUE_FIELDS if name != "mean_arterial")
HTTP_STATUS = {"AA": 200, "AE": 422, "AR": 400}
# Settings with their defaults (override in instance/config.py like any other).
DEFAULTS = {"HL7_MAX_BYTES": 64 * 1024, "HL7_MESSAGES_PER_MINUTE": 60}


def setting(name: str) -> int:
    return int(current_app.config.get(name, DEFAULTS[name]))


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough (no guessing to slow down)."""
    return hashlib.sha256(token.encode()).hexdigest()


# --- Devices -----------------------------------------------------------------------------


def all_devices() -> list[Device]:
    return db.session.scalars(
        sa.select(Device).order_by(Device.active.desc(), Device.room, Device.name)
    ).all()


def get_device_or_404(device_id: int) -> Device:
    return db.get_or_404(Device, device_id)


def register_device(
    name: str, room: str, actor: Staff | None, identifier: str = "", via: str = ""
) -> tuple[Device, str]:
    """Add a device; returns it and its bearer token, which is not stored and never shown again."""
    name, room, identifier = (name or "").strip(), (room or "").strip(), (identifier or "").strip()
    if not name:
        raise RuleError("Enter the device's name.", field="name")
    if len(name) > NAME_MAX:
        raise RuleError(f"Name: at most {NAME_MAX} characters.", field="name")
    if not room:
        raise RuleError("Enter the room the device is in.", field="room")
    rooms = current_app.config["ROOMS"]
    if room not in rooms:
        raise RuleError(f"Room: choose one of {', '.join(rooms)}.", field="room")
    if len(identifier) > IDENTIFIER_MAX:
        raise RuleError(f"MSH-3 identifier: at most {IDENTIFIER_MAX} characters.", "identifier")
    if any(char in identifier for char in "|^~\\&"):
        raise RuleError(
            "MSH-3 identifier: give one part of MSH-3 (e.g. the EUI-64), without | ^ ~ \\ &.",
            field="identifier",
        )
    if identifier and db.session.scalar(
        sa.select(Device.id).where(Device.identifier == identifier, Device.active)
    ):
        raise RuleError(
            "Another active device already has that MSH-3 identifier.", field="identifier"
        )
    token = secrets.token_urlsafe(32)
    device = Device(
        name=name,
        room=room,
        identifier=identifier,
        token_hash=hash_token(token),
        created_by_id=actor.id if actor else None,
    )
    db.session.add(device)
    details = {"name": name, "room": room, "identifier": identifier}
    if via:
        details["via"] = via
    audit.record("device.registered", entity=device, details=details, actor=actor)
    return device, token


def revoke_device(device: Device, actor: Staff | None, via: str = "") -> None:
    """The token and identifier stop working at once; the device's messages stay on record."""
    if not device.active:
        raise RuleError(f"“{device.name}” was already revoked.")
    device.active = False
    device.revoked_at = utcnow()
    device.revoked_by_id = actor.id if actor else None
    details = {"name": device.name, "room": device.room}
    if via:
        details["via"] = via
    audit.record("device.revoked", entity=device, details=details, actor=actor)


def device_for_token(token: str) -> Device | None:
    if not token:
        return None
    return db.session.scalar(
        sa.select(Device).where(Device.token_hash == hash_token(token), Device.active)
    )


def device_for_identifiers(identifiers: set[str]) -> Device | None:
    """The one active device whose identifier appears in MSH-3 or OBX-18 (MLLP has no token)."""
    if not identifiers:
        return None
    found = db.session.scalars(
        sa.select(Device).where(
            Device.active, Device.identifier != "", Device.identifier.in_(identifiers)
        )
    ).all()
    return found[0] if len(found) == 1 else None


def recent_messages(device: Device, limit: int = 50) -> list[DeviceMessage]:
    return db.session.scalars(
        sa.select(DeviceMessage)
        .where(DeviceMessage.device_id == device.id)
        .order_by(DeviceMessage.received_at.desc(), DeviceMessage.id.desc())
        .limit(limit)
    ).all()


# --- Messages ----------------------------------------------------------------------------


@dataclass
class Answer:
    outcome: str
    ack: str
    reason: str = ""
    http_status: int = 200
    message: DeviceMessage | None = None
    proposed: list[ProposedReading] = field(default_factory=list)


def refusal(raw: str, outcome: str, reason: str, http_status: int, error_code="207") -> Answer:
    """An answer to a message that is not kept (no device known, too large, too many)."""
    control_id = ""
    try:
        control_id = hl7.read_envelope(raw).control_id
    except hl7.Refused as refused:
        control_id = refused.control_id
    ack = hl7.ack(control_id, outcome, reason, error_code=error_code)
    return Answer(outcome, ack, reason, http_status)


def rate_limited(device: Device, now: datetime) -> bool:
    """Too many messages from this device in the last minute (counted from the stored ones, so
    every worker process and the MLLP listener share the limit)."""
    limit = setting("HL7_MESSAGES_PER_MINUTE")
    count = db.session.scalar(
        sa.select(sa.func.count()).where(
            DeviceMessage.device_id == device.id,
            DeviceMessage.received_at > now - timedelta(minutes=1),
        )
    )
    return count >= limit


def session_in_room(room: str) -> tuple[InfusionSession | None, str]:
    """The session in progress in the room, or None and why not."""
    sessions = db.session.scalars(
        sa.select(InfusionSession).where(
            sa.func.lower(InfusionSession.room) == room.strip().lower(),
            InfusionSession.status.in_(readings.CHARTABLE_STATUSES),
            InfusionSession.signed_at.is_(None),
        )
    ).all()
    if not sessions:
        return None, f"No session is in progress in {room}; the values were not charted."
    if len(sessions) > 1:
        return None, f"More than one session is in progress in {room}; the values were not charted."
    return sessions[0], ""


def receive(device: Device, raw: str, via: str, now: datetime | None = None) -> Answer:
    """Take one message from a known device: keep it, propose its values to the session in
    the device's room, and build the ACK. Nothing is charted here."""
    now = now or utcnow()
    if rate_limited(device, now):
        log.warning("device %s (%s) over its rate limit; message not kept", device.id, device.name)
        return refusal(raw, "AR", "Too many messages from this device; try again shortly.", 429)
    # Text columns cannot hold a NUL byte (PostgreSQL refuses it): the kept copy spells it out.
    kept = raw.replace("\x00", "\\x00")
    record = DeviceMessage(device_id=device.id, received_at=now, via=via, raw=kept, outcome="AR")
    db.session.add(record)
    receiver = ""
    try:
        envelope = hl7.read_envelope(raw)
        record.control_id = envelope.control_id
        receiver = envelope.sender
        found = hl7.observations(envelope, clinic_zone(), now)
    except hl7.Refused as refused:
        record.control_id = refused.control_id or record.control_id
        record.outcome, record.reason = refused.outcome, refused.reason
        if refused.outcome == "AR":
            log.warning(
                "device %s sent a malformed message: %s; raw: %r",
                device.id,
                refused.reason,
                raw[:2000],
            )
        db.session.flush()
        ack = hl7.ack(
            record.control_id,
            refused.outcome,
            refused.reason,
            error_code=refused.error_code,
            receiver=receiver,
            now=now,
        )
        return Answer(refused.outcome, ack, refused.reason, HTTP_STATUS[refused.outcome], record)
    warnings = [f"Not charted (unknown code): {segment[:120]}" for segment in found.unknown]
    warnings += found.skipped
    infusion, why_not = session_in_room(device.room)
    if infusion is None:
        record.outcome, record.reason = "AE", why_not
        db.session.flush()
        ack = hl7.ack(
            record.control_id,
            "AE",
            why_not,
            error_code="206",
            receiver=receiver,
            warnings=warnings,
            now=now,
        )
        return Answer("AE", ack, why_not, HTTP_STATUS["AE"], record)
    record.outcome, record.infusion_id = "AA", infusion.id
    record.reason = " ".join(warnings)[:2000]
    db.session.flush()
    proposed = [
        ProposedReading(
            infusion_id=infusion.id,
            device_id=device.id,
            message_id=record.id,
            observed_at=group.observed_at,
            phase=PHASE_FOR_STATUS.get(infusion.status, "baseline"),
            unknown=group.unknown,
            created_at=now,
            **group.values,
        )
        for group in found.groups
    ]
    db.session.add_all(proposed)
    db.session.flush()
    if not proposed:
        warnings.append("No values we chart were in the message.")
    ack = hl7.ack(record.control_id, "AA", warnings=warnings, receiver=receiver, now=now)
    return Answer("AA", ack, "", 200, record, proposed)


# --- Proposed readings -------------------------------------------------------------------


# Built once: the session page asks on every view.
_PENDING = (
    sa.select(ProposedReading)
    .where(
        ProposedReading.infusion_id == sa.bindparam("infusion_id"),
        ProposedReading.status == "proposed",
    )
    .order_by(ProposedReading.observed_at, ProposedReading.id)
    .options(sa.orm.joinedload(ProposedReading.device))
)


def pending_for(infusion: InfusionSession) -> list[ProposedReading]:
    """Proposed readings waiting for an answer, oldest observation first."""
    return db.session.scalars(_PENDING, {"infusion_id": infusion.id}).all()


def get_proposed_or_404(proposed_id: int) -> ProposedReading:
    return db.get_or_404(ProposedReading, proposed_id)


def _ensure_open(proposed: ProposedReading) -> None:
    if proposed.status != "proposed":
        who = proposed.decided_by.display_name if proposed.decided_by else "someone"
        raise RuleError(f"These monitor values were already {proposed.status} by {who}.")


def accept(
    proposed: ProposedReading,
    actor: Staff,
    edits: dict | None = None,
    now: datetime | None = None,
) -> Reading:
    """Chart the monitor's values (with the clinician's edits) as a reading, through the
    reading service, so tier-1 refusals, flags and critical alerts are the same as typed ones.

    `edits` maps editable fields (and "phase", "note") to new values; a blank value removes
    that measurement. Raises readings.ReadingRefused naming the field, or RuleError.
    """
    _ensure_open(proposed)
    edits = edits or {}
    data = {
        "taken_at": proposed.observed_at,
        "phase": edits.get("phase") or proposed.phase,
        "note": edits.get("note") or "",
    }
    changed = {}
    for name in EDITABLE_FIELDS:
        sent = getattr(proposed, name)
        value = edits.get(name, sent)
        data[name] = value
        if name in edits and _differs(sent, value):
            changed[name] = [sent, value]
    if data["phase"] not in PHASES:
        raise readings.ReadingRefused({"phase": "Choose the phase of the session."})
    reading = readings.record_reading(proposed.infusion, data, actor, now)
    proposed.status = "accepted"
    proposed.reading_id = reading.id
    proposed.decided_by_id = actor.id
    proposed.decided_at = now or utcnow()
    audit.record(
        "reading.accepted_from_device",
        entity=proposed,
        patient_id=proposed.infusion.patient_id,
        details={
            "reading_id": reading.id,
            "device_id": proposed.device_id,
            "device": proposed.device.name,
            "observed_at": proposed.observed_at,
            "values": proposed.values(),
            "edited": changed,
        },
        actor=actor,
    )
    return reading


def _differs(sent: float | None, value) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return sent is not None
    try:
        return sent is None or float(value) != sent
    except (TypeError, ValueError):
        return True


def dismiss(proposed: ProposedReading, actor: Staff, reason: str = "") -> None:
    """Leave the monitor's values out of the chart (artifact, patient moving…); audited."""
    guards.begin_row_change(proposed.infusion, actor.id)
    _ensure_open(proposed)
    readings.ensure_chartable(proposed.infusion)
    proposed.status = "dismissed"
    proposed.decided_by_id = actor.id
    proposed.decided_at = utcnow()
    audit.record(
        "reading.dismissed_from_device",
        entity=proposed,
        patient_id=proposed.infusion.patient_id,
        details={
            "device_id": proposed.device_id,
            "device": proposed.device.name,
            "observed_at": proposed.observed_at,
            "values": proposed.values(),
            "reason": (reason or "").strip()[:500],
        },
        actor=actor,
    )
