"""The home page (the infusion suite board) and the liveness check."""

import sqlalchemy as sa
from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from ..extensions import db
from ..models import ROLE_ADMIN
from ..permissions import public

bp = Blueprint("main", __name__)


@bp.route("/")
def board():
    if current_user.role == ROLE_ADMIN:
        return redirect(url_for("admin.staff_list"))
    return render_template("main/board.html")


@bp.route("/healthz")
@public
def healthz():
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return {"status": "database unavailable"}, 503
    return {"status": "ok"}
