"""One unit of work per request (indico's RH.process): services add and flush, and this
module alone commits — once, after the view — or rolls back.

A response below 400 commits; anything else rolls back, so a refused form or a failure
anywhere leaves no partial write and no orphan audit row. A refusal whose own record must
survive (a failed sign-in's counter, an access-denied audit row) calls `keep()`.

Page views (GET) run in a read transaction that takes no write lock; the audit rows they
leave are appended after the page is built, in a short write transaction of their own
(see audit.record), so viewing never queues behind charting. When that transaction holds only
rows saying who looked at what, it commits without waiting for the disk (`lazy_commit`).
"""

from __future__ import annotations

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def keep() -> None:
    """Commit this request's writes even though its answer is an error page."""
    g.uow_keep = True


def is_read_request() -> bool:
    """A page view: its transaction reads only (writes wait for `finish`)."""
    return (
        has_request_context()
        and request.method in READ_METHODS
        and not g.get("uow_writing", False)
    )


def defer(write, *, a_look: bool = False) -> None:
    """Run `write()` in the write transaction that follows a page view. `a_look`: it only
    records that someone looked (not an export, a print or a refusal)."""
    g.setdefault("uow_deferred", []).append((write, a_look))


def write(work, *, a_look: bool = False) -> None:
    """Run `work()` now, or, in a page view (whose transaction reads only), just after it."""
    if is_read_request():
        defer(work, a_look=a_look)
    else:
        work()


def lazy_commit() -> bool:
    """Whether this transaction may commit without waiting for the disk: a page view's own
    record of who looked (SQLite synchronous=NORMAL, set in database.py; PostgreSQL
    synchronous_commit=off, set with the audit chain's lock). A crash of the app loses
    nothing; a power cut may lose the last second or so of such rows, never a write's and
    never the chain's order, since each database writes its log in order and every later
    write waits for all of it."""
    return has_request_context() and g.get("uow_lazy_commit", False)


def finish(response):
    """Commit or roll back the request's work; then run the page view's deferred writes."""
    deferred = g.pop("uow_deferred", [])
    if not deferred and not _in_transaction():
        return response  # no query, no write (/healthz, a redirect): nothing to end
    if response.status_code >= 400 and not g.pop("uow_keep", False):
        db.session.rollback()
        return response
    try:
        db.session.commit()
        if deferred:
            g.uow_writing = True  # the next transaction takes the write lock (database.py)
            g.uow_lazy_commit = response.status_code < 400 and all(
                a_look for _, a_look in deferred
            )
            try:
                for write, _ in deferred:
                    write()
                db.session.commit()
            finally:
                g.uow_lazy_commit = False  # whatever else this request writes waits for the disk
    except SQLAlchemyError as error:
        # A collision only the database saw (errors.py answers it with its page, or a 500).
        db.session.rollback()
        return current_app.make_response(current_app.handle_user_exception(error))
    return response


def _in_transaction() -> bool:
    """Whether this request's session began a transaction (any query, or an added row),
    without creating the session to ask."""
    return db.session.registry.has() and db.session().in_transaction()


def init_app(app: Flask) -> None:
    # Registered after the security hooks so it runs before them (Flask runs these in
    # reverse): a page it substitutes still gets the security headers.
    app.after_request(finish)
