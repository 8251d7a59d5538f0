"""Login for every endpoint, idle and absolute session limits, forced password change,
and the security headers on every response (SPEC §8)."""

import time
from datetime import timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app, flash, redirect, request, session, url_for
from flask_login import current_user, logout_user

from .extensions import db, login_manager
from .models import Staff
from .permissions import PUBLIC_ATTR

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# What a user with a forced password change may still reach.
PASSWORD_CHANGE_ENDPOINTS = ("auth.change_password", "auth.logout")


@login_manager.user_loader
def load_user(session_token: str) -> Staff | None:
    """The cookie names a session token, not a user id: a rotated token ends every copy."""
    staff = db.session.scalar(sa.select(Staff).where(Staff.session_token == session_token))
    return staff if staff is not None and staff.active else None


@login_manager.unauthorized_handler
def unauthorized():
    flash("Please sign in to continue.", "info")
    return redirect(url_for("auth.login", next=_return_path()))


def _return_path() -> str | None:
    """Where to come back to after signing in: only a GET can be replayed (a POST's address
    would answer 405)."""
    if request.method != "GET":
        return None
    return request.full_path if request.query_string else request.path


def is_safe_next(target: str | None) -> bool:
    """`next=` may only be a path on this site (no scheme, host, backslash or control chars)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def start_login_session() -> None:
    """Stamp a fresh sign-in: the absolute limit counts from login_at, the idle one from
    seen_at; auth_at is when the password was last typed (signing asks for a recent one)."""
    now = time.time()
    session.permanent = True
    session["login_at"] = now
    session["seen_at"] = now
    session["auth_at"] = now


def _is_public(endpoint: str | None) -> bool:
    if endpoint is None or endpoint == "static":
        return True
    view = current_app.view_functions.get(endpoint)
    return bool(view and getattr(view, PUBLIC_ATTR, False))


def _session_expired(now: float) -> str | None:
    """Why this browser session is over, or None while it is within both limits."""
    config = current_app.config
    try:
        seen_at = float(session.get("seen_at", 0))
        login_at = float(session.get("login_at", 0))
    except (TypeError, ValueError):
        return "Your session was not valid. Please sign in again."
    if now - login_at > config["SESSION_MAX_HOURS"] * 3600:
        hours = config["SESSION_MAX_HOURS"]
        return f"You were signed out after {hours} hours. Please sign in again."
    if now - seen_at > config["IDLE_TIMEOUT_MINUTES"] * 60:
        return (
            f"You were signed out after {config['IDLE_TIMEOUT_MINUTES']} minutes without "
            "activity. Please sign in again."
        )
    return None


def enforce_login():
    """Every endpoint not marked @public needs a live, unexpired sign-in."""
    endpoint = request.endpoint
    if _is_public(endpoint):
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    now = time.time()
    reason = _session_expired(now)
    if reason:
        # Only this browser's session ends; the user's other workstations are unaffected.
        logout_user()
        session.clear()
        flash(reason, "info")
        return redirect(url_for("auth.login", next=_return_path()))
    session["seen_at"] = now
    if current_user.must_change_password and endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        flash("Choose a new password before you continue.", "info")
        return redirect(url_for("auth.change_password"))
    return None


def set_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if current_app.config["SESSION_COOKIE_SECURE"]:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    # Patient data must not linger in a shared workstation's cache; only static files may.
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def init_app(app) -> None:
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    # The cookie itself never outlives the absolute limit enforced above.
    app.permanent_session_lifetime = timedelta(hours=app.config["SESSION_MAX_HOURS"])
    app.before_request(enforce_login)
    app.after_request(set_security_headers)
