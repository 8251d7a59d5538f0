"""Error pages in one place, and the domain exceptions services raise.

Every error page fits the layout and says nothing about the inside of the application: no
exception text, no stack, no SQL. Refused access (403) is audited.
"""

from flask import current_app, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from .extensions import db


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


TITLES = {
    400: ("Bad request", "The request was not understood. Nothing was saved."),
    403: ("Not allowed", "Your role does not allow this page or action."),
    404: ("Not found", "There is no such page or record."),
    405: ("Not allowed", "That action is not available here."),
    409: ("Not allowed now", "The record is not in a state that allows this."),
    413: ("Too large", "What was sent is too large."),
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
        db.session.commit()
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


def csrf_failed(error: CSRFError):
    return _page(
        400,
        "Form expired",
        "The form could not be accepted (its security token was missing or expired). "
        "Go back, reload the page and try again; nothing was saved.",
    )


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
    app.register_error_handler(500, internal_error)
