"""Accounts: creating staff, signing in and out, changing passwords. Each writes its audit row."""

import re
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from .. import audit
from ..errors import RuleError
from ..extensions import db
from ..models import ROLES, Staff, new_session_token
from ..passwords import hash_password, problems, verify_password
from ..timeutil import utcnow

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
# Verified against when the username is unknown, so both paths cost the same time.
_DUMMY_HASH: dict[str, str] = {}


def normalize_username(username: str) -> str:
    return username.strip().lower()


def find_staff(username: str) -> Staff | None:
    return db.session.scalar(sa.select(Staff).where(Staff.username == normalize_username(username)))


def check_new_password(password: str, username: str) -> None:
    for problem in problems(password, username):
        raise RuleError(problem)


def create_staff(
    username: str,
    full_name: str,
    role: str,
    password: str,
    credentials: str = "",
    must_change_password: bool = False,
    actor: Staff | None = None,
) -> Staff:
    """Create an account. Usernames are unique case-insensitively; passwords meet the policy."""
    username = normalize_username(username)
    if not USERNAME_RE.match(username):
        raise RuleError(
            "Username: 2–64 characters, letters, digits, dot, dash or underscore, "
            "starting with a letter or digit."
        )
    if role not in ROLES:
        raise RuleError(f"Role must be one of: {', '.join(ROLES)}.")
    if find_staff(username) is not None:
        raise RuleError(f"Username: “{username}” is already taken.")
    check_new_password(password, username)
    staff = Staff(
        username=username,
        full_name=full_name.strip(),
        credentials=credentials.strip(),
        role=role,
        password_hash=hash_password(password),
        password_changed_at=utcnow(),
        must_change_password=must_change_password,
    )
    db.session.add(staff)
    db.session.flush()
    audit.record(
        "staff.created",
        entity=staff,
        actor=actor or staff,
        details={"after": audit.snapshot(staff, ("username", "full_name", "credentials", "role"))},
    )
    return staff


class LoginRefused(Exception):
    pass


GENERIC_REFUSAL = "Username or password is not correct, or the account is locked or inactive."


def authenticate(username: str, password: str) -> Staff:
    """Check a sign-in attempt; count failures and lock after too many (SPEC §8).

    The refusal message is the same whether or not the username exists.
    """
    config = current_app.config
    staff = find_staff(username)
    now = utcnow()
    if staff is None:
        if "hash" not in _DUMMY_HASH:
            _DUMMY_HASH["hash"] = hash_password("not-a-real-password-000")
        verify_password(_DUMMY_HASH["hash"], password)
        audit.record(
            "auth.login_failed",
            attempted_username=username[:64],
            details={"reason": "unknown user"},
        )
        raise LoginRefused(GENERIC_REFUSAL)
    if staff.is_locked(now):
        audit.record("auth.login_failed", actor=staff, entity=staff, details={"reason": "locked"})
        raise LoginRefused(GENERIC_REFUSAL)
    if not verify_password(staff.password_hash, password):
        staff.failed_logins += 1
        details = {"reason": "wrong password", "failed_logins": staff.failed_logins}
        audit.record("auth.login_failed", actor=staff, entity=staff, details=details)
        if staff.failed_logins >= config["LOCKOUT_THRESHOLD"]:
            staff.locked_until = now + timedelta(minutes=config["LOCKOUT_MINUTES"])
            staff.failed_logins = 0
            audit.record(
                "auth.locked_out",
                actor=staff,
                entity=staff,
                details={"locked_until": staff.locked_until},
            )
        raise LoginRefused(GENERIC_REFUSAL)
    if not staff.active:
        audit.record("auth.login_failed", actor=staff, entity=staff, details={"reason": "inactive"})
        raise LoginRefused(GENERIC_REFUSAL)
    staff.failed_logins = 0
    staff.locked_until = None
    staff.last_login_at = now
    audit.record("auth.login", actor=staff, entity=staff)
    return staff


def end_sessions(staff: Staff) -> None:
    """Invalidate every browser session of this user (copied cookies included)."""
    staff.session_token = new_session_token()


def logout(staff: Staff) -> None:
    end_sessions(staff)
    audit.record("auth.logout", actor=staff, entity=staff)


def change_password(staff: Staff, current_password: str, new_password: str) -> None:
    if not verify_password(staff.password_hash, current_password):
        raise RuleError("Current password: not correct.")
    if verify_password(staff.password_hash, new_password):
        raise RuleError("New password: must differ from the current one.")
    check_new_password(new_password, staff.username)
    staff.password_hash = hash_password(new_password)
    staff.password_changed_at = utcnow()
    staff.must_change_password = False
    end_sessions(staff)
    audit.record("auth.password_changed", actor=staff, entity=staff)
