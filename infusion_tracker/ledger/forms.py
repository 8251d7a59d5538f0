"""The ledger's forms. A witness or second counter types their own username and password."""

from datetime import date

from flask_wtf import FlaskForm
from wtforms import DateField, PasswordField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from ..fields import NumberField as Number
from ..infusions.forms import WholeNumber
from ..inputs import SaneDate
from ..models import VIAL_WASTE_REASONS
from .services import MAX_VIALS_PER_RECEIPT, NOTE_MAX


def _required(what: str):
    return DataRequired(f"Enter the {what}.")


class ReceiveForm(FlaskForm):
    quantity = WholeNumber(
        "Number of vials",
        validators=[
            _required("number of vials"),
            NumberRange(1, MAX_VIALS_PER_RECEIPT, f"Between 1 and {MAX_VIALS_PER_RECEIPT} vials."),
        ],
        default=1,
    )
    drug = StringField("Drug", validators=[_required("drug"), Length(max=60)], default="ketamine")
    strength_mg_per_ml = Number(
        "Strength", validators=[_required("strength (mg/mL)"), NumberRange(0.1, 500,
                                "Strength must be between 0.1 and 500 mg/mL.")], default=50.0
    )
    volume_ml = Number(
        "Volume per vial", validators=[_required("volume (mL)"), NumberRange(0.1, 100,
                                       "Volume must be between 0.1 and 100 mL.")], default=10.0
    )
    lot = StringField("Lot number", validators=[_required("lot number"), Length(max=40)])
    expiry = DateField("Expiry date", validators=[DataRequired("Enter the expiry date.")])
    supplier = StringField("Supplier", validators=[_required("supplier"), Length(max=120)])
    invoice_number = StringField(
        "Invoice or DEA form number",
        validators=[_required("invoice or form number"), Length(max=60)],
    )


class WitnessMixin:
    witness_username = StringField("Witness username", validators=[Length(max=64)])
    witness_password = PasswordField(
        "Witness password",
        validators=[Length(max=128)],
        description="The witness types their own password; it is checked, not stored.",
    )


class DrawForm(FlaskForm):
    vial_id = SelectField("Vial", coerce=int, validators=[DataRequired("Choose the vial.")])
    amount_mg = Number("Amount drawn", validators=[_required("amount drawn (mg)")])
    diluted_volume_ml = Number(
        "Diluted into", validators=[_required("volume it is diluted into (mL)")]
    )


class WasteForm(WitnessMixin, FlaskForm):
    amount_mg = Number("Amount wasted", validators=[_required("amount wasted (mg)")])
    note = TextAreaField("Note", validators=[Optional(), Length(max=NOTE_MAX)])


class VialWasteForm(WitnessMixin, FlaskForm):
    reason = SelectField(
        "Why", choices=[SelectChoice(value, label) for value, label in VIAL_WASTE_REASONS.items()]
    )
    note = TextAreaField("Note", validators=[Optional(), Length(max=NOTE_MAX)])


class CorrectForm(WitnessMixin, FlaskForm):
    amount_mg = Number(
        "Correct amount",
        # InputRequired: 0 (entered in error) is an answer, which DataRequired would refuse.
        validators=[InputRequired("Enter the correct amount (mg); 0 if entered in error.")],
    )
    reason = TextAreaField(
        "Reason for the correction", validators=[_required("reason"), Length(max=NOTE_MAX)]
    )


class CountForm(FlaskForm):
    second_counter_username = StringField("Second counter username", validators=[Length(max=64)])
    second_counter_password = PasswordField(
        "Second counter password", validators=[Length(max=128)]
    )
    note = TextAreaField("Note", validators=[Optional(), Length(max=NOTE_MAX)])


class ReasonForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[_required("reason"), Length(max=NOTE_MAX)])


class PeriodForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter

    start = DateField("From", validators=[Optional(), SaneDate()])
    end = DateField("To", validators=[Optional(), SaneDate()])


def default_period(today: date) -> tuple[date, date]:
    return today.replace(day=1), today
