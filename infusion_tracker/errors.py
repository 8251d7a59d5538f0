"""Error pages in one place, and the domain exceptions services raise."""

from flask import render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm.exc import StaleDataError

from .extensions import db


class RuleError(Exception):
    """A domain rule refused the action (wrong state, start gate, signed record…)."""


class StaleRecord(Exception):
    """Optimistic locking: the record changed since the form was drawn (SPEC §3)."""

    def __init__(self, changed_by: str, changed_at, what: str = "This record"):
        self.changed_by = changed_by
        self.changed_at = changed_at
        self.what = what
        super().__init__(f"{what} was changed by {changed_by} — reload")


def _page(code: int, title: str, message: str):
    return render_template("errors/error.html", code=code, title=title, message=message), code


def forbidden(error):
    from . import audit  # the audit module needs the models; keep errors importable early

    if current_user.is_authenticated:
        db.session.rollback()
        audit.record(
            "auth.access_denied",
            details={"path": request.path, "method": request.method},
        )
        db.session.commit()
    return _page(403, "Not allowed", "Your role does not allow this page or action.")


def stale(error: StaleRecord):
    db.session.rollback()
    return (
        render_template("errors/409.html", error=error),
        409,
    )


def stale_in_database(error: StaleDataError):
    # Two saves raced past the form check; the database's version column caught it.
    return stale(StaleRecord("another user", None))


def rule_refused(error: RuleError):
    db.session.rollback()
    return _page(409, "Not allowed now", str(error))


def csrf_failed(error: CSRFError):
    return _page(
        400,
        "Form expired",
        "The form could not be accepted (its security token was missing or expired). "
        "Go back, reload the page and try again; nothing was saved.",
    )


def internal_error(error):
    db.session.rollback()
    return _page(500, "Something went wrong", "The error has been logged. Nothing was saved.")


def register(app) -> None:
    app.register_error_handler(
        400, lambda e: _page(400, "Bad request", "The request was not understood.")
    )
    app.register_error_handler(CSRFError, csrf_failed)
    app.register_error_handler(403, forbidden)
    app.register_error_handler(
        404, lambda e: _page(404, "Not found", "There is no such page or record.")
    )
    app.register_error_handler(
        405, lambda e: _page(405, "Not allowed", "That action is not available here.")
    )
    app.register_error_handler(
        413, lambda e: _page(413, "Too large", "What was sent is too large.")
    )
    app.register_error_handler(StaleRecord, stale)
    app.register_error_handler(StaleDataError, stale_in_database)
    app.register_error_handler(RuleError, rule_refused)
    app.register_error_handler(500, internal_error)
