"""Staff account forms and the audit log filter."""

from flask_wtf import FlaskForm
from wtforms import DateField, PasswordField, RadioField, SelectChoice, SelectField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, Optional, ValidationError

from ..auth.services import CREDENTIALS_MAX, FULL_NAME_MAX
from ..inputs import SaneDate
from ..vocab import ROLES


def role_field():
    # Choices are checked by AnyOf so an empty or forged value gets one clear message.
    return RadioField(
        "Role",
        choices=[SelectChoice(value, label) for value, label in ROLES.items()],
        validate_choice=False,
        validators=[AnyOf(list(ROLES), message="Choose one of the four roles.")],
    )


def full_name_field():
    return StringField(
        "Full name",
        validators=[
            DataRequired("Enter the full name."),
            Length(max=FULL_NAME_MAX, message=f"Full name: at most {FULL_NAME_MAX} characters."),
        ],
    )


def credentials_field():
    return StringField(
        "Credentials",
        validators=[
            Length(
                max=CREDENTIALS_MAX, message=f"Credentials: at most {CREDENTIALS_MAX} characters."
            )
        ],
        description="Printed after the name on every entry, e.g. MD, APRN, PA-C. Optional.",
    )


class StaffCreateForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[
            DataRequired("Enter a username."),
            Length(min=2, max=64, message="Username: 2 to 64 characters."),
        ],
        description="Letters, digits, dot, dash or underscore; not case-sensitive. "
        "It cannot be changed later.",
        render_kw={"autocomplete": "off", "autocapitalize": "none"},
    )
    full_name = full_name_field()
    credentials = credentials_field()
    role = role_field()
    password = PasswordField(
        "Temporary password",
        validators=[Optional(), Length(max=128, message="Password: at most 128 characters.")],
        description="Leave blank to have one generated (recommended). Either way the person "
        "must choose their own password at first sign-in.",
        render_kw={"autocomplete": "new-password"},
    )


class StaffEditForm(FlaskForm):
    full_name = full_name_field()
    credentials = credentials_field()
    role = role_field()


SORTS = {"newest": "Newest first", "oldest": "Oldest first"}


class AuditFilterForm(FlaskForm):
    """Read-only filter (sent by GET, so no CSRF token); `actor` choices are set per request."""

    class Meta:
        csrf = False

    actor = SelectField("Who", choices=[SelectChoice("", "Anyone")], default="")
    action = StringField(
        "Action",
        validators=[Optional(), Length(max=60, message="Action: at most 60 characters.")],
        description="Exact, e.g. auth.login_failed; or its start, e.g. staff.",
    )
    patient = StringField(
        "Patient MRN",
        validators=[Optional(), Length(max=20, message="Patient MRN: at most 20 characters.")],
    )
    date_from = DateField(
        "From", validators=[Optional(), SaneDate()], description="Clinic date, first day included."
    )
    date_to = DateField(
        "To", validators=[Optional(), SaneDate()], description="Last day included."
    )
    sort = SelectField(
        "Order", choices=[SelectChoice(v, label) for v, label in SORTS.items()], default="newest"
    )

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end date must be on or after the start date.")
