"""Login for every endpoint, idle and absolute session limits, forced password change,
and the security headers on every response (SPEC §8)."""

import time
from urllib.parse import urljoin, urlsplit

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


@login_manager.user_loader
def load_user(session_token: str) -> Staff | None:
    staff = db.session.scalar(sa.select(Staff).where(Staff.session_token == session_token))
    return staff if staff is not None and staff.active else None


def is_safe_next(target: str | None) -> bool:
    """`next=` may only point inside this site."""
    if not target or "\\" in target:
        return False
    ref = urlsplit(request.host_url)
    test = urlsplit(urljoin(request.host_url, target))
    return test.scheme in ("http", "https") and test.netloc == ref.netloc and target.startswith("/")


def start_login_session() -> None:
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


def enforce_login():
    endpoint = request.endpoint
    if _is_public(endpoint):
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    now = time.time()
    config = current_app.config
    idle = now - session.get("seen_at", 0) > config["IDLE_TIMEOUT_MINUTES"] * 60
    expired = now - session.get("login_at", 0) > config["SESSION_MAX_HOURS"] * 3600
    if idle or expired:
        logout_user()
        session.clear()
        flash(
            "You were signed out after "
            + (
                f"{config['IDLE_TIMEOUT_MINUTES']} minutes without activity."
                if idle
                else f"{config['SESSION_MAX_HOURS']} hours. Please sign in again."
            ),
            "info",
        )
        return redirect(
            url_for("auth.login", next=request.full_path if request.method == "GET" else None)
        )
    session["seen_at"] = now
    if current_user.must_change_password and endpoint not in (
        "auth.change_password",
        "auth.logout",
    ):
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
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def init_app(app) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    app.before_request(enforce_login)
    app.after_request(set_security_headers)
