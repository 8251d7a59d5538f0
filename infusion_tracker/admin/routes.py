"""Administration: staff accounts and the audit log (office manager only)."""

import sqlalchemy as sa
from flask import Blueprint, render_template

from ..extensions import db
from ..models import Staff
from ..permissions import admin_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/staff/")
@admin_required
def staff_list():
    staff = db.session.scalars(sa.select(Staff).order_by(Staff.full_name)).all()
    return render_template("admin/staff_list.html", staff=staff)


@bp.route("/audit")
@admin_required
def audit_log():
    return render_template("admin/audit_log.html")
