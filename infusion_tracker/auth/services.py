"""Accounts: creating staff, signing in and out, changing passwords. Each writes its audit row."""

import re
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from .. import audit, database
from ..errors import RuleError
from ..extensions import db
from ..models import ROLE_ADMIN, ROLES, Staff, new_session_token
from ..passwords import hash_password, problems, verify_password
from ..timeutil import utcnow

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
FULL_NAME_MAX = 120
CREDENTIALS_MAX = 60
# What an audit row shows of an account (never the hash or the session token).
STAFF_AUDIT_FIELDS = ("username", "full_name", "credentials", "role", "active")
# Any advisory lock number that no other code uses: serialises first-run setup on PostgreSQL.
SETUP_LOCK = 7201002


def normalize_username(username: str) -> str:
    return (username or "").strip().lower()


def find_staff(username: str, for_update: bool = False) -> Staff | None:
    """The account with this username, compared case-insensitively. `for_update`: locked
    against another sign-in's count (FOR NO KEY UPDATE on PostgreSQL: an audit row naming the
    account, appended meanwhile, does not wait for the password check)."""
    query = sa.select(Staff).where(Staff.username == normalize_username(username))
    if for_update:
        query = query.with_for_update(key_share=True)
    return db.session.scalar(query)


def any_staff_exists() -> bool:
    return bool(db.session.scalar(sa.select(sa.exists().where(Staff.id.is_not(None)))))


def check_new_password(password: str, username: str, field: str = "password") -> None:
    for problem in problems(password, username):
        raise RuleError(problem, field=field)


def check_names(full_name: str, credentials: str) -> tuple[str, str]:
    """Full name required; both within their column lengths."""
    full_name, credentials = (full_name or "").strip(), (credentials or "").strip()
    if not full_name:
        raise RuleError("Enter the full name.", field="full_name")
    if len(full_name) > FULL_NAME_MAX:
        raise RuleError(f"Full name must be at most {FULL_NAME_MAX} characters.", "full_name")
    if len(credentials) > CREDENTIALS_MAX:
        raise RuleError(f"Credentials must be at most {CREDENTIALS_MAX} characters.", "credentials")
    return full_name, credentials


def create_staff(
    username: str,
    full_name: str,
    role: str,
    password: str,
    credentials: str = "",
    must_change_password: bool = False,
    actor: Staff | None = None,
    via: str = "",
) -> Staff:
    """Create an account. Usernames are unique case-insensitively; passwords meet the policy."""
    username = normalize_username(username)
    if not USERNAME_RE.match(username):
        raise RuleError(
            "Usernames are 2–64 characters: letters, digits, dot, dash or underscore, "
            "starting with a letter or digit.",
            field="username",
        )
    full_name, credentials = check_names(full_name, credentials)
    if role not in ROLES:
        raise RuleError(f"Role must be one of: {', '.join(ROLES)}.", field="role")
    if find_staff(username) is not None:
        raise RuleError(f"The username “{username}” is already taken.", field="username")
    check_new_password(password, username)
    staff = Staff(
        username=username,
        full_name=full_name,
        credentials=credentials,
        role=role,
        password_hash=hash_password(password),
        password_changed_at=utcnow(),
        must_change_password=must_change_password,
        failed_logins=0,
        active=True,
    )
    db.session.add(staff)
    db.session.flush()
    details = {"after": audit.snapshot(staff, STAFF_AUDIT_FIELDS)}
    if via:
        details["via"] = via
    # The first account has no one else to be created by: it is its own actor.
    audit.record("staff.created", entity=staff, actor=actor or staff, details=details)
    return staff


def create_first_admin(
    username: str, full_name: str, password: str, credentials: str = ""
) -> Staff:
    """The /setup page: an administrator, only while no account exists at all (SPEC §1)."""
    # Two setup forms submitted at once must not both create an administrator.
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text(f"SELECT pg_advisory_xact_lock({SETUP_LOCK})"))
    else:
        database.take_write_lock(db.session)
    if any_staff_exists():
        raise RuleError("An account already exists; setup is closed. Sign in instead.")
    return create_staff(
        username, full_name, ROLE_ADMIN, password, credentials=credentials, via="setup"
    )


class LoginRefused(Exception):
    pass


GENERIC_REFUSAL = "Username or password is not correct, or the account is locked or inactive."
# Verified against when the username is unknown, so every refusal costs the same time.
_DUMMY_HASH: dict[str, str] = {}


def _burn_time(password: str) -> None:
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in _DUMMY_HASH:
        _DUMMY_HASH[method] = hash_password("not-a-real-password-000")
    verify_password(_DUMMY_HASH[method], password)


def authenticate(username: str, password: str) -> Staff:
    """Check a sign-in attempt; count failures and lock after too many (SPEC §8).

    The refusal is the same whether the username is unknown, the password wrong, the account
    locked or deactivated, so a guesser learns nothing about which accounts exist.
    """
    staff = find_staff(username, for_update=True)
    now = utcnow()
    if staff is None:
        _burn_time(password)
        audit.record(
            "auth.login_failed",
            attempted_username=normalize_username(username)[:64],
            details={"reason": "unknown user"},
        )
        raise LoginRefused(GENERIC_REFUSAL)
    if staff.is_locked(now):
        _burn_time(password)
        audit.record(
            "auth.login_failed",
            attempted_username=staff.username,
            entity=staff,
            details={"reason": "locked", "locked_until": staff.locked_until},
        )
        raise LoginRefused(GENERIC_REFUSAL)
    if not verify_password(staff.password_hash, password):
        count_failed_password(staff, "wrong password")
        raise LoginRefused(GENERIC_REFUSAL)
    if not staff.active:
        audit.record(
            "auth.login_failed",
            attempted_username=staff.username,
            entity=staff,
            details={"reason": "inactive"},
        )
        raise LoginRefused(GENERIC_REFUSAL)
    if staff.has_two_factor:
        # Signed in only once the code is given too (record_sign_in then).
        audit.record("auth.password_accepted", actor=staff, entity=staff)
        return staff
    record_sign_in(staff)
    return staff


def record_sign_in(staff: Staff, second_factor: str = "") -> None:
    staff.failed_logins = 0
    staff.locked_until = None
    staff.last_login_at = utcnow()
    details = {"second_factor": second_factor} if second_factor else None
    audit.record("auth.login", actor=staff, entity=staff, details=details)


def end_sessions(staff: Staff) -> None:
    """Invalidate every browser session of this user (copied cookies included)."""
    staff.session_token = new_session_token()


def logout(staff: Staff) -> None:
    """Sign out everywhere: the session token changes, so no copy of the cookie still works."""
    end_sessions(staff)
    audit.record("auth.logout", actor=staff, entity=staff)


class WrongCurrentPassword(RuleError):
    """The current password was wrong; the failure is counted, so the caller commits."""


def count_failed_password(
    staff: Staff,
    reason: str | None = None,
    signed_in: bool = False,
    action: str = "auth.login_failed",
) -> None:
    """The one lockout rule (SPEC §8): each wrong password (at sign-in, password change or
    re-authentication before signing) counts; LOCKOUT_THRESHOLD of them lock the account for
    LOCKOUT_MINUTES. When it was typed inside a signed-in session (a stolen one, perhaps),
    locking also ends that user's sessions."""
    config = current_app.config
    # At the sign-in form nobody is proven to be anyone: the row says "anonymous (username)".
    who = {"actor": staff} if signed_in else {"attempted_username": staff.username}
    staff.failed_logins = (staff.failed_logins or 0) + 1
    details = {"reason": reason} if reason else {}
    audit.record(
        action, entity=staff, details={**details, "failed_logins": staff.failed_logins}, **who
    )
    if staff.failed_logins >= config["LOCKOUT_THRESHOLD"]:
        staff.locked_until = utcnow() + timedelta(minutes=config["LOCKOUT_MINUTES"])
        staff.failed_logins = 0
        if signed_in:
            end_sessions(staff)
        audit.record(
            "auth.locked_out", entity=staff, details={"locked_until": staff.locked_until}, **who
        )


def change_password(staff: Staff, current_password: str, new_password: str) -> None:
    """One's own password, with the current one as proof; ends every other session."""
    if not verify_password(staff.password_hash, current_password or ""):
        count_failed_password(staff, "wrong current password", signed_in=True)
        raise WrongCurrentPassword("The current password is not correct.", "current_password")
    if verify_password(staff.password_hash, new_password or ""):
        raise RuleError("The new password must differ from the current one.", field="password")
    check_new_password(new_password or "", staff.username)
    staff.password_hash = hash_password(new_password)
    staff.password_changed_at = utcnow()
    staff.must_change_password = False
    staff.failed_logins = 0
    end_sessions(staff)
    audit.record("auth.password_changed", actor=staff, entity=staff)
