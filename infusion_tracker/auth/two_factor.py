"""Second factor: time-based one-time codes (RFC 6238, pyotp) with recovery codes.

Enrolment stores a new key (not yet in use) and shows it as a QR code drawn here (segno, no
outside service) and as text; a correct code confirms it. A code is accepted once: the
accepted time-step is stored and a code from that step or an earlier one is refused.
The key is stored sealed with TOTP_KEY (sealing.py), outside the database's reach.
Recovery codes are random, shown once, stored as SHA-256 digests and removed when used.
REQUIRE_TWO_FACTOR_ROLES lists the roles that must enrol (e.g. ["admin", "physician"]).
"""

import hashlib
import hmac
import secrets

import pyotp
from flask import current_app

from .. import audit
from ..errors import RuleError
from ..models import Staff
from ..passwords import TEMPORARY_ALPHABET
from ..sealing import seal, unseal
from ..timeutil import utcnow

ISSUER = "Infusion Tracker"
RECOVERY_CODES = 10
# A code from the step before or after now is accepted (phone clocks drift ~30 s).
DRIFT_STEPS = 1


def required_for(staff: Staff) -> bool:
    return staff.role in current_app.config["REQUIRE_TWO_FACTOR_ROLES"]


def must_enrol(staff: Staff) -> bool:
    return required_for(staff) and not staff.has_two_factor


def secret_of(staff: Staff) -> str | None:
    """The TOTP key in clear (opened with TOTP_KEY; sealing.WrongSealKey if it does not)."""
    if staff.totp_sealed is None:
        return None
    return unseal(staff.totp_sealed, current_app.config["TOTP_KEY"])


def start_enrolment(staff: Staff) -> None:
    """A new key, not in use until confirmed with a code from it."""
    if staff.has_two_factor:
        raise RuleError("Two-factor sign-in is already on for this account.")
    staff.totp_sealed = seal(pyotp.random_base32(), current_app.config["TOTP_KEY"])
    staff.totp_last_step = None


def provisioning_uri(staff: Staff) -> str:
    issuer = current_app.config.get("CLINIC_NAME") or ISSUER
    return pyotp.TOTP(secret_of(staff)).provisioning_uri(name=staff.username,
                                                         issuer_name=issuer)


def qr_data_uri(staff: Staff) -> str:
    """The enrolment QR code as an SVG data URI (allowed by the CSP's img-src data:)."""
    import segno  # only at enrolment: not worth importing at every worker's start

    return segno.make(provisioning_uri(staff), error="m").svg_data_uri(scale=5, border=2)


def grouped_key(staff: Staff) -> str:
    """The key in groups of four, for typing into an authenticator by hand."""
    key = secret_of(staff) or ""
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


def _accepted_step(staff: Staff, code: str) -> int | None:
    """The time-step the code belongs to, if it is right and newer than the last one used."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6) or staff.totp_sealed is None:
        return None
    totp = pyotp.TOTP(secret_of(staff))
    now_step = totp.timecode(utcnow())
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if staff.totp_last_step is not None and step <= staff.totp_last_step:
                return None  # replayed (or older than one already used)
            return step
    return None


def _digest(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").lower().encode()).hexdigest()


def _new_recovery_codes(staff: Staff) -> list[str]:
    codes = [
        "-".join("".join(secrets.choice(TEMPORARY_ALPHABET) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODES)
    ]
    staff.recovery_codes = [_digest(code) for code in codes]
    return codes


def confirm_enrolment(staff: Staff, code: str) -> list[str]:
    """Turn the second factor on with a first code; returns the recovery codes (shown once)."""
    if staff.has_two_factor:
        raise RuleError("Two-factor sign-in is already on for this account.")
    step = _accepted_step(staff, code or "")
    if step is None:
        raise RuleError(
            "That code is not right. Enter the 6 digits your authenticator app shows now.",
            field="code",
        )
    staff.totp_last_step = step
    staff.totp_confirmed_at = utcnow()
    codes = _new_recovery_codes(staff)
    audit.record("auth.two_factor_enrolled", actor=staff, entity=staff)
    return codes


def check_code(staff: Staff, code: str) -> str | None:
    """At sign-in: "totp" or "recovery" when the code is accepted (and used up), else None."""
    step = _accepted_step(staff, code or "")
    if step is not None:
        staff.totp_last_step = step
        return "totp"
    digest = _digest("".join((code or "").split()))
    remaining = list(staff.recovery_codes or [])
    for stored in remaining:
        if hmac.compare_digest(stored, digest):
            remaining.remove(stored)
            staff.recovery_codes = remaining  # a new list, so the JSON column is saved
            return "recovery"
    return None


def turn_off(staff: Staff) -> None:
    """The holder switches it off (only where their role does not require it)."""
    if required_for(staff):
        raise RuleError("Your role must use two-factor sign-in; it cannot be turned off.")
    _clear(staff)
    audit.record("auth.two_factor_disabled", actor=staff, entity=staff)


def reset(staff: Staff, actor: Staff) -> None:
    """The administrator removes a lost second factor; the holder enrols again."""
    if staff.totp_sealed is None:
        raise RuleError(f"{staff.display_name} has no second factor to reset.")
    _clear(staff)
    audit.record("staff.two_factor_reset", actor=actor, entity=staff)


def _clear(staff: Staff) -> None:
    staff.totp_sealed = None
    staff.totp_confirmed_at = None
    staff.totp_last_step = None
    staff.recovery_codes = None
