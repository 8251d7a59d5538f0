"""Error pages in one place, and the domain exceptions services raise.

Every error page fits the layout and says nothing about the inside of the application: no
exception text, no stack, no SQL. Refused access (403) is audited.
"""

from contextlib import contextmanager

from flask import current_app, flash, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from . import unit_of_work
from .extensions import db
from .sealing import WrongSealKey


class RuleError(Exception):
    """A domain rule refused the action (wrong state, start gate, signed record…).

    `field` names the form field the message belongs to, when there is one, so the view can
    show it beside that field (see `show_on_form`).
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class StaleRecord(Exception):
    """Optimistic locking: the record changed since the form was drawn (SPEC §3)."""

    def __init__(self, changed_by: str, changed_at, what: str = "This record"):
        self.changed_by = changed_by
        self.changed_at = changed_at
        self.what = what
        self.changes: list[str] = []  # what changed since the form was drawn, when known
        super().__init__(f"{what} was changed by {changed_by} — reload")


def show_on_form(
    form, error: RuleError, rename: dict[str, str] | None = None, **renames: str
) -> None:
    """Put a service's refusal beside the field it concerns, else at the top of the form.

    `rename` / `renames` map a service's field name to the form's: `weight_kg="weight"`.
    """
    mapping = {**(rename or {}), **renames}
    name = mapping.get(error.field or "", error.field)
    field = form._fields.get(name) if name else None
    if field is not None:
        field.errors = [*field.errors, str(error)]
    else:
        form.form_errors.append(str(error))


@contextmanager
def refusals_on(form, **renames: str):
    """Run a service inside `with`: its refusal (RuleError) undoes the request's work and lands
    on the form, beside the field it names; the view then answers 422 with what was typed."""
    try:
        yield
    except RuleError as error:
        db.session.rollback()
        problems = getattr(error, "problems", None)
        if problems and hasattr(form, "add_problems"):
            form.add_problems(problems)
        else:
            show_on_form(form, error, **renames)


@contextmanager
def refusals_flashed():
    """Like refusals_on, for a button with no form to come back to: the refusal is flashed."""
    try:
        yield
    except RuleError as error:
        db.session.rollback()
        flash(str(error), "error")


def form_status(form) -> int:
    """422 for a submitted form that was refused, else 200."""
    return 422 if form.is_submitted() and (form.errors or form.form_errors) else 200


TITLES = {
    400: ("Bad request", "The request was not understood. Nothing was saved."),
    403: ("Not allowed", "Your role does not allow this page or action."),
    404: ("Not found", "There is no such page or record."),
    405: ("Not allowed", "That action is not available here."),
    409: ("Not allowed now", "The record is not in a state that allows this."),
    413: ("Too large", "What was sent is too large."),
    422: ("Not saved", "Some of what was entered needs correcting. Nothing was saved."),
    500: ("Something went wrong", "The error has been logged. Nothing was saved."),
}


def _page(code: int, title: str | None = None, message: str | None = None):
    default_title, default_message = TITLES.get(code, ("Error", "The request could not be met."))
    title, message = title or default_title, message or default_message
    try:
        body = render_template("errors/error.html", code=code, title=title, message=message)
    except Exception:  # the layout itself failed (e.g. database down): plain page, still no leak
        current_app.logger.exception("error page %s could not be rendered", code)
        body = (
            f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1>"
            f"<p>{escape(message)}</p><p>Error {code}</p>"
        )
    return body, code


def http_error(error: HTTPException):
    return _page(error.code or 500)


def forbidden(error):
    from . import audit  # audit imports the models; keep this module importable early

    if current_user.is_authenticated:
        db.session.rollback()
        audit.record(
            "auth.access_denied",
            details={"path": request.path[:300], "method": request.method},
        )
        unit_of_work.keep()
    return _page(403)


def stale(error: StaleRecord):
    db.session.rollback()
    return render_template("errors/409.html", error=error), 409


def stale_in_database(error: StaleDataError):
    # Two saves raced past the form check; the database's version column caught it.
    return stale(StaleRecord("another user", None))


def rule_refused(error: RuleError):
    db.session.rollback()
    return _page(409, message=str(error))


def conflict(error: IntegrityError):
    """A save that collided with another in the database itself; nothing was saved."""
    db.session.rollback()
    current_app.logger.warning("refused by the database: %s", error.orig)
    return _page(
        409,
        "Not saved",
        "Someone else saved a conflicting change at the same moment. Reload and try again; "
        "nothing of yours was saved.",
    )


def busy(error: OperationalError):
    db.session.rollback()
    current_app.logger.exception("database unavailable")
    return _page(503, "Busy", "The database did not answer in time. Nothing was saved; try again.")


def csrf_failed(error: CSRFError):
    return _page(
        400,
        "Form expired",
        "The form could not be accepted (its security token was missing or expired). "
        "Go back, reload the page and try again; nothing was saved.",
    )


def wrong_seal_key(error: WrongSealKey):
    """A misconfigured server (TOTP_KEY lost or swapped): say so plainly, change nothing."""
    db.session.rollback()
    current_app.logger.error("%s", error)
    return _page(503, "Two-factor sign-in unavailable", str(error))


def internal_error(error):
    # Flask has already logged the exception; the page must not repeat any of it.
    db.session.rollback()
    return _page(500)


def register(app) -> None:
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(CSRFError, csrf_failed)
    app.register_error_handler(403, forbidden)
    app.register_error_handler(StaleRecord, stale)
    app.register_error_handler(StaleDataError, stale_in_database)
    app.register_error_handler(RuleError, rule_refused)
    app.register_error_handler(IntegrityError, conflict)
    app.register_error_handler(OperationalError, busy)
    app.register_error_handler(WrongSealKey, wrong_seal_key)
    app.register_error_handler(500, internal_error)
