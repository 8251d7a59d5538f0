"""Sign-in, first-run setup and password-change forms. The password policy itself lives in
passwords.py and is applied by the services, so the CLI gets the same rules."""

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

LENGTH_HINT = "12 to 128 characters. A few unrelated words work well; no symbols needed."


class LoginForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[DataRequired("Enter your username."), Length(max=64)],
        render_kw={"autocomplete": "username", "autocapitalize": "none"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."), Length(max=128)],
        render_kw={"autocomplete": "current-password"},
    )


def new_password_field():
    return PasswordField(
        "New password",
        validators=[DataRequired("Enter a new password.")],
        description=LENGTH_HINT,
        render_kw={"autocomplete": "new-password"},
    )


def confirm_password_field():
    return PasswordField(
        "Repeat the new password",
        validators=[
            DataRequired("Repeat the new password."),
            EqualTo("new_password", "The two passwords do not match."),
        ],
        render_kw={"autocomplete": "new-password"},
    )


# Fields are declared in page order: the error summary lists them in that order.
class SetupForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[DataRequired("Enter a username."), Length(min=2, max=64)],
        description="Letters, digits, dot, dash or underscore.",
        render_kw={"autocomplete": "username", "autocapitalize": "none"},
    )
    full_name = StringField(
        "Full name", validators=[DataRequired("Enter your full name."), Length(max=120)]
    )
    credentials = StringField(
        "Credentials",
        validators=[Length(max=60)],
        description="Printed after your name, e.g. MBA. Optional.",
    )
    new_password = new_password_field()
    confirm_password = confirm_password_field()


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password",
        validators=[DataRequired("Enter your current password.")],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = new_password_field()
    confirm_password = confirm_password_field()
