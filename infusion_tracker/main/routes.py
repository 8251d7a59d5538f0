"""The home page (the infusion suite board), its live updates, and the liveness check."""

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from .. import audit
from ..extensions import db
from ..infusions.board import board_version, drawn_board
from ..models import ROLE_ADMIN
from ..permissions import clinician_required, passive, public
from ..timeutil import clinic_today, utcnow

bp = Blueprint("main", __name__)


def _live_board():
    """The board's rooms and lists as of now, and the read of them audited."""
    now = utcnow()
    live = drawn_board(current_app.config["ROOMS"], clinic_today(), now)
    audit.record("board.viewed")
    return live, now


@bp.route("/")
def board():
    """The infusion suite board: every room, today's planned and finished sessions."""
    if current_user.role == ROLE_ADMIN:
        return redirect(url_for("admin.staff_list"))
    live, now = _live_board()
    return render_template("main/board.html", live=live, now=now)


@bp.route("/board/version")
@clinician_required
@passive
def board_version_json():
    """What an open board polls (static/js/board.js): the board's fingerprint and no patient
    data, so not a read of anyone's record; 304 while it matches the board's If-None-Match."""
    version = board_version(clinic_today())
    response = jsonify(version=version)
    response.set_etag(version)
    return response.make_conditional(request)


@bp.route("/board/rooms")
@clinician_required
@passive
def board_rooms():
    """The board's rooms and lists, fetched by an open board when its fingerprint changed or a
    reading fell due: a read of the board like the page itself, audited the same way."""
    live, _now = _live_board()
    return live


@bp.route("/healthz")
@public
def healthz():
    """The database answers: SELECT 1 on a pooled connection, outside the ORM session, so the
    probe begins and commits no transaction."""
    try:
        connection = db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        finally:
            connection.close()  # back to the pool
    except (sa.exc.SQLAlchemyError, db.engine.dialect.loaded_dbapi.Error):
        return {"status": "database unavailable"}, 503
    return {"status": "ok"}
