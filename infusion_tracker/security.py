"""Login for every endpoint, idle and absolute session limits, forced password change,
and the security headers on every response (SPEC §8)."""

import time
from datetime import timedelta
from urllib.parse import urlsplit

import orjson
import sqlalchemy as sa
from flask import current_app, flash, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface, session_json_serializer
from flask_login import current_user, logout_user
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from .extensions import db, login_manager
from .models import Staff
from .permissions import PASSIVE_ATTR, PUBLIC_ATTR

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# On every response (SPEC §8), replacing any value the response had.
ALWAYS_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
HSTS_HEADERS = (("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),)
NO_STORE_HEADERS = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
FIXED_NAMES = frozenset(
    name.lower() for name, _ in ALWAYS_HEADERS + HSTS_HEADERS + NO_STORE_HEADERS
)
# Activity is noted in the cookie at most this often: a page shown again within it sends no
# new cookie (signing one costs about a tenth of a light page). The idle limit so counts from
# at most this long before the last request: it ends early, never late.
SEEN_AT_STEP_SECONDS = 5
# What a user with a forced password change may still reach.
PASSWORD_CHANGE_ENDPOINTS = ("auth.change_password", "auth.logout", "auth.keep_alive")


# Built once: every request signed in runs it.
_STAFF_BY_TOKEN = sa.select(Staff).where(Staff.session_token == sa.bindparam("token"))


@login_manager.user_loader
def load_user(session_token: str) -> Staff | None:
    """The cookie names a session token, not a user id: a rotated token ends every copy."""
    staff = db.session.scalar(_STAFF_BY_TOKEN, {"token": session_token})
    return staff if staff is not None and staff.active else None


@login_manager.unauthorized_handler
def unauthorized():
    flash("Please sign in to continue.", "info")
    return redirect(url_for("auth.login", next=_return_path()))


def _return_path() -> str | None:
    """Where to come back to after signing in. A GET comes back to itself; a form's POST
    (whose address may answer GET with 405) to the page the form was on: the Referer when it
    is a page of this site, else the POST's own address or its parent
    (/infusions/5/readings → /infusions/5) if either is a page."""
    if request.method == "GET":
        return request.full_path if request.query_string else request.path
    candidates = [request.path, request.path.rsplit("/", 1)[0]]
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host:
        query = f"?{referrer.query}" if referrer.query else ""
        candidates.insert(0, referrer.path + query)
    return next((path for path in candidates if _is_signed_in_page(path)), None)


def _is_signed_in_page(path: str) -> bool:
    """A same-site path that a signed-in GET can open (not /login itself, not a 405)."""
    if not is_safe_next(path):
        return False
    adapter = current_app.url_map.bind(request.host)
    try:
        endpoint, _ = adapter.match(urlsplit(path).path, method="GET")
    except (HTTPException, RequestRedirect):
        return False
    return not _is_public(endpoint)


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
    minutes = config["IDLE_TIMEOUT_MINUTES"]
    if now - seen_at > minutes * 60:
        return (
            f"You were signed out after {minutes} minute{'' if minutes == 1 else 's'} without "
            "activity. Please sign in again."
        )
    return None


def enforce_login():
    """Every endpoint not marked @public needs a live, unexpired sign-in."""
    endpoint = request.endpoint
    if endpoint is None or endpoint == "static":
        return None  # no user lookup for every stylesheet
    public = _is_public(endpoint)
    if not current_user.is_authenticated:
        return None if public else login_manager.unauthorized()
    now = time.time()
    reason = _session_expired(now)
    if reason:
        # Only this browser's session ends; the user's other workstations are unaffected.
        logout_user()
        session.clear()
        flash(reason, "info")
        # A public page (the sign-in page the idle script opens at the timeout) is shown
        # signed out rather than treating the expired sign-in as live.
        return None if public else redirect(url_for("auth.login", next=_return_path()))
    if public:
        return None  # the sign-in page, opened by the idle script, is not activity
    passive = getattr(current_app.view_functions[endpoint], PASSIVE_ATTR, False)
    if not passive and now - float(session.get("seen_at", 0)) >= SEEN_AT_STEP_SECONDS:
        session["seen_at"] = now
    if current_user.must_change_password and endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        flash("Choose a new password before you continue.", "info")
        return redirect(url_for("auth.change_password"))
    return None


def set_security_headers(response):
    headers = response.headers
    if "Content-Security-Policy" not in headers:  # a view may send a stricter one
        headers.add("Content-Security-Policy", CSP)
    fixed = ALWAYS_HEADERS
    if current_app.config["SESSION_COOKIE_SECURE"]:
        fixed += HSTS_HEADERS
    # Patient data must not linger in a shared workstation's cache; only static files may.
    if request.endpoint != "static":
        fixed += NO_STORE_HEADERS
    if any(name.lower() in FIXED_NAMES for name, _ in headers):
        for name, value in fixed:
            headers[name] = value  # ours replace whatever the response had
    else:
        headers.extend(fixed)  # the usual case: appended without a search per header
    return response


class SessionJSON:
    """The session cookie's JSON, written and read by orjson. What the app keeps in the cookie
    is plain JSON (times as numbers, flashed messages as [category, text] pairs); Flask's
    tagged JSON marks each tuple, markup or date in Python, a third of a recording's cookie
    work. A cookie written before by Flask's holds a tagged object ({" t": …}; a tag is the
    only key that starts with a space, and inside a string a brace and quote are escaped):
    Flask's reads it."""

    def dumps(self, value: dict) -> str:
        return orjson.dumps(value).decode()

    def loads(self, value: str) -> dict:
        if '{" ' in value:
            return session_json_serializer.loads(value)
        return orjson.loads(value)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session in orjson (SessionJSON), its serializer built once per key
    rather than each time a cookie is read or written (twice per signed-in request)."""

    serializer = SessionJSON()

    def __init__(self):
        self.serializers = {}

    def get_signing_serializer(self, app):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if keys not in self.serializers:
            self.serializers[keys] = super().get_signing_serializer(app)
        return self.serializers[keys]


def idle_settings() -> dict:
    """What static/js/idle.js needs on a signed-in page: the idle limit, how long before it to
    warn (a minute, or half a short limit), and the page to come back to after signing in."""
    config = current_app.config
    timeout = round(config["IDLE_TIMEOUT_MINUTES"] * 60)
    return {
        "timeout": timeout,
        "warning": min(config["IDLE_WARNING_SECONDS"], timeout // 2),
        "return_path": _return_path() or "",
    }


def init_app(app) -> None:
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    # The cookie itself never outlives the absolute limit enforced above.
    app.permanent_session_lifetime = timedelta(hours=app.config["SESSION_MAX_HOURS"])
    # The cookie is sent again when it changes (a new seen_at), not on every response.
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    app.session_interface = SessionInterface()
    app.before_request(enforce_login)
    app.after_request(set_security_headers)
    app.jinja_env.globals["idle_settings"] = idle_settings
