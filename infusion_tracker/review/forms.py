"""The sign and addendum forms. The attestation is prefilled from ATTESTATION_TEXT."""

from datetime import datetime

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, Length, Optional

from .services import ADDENDUM_MAX, ATTESTATION_MAX


class SignForm(FlaskForm):
    attestation = TextAreaField(
        "Attestation",
        validators=[
            DataRequired("Enter the attestation you sign."),
            Length(max=ATTESTATION_MAX, message=f"At most {ATTESTATION_MAX} characters."),
        ],
        description="What your signature states. You may edit it.",
    )
    password = PasswordField(
        "Your password",
        validators=[Optional(), Length(max=128, message="At most 128 characters.")],
    )
    # The version of the session the physician reviewed: a change since then refuses the
    # signature (optimistic locking), so nobody signs what they did not see.
    version = HiddenField()
    # When the form was drawn (UTC, ISO): a stale signature lists what changed since.
    opened_at = HiddenField()

    def opened_at_utc(self) -> datetime | None:
        try:
            opened = datetime.fromisoformat(self.opened_at.data or "")
        except ValueError:
            return None
        return opened if opened.tzinfo else None

    def validate_version(self, field):
        try:
            field.data = int(field.data)
        except (TypeError, ValueError):
            raise ValidationError("The form lost track of the record; reload the page.") from None


class AddendumForm(FlaskForm):
    text = TextAreaField(
        "Addendum",
        validators=[
            DataRequired("Enter the text of the addendum."),
            Length(max=ADDENDUM_MAX, message=f"At most {ADDENDUM_MAX} characters."),
        ],
        description="A later fact about this session. It cannot be changed once added.",
    )
