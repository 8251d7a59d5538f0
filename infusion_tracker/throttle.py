"""Password attempts limited per address (issue 9, defect 5), with Flask-Limiter.

The account lockout alone let anyone lock any account with five guesses. Now one address
may try a given username only LOGIN_RATE_LIMIT_PER_USERNAME times (fewer than the lockout
threshold, so one place cannot lock an account out) and any usernames LOGIN_RATE_LIMIT
times. Only refused attempts count. Over the limit: a 429 page, audited.

The counts are kept in instance/ratelimit.db by default (ratelimit_store.py), shared by every
gunicorn worker: Flask-Limiter's memory:// counts per process, so 4 workers gave 4 times the
attempts. Several machines share RATELIMIT_STORAGE_URI (e.g. redis://…); memory:// is for
a single process only and says so in the log at start. RATELIMIT_ENABLED = False switches it
off (the test suite does, except in the tests of this module).
"""

from flask import Flask, current_app, render_template, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from . import (
    ratelimit_store,  # noqa: F401 (registers the instance-sqlite:// store)
    unit_of_work,
)
from .extensions import db

limiter = Limiter(key_func=get_remote_address)
# Limits Flask-Limiter's request hooks would apply to every view; this app sets none.
APP_WIDE_LIMITS = ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION", "RATELIMIT_META")
LIMITED_ATTR = "_password_attempts_limited"


def _refused(response) -> bool:
    """A password attempt that did not succeed (success redirects)."""
    return response.status_code != 302


def _posted_username() -> str:
    return (request.form.get("username") or "").strip().lower()[:64]


def _address_and_username() -> str:
    return f"{get_remote_address()}|{_posted_username()}"


def _per_address() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _per_username() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_PER_USERNAME"]


def limit_password_attempts(view):
    """For views that check a password: the sign-in form and the re-auth on signing."""
    view = limiter.limit(_per_address, methods=["POST"], deduct_when=_refused)(view)
    view = limiter.limit(
        _per_username,
        key_func=_address_and_username,
        methods=["POST"],
        deduct_when=_refused,
        scope="password-username",
    )(view)
    setattr(view, LIMITED_ATTR, True)  # kept by the @wraps of decorators above it
    return view


def too_many_attempts(error: RateLimitExceeded):
    from . import audit

    db.session.rollback()
    audit.record(
        "auth.throttled",
        attempted_username=_posted_username() or None,
        details={"path": request.path[:300], "limit": str(error.limit.limit)},
    )
    unit_of_work.keep()  # a 429 would roll back: the audit row must stay
    body = render_template(
        "errors/error.html",
        code=429,
        title="Too many attempts",
        message=(
            "Too many password attempts from this computer. Wait a few minutes and try "
            "again; if you have forgotten your password, ask an administrator to reset it."
        ),
    )
    return body, 429


def init_app(app) -> None:
    if app.config["RATELIMIT_STORAGE_URI"].startswith("memory://") and not app.testing:
        app.logger.warning(
            "RATELIMIT_STORAGE_URI is memory://: each worker process counts password attempts "
            "on its own, so with N gunicorn workers an address gets up to N times "
            "LOGIN_RATE_LIMIT_PER_USERNAME guesses, which can exceed the lockout threshold. "
            "Leave it unset (a file shared by the workers) or use redis://…")
    hooks = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    registered = [len(funcs.get(None, ())) for funcs in hooks]
    limiter.init_app(app)
    if not any(app.config.get(name) for name in APP_WIDE_LIMITS):
        for funcs, count in zip(hooks, registered, strict=True):
            funcs[None][count:] = [_on_limited_views(app, hook) for hook in funcs[None][count:]]
    app.register_error_handler(RateLimitExceeded, too_many_attempts)


def _on_limited_views(app: Flask, hook):
    """One of Flask-Limiter's request hooks (check, deduct and headers, reset), run only for
    views that carry a limit. Without app-wide limits they have nothing to do elsewhere, and
    they were a tenth of a page view's overhead (bench/RESULTS.md, Stop 15). The limits
    themselves are checked by the decorators' wrappers, as before."""

    def hook_where_limited(*args):
        if getattr(app.view_functions.get(request.endpoint), LIMITED_ATTR, False):
            return hook(*args)
        return args[0] if args else None  # an after_request hook hands the response on

    return hook_where_limited
