"""Sign in, sign out, first-run setup, and changing one's own password."""

import time

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from .. import unit_of_work
from ..errors import RuleError, form_status, refusals_on, show_on_form
from ..extensions import db
from ..permissions import public
from ..security import is_safe_next, start_login_session
from ..throttle import limit_password_attempts
from . import services
from .forms import ChangePasswordForm, LoginForm, SetupForm
from .sign_in import begin_second_step, complete_sign_in, home_for

bp = Blueprint("auth", __name__)
# The services call it "password"; these forms call it "new_password".
NEW_PASSWORD_FIELD = {"password": "new_password"}


@bp.route("/login", methods=["GET", "POST"])
@public
@limit_password_attempts
def login():
    target = request.args.get("next")
    if current_user.is_authenticated:
        # A page whose idle script ran ahead of the server's clock comes straight back.
        return redirect(target if is_safe_next(target) else home_for(current_user))
    if not services.any_staff_exists():
        # "Please sign in" makes no sense before any account exists.
        session.pop("_flashes", None)
        return redirect(url_for("auth.setup"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            staff = services.authenticate(form.username.data, form.password.data)
        except services.LoginRefused as refused:
            unit_of_work.keep()  # keep the failure count and the audit row
            form.form_errors.append(str(refused))
            return render_template("auth/login.html", form=form), 422
        target = target if is_safe_next(target) else None
        if staff.has_two_factor:
            return begin_second_step(staff, target)
        return complete_sign_in(staff, target)
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    services.logout(current_user._get_current_object())
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/keep-alive", methods=["POST"])
def keep_alive():
    """"Stay signed in" and typing on a page: the request itself refreshes the idle clock
    (security.enforce_login); an expired or anonymous one is sent to sign in like any other."""
    return "", 204


@bp.route("/setup", methods=["GET", "POST"])
@public
def setup():
    """One-time creation of the first administrator; gone once any account exists."""
    if services.any_staff_exists():
        abort(404)
    form = SetupForm()
    if form.validate_on_submit():
        with refusals_on(form, **NEW_PASSWORD_FIELD):
            services.create_first_admin(
                form.username.data,
                form.full_name.data,
                form.new_password.data,
                credentials=form.credentials.data or "",
            )
            flash("Administrator account created. Sign in to continue.", "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/setup.html", form=form), form_status(form)


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    """Any signed-in user, for their own account; required after an admin's reset."""
    form = ChangePasswordForm()
    staff = current_user._get_current_object()
    if form.validate_on_submit():
        try:
            services.change_password(staff, form.current_password.data, form.new_password.data)
        except services.WrongCurrentPassword as error:
            unit_of_work.keep()  # the failure counts toward the lockout
            if staff.is_locked():
                logout_user()
                session.clear()
                flash("Too many wrong passwords: you have been signed out.", "error")
                return redirect(url_for("auth.login"))
            show_on_form(form, error)
        except RuleError as error:
            db.session.rollback()
            show_on_form(form, error, NEW_PASSWORD_FIELD)
        else:
            # The token changed, so every other session ended; this one continues with the
            # new token, keeping its original sign-in time for the absolute limit.
            login_at = session.get("login_at", time.time())
            login_user(staff)
            start_login_session()
            session["login_at"] = login_at
            flash("Password changed. Any other sessions of yours have been signed out.", "success")
            return redirect(home_for(staff))
    return render_template("auth/change_password.html", form=form), form_status(form)
