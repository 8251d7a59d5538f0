from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=128)])


class NewPasswordMixin:
    new_password = PasswordField(
        "New password",
        validators=[DataRequired()],
        description="At least 12 characters. A few unrelated words work well.",
    )
    confirm_password = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("new_password", "The two passwords do not match.")],
    )


class SetupForm(NewPasswordMixin, FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(min=2, max=64)])
    full_name = StringField("Full name", validators=[DataRequired(), Length(max=120)])
    credentials = StringField(
        "Credentials", validators=[Length(max=60)], description="Printed after your name, e.g. MBA"
    )


class ChangePasswordForm(NewPasswordMixin, FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
