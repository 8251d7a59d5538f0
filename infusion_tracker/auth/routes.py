"""Sign in, sign out, first-run setup, and changing one's own password."""

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ..errors import RuleError
from ..extensions import db
from ..models import ROLE_ADMIN, Staff
from ..permissions import public
from ..security import is_safe_next, start_login_session
from . import services
from .forms import ChangePasswordForm, LoginForm, SetupForm

bp = Blueprint("auth", __name__)


def home_for(staff: Staff) -> str:
    return url_for("admin.staff_list") if staff.role == ROLE_ADMIN else url_for("main.board")


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    if not db.session.scalar(sa.select(sa.exists().where(Staff.id.is_not(None)))):
        return redirect(url_for("auth.setup"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            staff = services.authenticate(form.username.data, form.password.data)
        except services.LoginRefused as refused:
            db.session.commit()  # keep the failure count and the audit row
            form.password.errors = [str(refused)]
            return render_template("auth/login.html", form=form), 200
        db.session.commit()
        session.clear()
        login_user(staff)
        start_login_session()
        target = request.args.get("next")
        if staff.must_change_password:
            return redirect(url_for("auth.change_password"))
        return redirect(target if is_safe_next(target) else home_for(staff))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    services.logout(current_user._get_current_object())
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/setup", methods=["GET", "POST"])
@public
def setup():
    """One-time creation of the first administrator; gone once any account exists."""
    if db.session.scalar(sa.select(sa.exists().where(Staff.id.is_not(None)))):
        abort(404)
    form = SetupForm()
    if form.validate_on_submit():
        try:
            services.create_staff(
                form.username.data,
                form.full_name.data,
                ROLE_ADMIN,
                form.new_password.data,
                credentials=form.credentials.data or "",
            )
        except RuleError as error:
            db.session.rollback()
            form.form_errors.append(str(error))
        else:
            db.session.commit()
            flash("Administrator account created. Sign in to continue.", "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/setup.html", form=form)


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        staff = current_user._get_current_object()
        try:
            services.change_password(staff, form.current_password.data, form.new_password.data)
        except RuleError as error:
            db.session.rollback()
            form.form_errors.append(str(error))
        else:
            db.session.commit()
            # The token changed, so every other session ends; keep this one signed in.
            login_user(staff)
            start_login_session()
            flash("Password changed. Other sessions of yours have been signed out.", "success")
            return redirect(home_for(staff))
    return render_template("auth/change_password.html", form=form)
