"""The home page (the infusion suite board) and the liveness check."""

import sqlalchemy as sa
from flask import Blueprint, current_app, redirect, render_template, url_for
from flask_login import current_user

from .. import audit
from ..extensions import db
from ..infusions.board import suite_board
from ..models import ROLE_ADMIN
from ..permissions import public
from ..timeutil import clinic_today, utcnow
from ..vocab import STATUS_KINDS

bp = Blueprint("main", __name__)


@bp.route("/")
def board():
    """The infusion suite board: every room, today's planned and finished sessions."""
    if current_user.role == ROLE_ADMIN:
        return redirect(url_for("admin.staff_list"))
    now = utcnow()
    board = suite_board(current_app.config["ROOMS"], clinic_today(), now)
    audit.record("board.viewed")
    return render_template("main/board.html", board=board, now=now, status_kinds=STATUS_KINDS)


@bp.route("/healthz")
@public
def healthz():
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return {"status": "database unavailable"}, 503
    return {"status": "ok"}
