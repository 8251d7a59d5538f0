"""The end of a sign-in, shared by the password step and the second-factor step."""

import time

import sqlalchemy as sa
from flask import redirect, session, url_for
from flask_login import login_user

from ..extensions import db
from ..models import ROLE_ADMIN, Staff
from ..security import start_login_session

PENDING = "two_factor_pending"
# A right password is good for this long while the code is typed; then sign in again.
PENDING_SECONDS = 300


def home_for(staff: Staff) -> str:
    return url_for("admin.staff_list") if staff.role == ROLE_ADMIN else url_for("main.board")


def complete_sign_in(staff: Staff, target: str | None):
    session.clear()  # a new session on sign-in: nothing carried over (session fixation)
    login_user(staff)
    start_login_session()
    if staff.must_change_password:
        return redirect(url_for("auth.change_password"))
    return redirect(target or home_for(staff))


def begin_second_step(staff: Staff, target: str | None):
    """After the right password for an account with a second factor: ask for the code.
    Nobody is signed in yet; the cookie holds the account's session token, as a signed-in
    cookie would, and when the password was given."""
    session.clear()
    session[PENDING] = {"token": staff.session_token, "at": time.time(), "next": target}
    return redirect(url_for("two_factor.sign_in"))


def pending_staff() -> Staff | None:
    """The account whose password was just given, while the code step is open."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return None
    try:
        fresh = time.time() - float(pending.get("at", 0)) <= PENDING_SECONDS
    except (TypeError, ValueError):
        return None
    if not fresh:
        return None
    staff = db.session.scalar(sa.select(Staff).where(Staff.session_token == pending.get("token")))
    return staff if staff is not None and staff.active and staff.has_two_factor else None


def pending_target() -> str | None:
    pending = session.get(PENDING)
    return pending.get("next") if isinstance(pending, dict) else None
