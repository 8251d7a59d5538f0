"""Pages of the second factor: the code step at sign-in, one's own enrolment at
/account/two-factor, and the rule that roles in REQUIRE_TWO_FACTOR_ROLES enrol before
anything else. A blueprint of its own, registered by the app factory."""

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from .. import unit_of_work
from ..errors import form_status, refusals_flashed, refusals_on
from ..passwords import verify_password
from ..permissions import public
from ..throttle import limit_password_attempts
from . import services, two_factor
from .sign_in import PENDING, complete_sign_in, home_for, pending_staff, pending_target

bp = Blueprint("two_factor", __name__)

# Where someone whose role requires a second factor may go before enrolling.
BEFORE_ENROLMENT = (
    "two_factor.account",
    "auth.logout",
    "auth.change_password",
    "auth.keep_alive",
    "static",
)


class CodeForm(FlaskForm):
    code = StringField(
        "Code",
        validators=[DataRequired("Enter the code."), Length(max=20)],
        description="6 digits from your authenticator app, or one of your recovery codes.",
        render_kw={"autocomplete": "one-time-code", "autocapitalize": "none"},
    )


class EnrolForm(FlaskForm):
    action = HiddenField(default="confirm")
    code = StringField(
        "Code from the app",
        validators=[DataRequired("Enter the 6-digit code the app shows."), Length(max=20)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


class TurnOffForm(FlaskForm):
    action = HiddenField(default="off")
    password = PasswordField(
        "Your password",
        validators=[DataRequired("Enter your password."), Length(max=128)],
        render_kw={"autocomplete": "current-password"},
    )


@bp.before_app_request
def enrol_first():
    """Runs after security.enforce_login: a required second factor comes before any page."""
    if (
        current_user.is_authenticated
        and request.endpoint not in BEFORE_ENROLMENT
        and not current_user.must_change_password
        and two_factor.must_enrol(current_user)
    ):
        flash("Set up two-factor sign-in before you continue.", "info")
        return redirect(url_for("two_factor.account"))
    return None


@bp.route("/login/two-factor", methods=["GET", "POST"], endpoint="sign_in")
@public
@limit_password_attempts
def two_factor_login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    staff = pending_staff()
    if staff is None:
        session.pop(PENDING, None)
        flash("Sign in again: the code step had expired.", "info")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if form.validate_on_submit():
        staff = services.find_staff(staff.username, for_update=True)  # one use of a code
        used = two_factor.check_code(staff, form.code.data)
        if used is None:
            services.count_failed_password(staff, "wrong second-factor code")
            unit_of_work.keep()  # the failure counts toward the lockout
            if staff.is_locked():
                session.pop(PENDING, None)
                return redirect(url_for("auth.login"))
            form.code.errors.append("That code is not right, or was already used.")
            return render_template("auth/two_factor_login.html", form=form), 422
        services.record_sign_in(staff, used)
        target = pending_target()
        if used == "recovery":
            left = len(staff.recovery_codes or [])
            flash(f"Recovery code used; {left} left. Set up a new key if the phone is lost.")
        return complete_sign_in(staff, target)
    return render_template("auth/two_factor_login.html", form=form)


@bp.route("/account/two-factor", methods=["GET", "POST"], endpoint="account")
def enrolment():
    """One's own second factor: start, confirm with a code (recovery codes shown once), or
    turn off where the role does not require it."""
    staff = current_user._get_current_object()
    enrol, off = EnrolForm(), TurnOffForm()
    codes = None
    status = 200
    action = request.form.get("action") if request.method == "POST" else None
    if action == "start":
        with refusals_flashed():
            two_factor.start_enrolment(staff)
        return redirect(url_for("two_factor.account"))
    if action == "confirm" and enrol.validate_on_submit():
        with refusals_on(enrol):
            codes = two_factor.confirm_enrolment(staff, enrol.code.data)
        status = form_status(enrol)
    elif action == "off" and off.validate_on_submit():
        if not verify_password(staff.password_hash, off.password.data):
            services.count_failed_password(staff, "wrong password (two-factor off)", True)
            unit_of_work.keep()  # the failure counts toward the lockout
            off.password.errors.append("The password is not correct.")
            status = 422
        else:
            with refusals_flashed():
                two_factor.turn_off(staff)
                flash("Two-factor sign-in is off.", "success")
            return redirect(url_for("two_factor.account"))
    elif action is not None:
        status = 422
    qr = key = None
    if staff.totp_sealed and not staff.has_two_factor:
        qr, key = two_factor.qr_data_uri(staff), two_factor.grouped_key(staff)
    body = render_template(
        "auth/two_factor.html",
        staff=staff,
        required=two_factor.required_for(staff),
        enrol=enrol,
        off=off,
        qr=qr,
        key=key,
        codes=codes,
    )
    return body, status
