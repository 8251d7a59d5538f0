"""Forms for patients and their outcome scores. Domain rules live in the services; the
forms turn them into messages beside the fields, keeping what the user typed."""

from __future__ import annotations

from datetime import date

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    Form,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import HiddenInput

from ..fields import ClinicTimeField
from ..timeutil import clinic_today, utcnow
from ..vocab import INDICATIONS, INSTRUMENTS, SEXES
from .assessments import PHQ9_ANSWERS, PHQ9_ITEMS, assessment_problems
from .services import PATIENT_FIELDS, mrn_taken

EARLIEST_BIRTH = date(1900, 1, 1)


def choices(labels: dict[str, str], blank: str = "Choose…") -> list[SelectChoice]:
    """A pick-list from a label dict, starting with a blank "choose" option."""
    return [SelectChoice("", blank), *(SelectChoice(k, v) for k, v in labels.items())]


def optional_int(value):
    """Coerce a select/radio value: blank means "none chosen"."""
    if value in (None, "", "None"):
        return None
    return int(value)


class PatientSearchForm(Form):
    """GET form on /patients/ (no CSRF: it changes nothing)."""

    q = StringField(
        "Name, MRN or date of birth",
        validators=[Length(max=100)],
        description="Date of birth as YYYY-MM-DD or MM/DD/YYYY.",
    )
    archived = BooleanField("Include archived patients")


class PatientForm(FlaskForm):
    mrn = StringField(
        "MRN (medical record number)",
        validators=[
            Optional(),
            Length(max=20, message="MRN must be at most 20 characters."),
            Regexp(r"^[A-Za-z0-9-]+$", message="MRN may hold letters, digits and hyphens only."),
        ],
        description="Leave blank to generate one (e.g. IT-000123).",
    )
    first_name = StringField(
        "First name",
        validators=[DataRequired("Enter the first name."), Length(max=80)],
    )
    last_name = StringField(
        "Last name",
        validators=[DataRequired("Enter the last name."), Length(max=80)],
    )
    date_of_birth = DateField(
        "Date of birth",
        format=["%Y-%m-%d", "%m/%d/%Y"],
        validators=[InputRequired("Enter the date of birth.")],
        description="For example 1980-05-17 (YYYY-MM-DD) or 05/17/1980.",
    )
    sex = SelectField(
        "Sex",
        choices=choices(SEXES),
        validators=[DataRequired("Choose the patient's sex.")],
    )
    indication = SelectField(
        "Primary indication",
        choices=choices(INDICATIONS),
        validators=[DataRequired("Choose the primary indication.")],
    )
    indication_other = StringField(
        "Other indication",
        validators=[Length(max=120)],
        description="Required when the primary indication is Other.",
    )
    allergies = TextAreaField(
        "Allergies",
        validators=[Length(max=2000)],
        description="Each allergy with its reaction. Leave blank for no known allergies.",
    )
    medications = TextAreaField("Current medications", validators=[Length(max=4000)])
    emergency_contact = StringField(
        "Emergency contact",
        validators=[Length(max=200)],
        description="Name, relationship and phone number.",
    )
    notes = TextAreaField("Notes", validators=[Length(max=4000)])

    def __init__(self, *args, patient_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient_id = patient_id

    def validate_date_of_birth(self, field):
        if field.data and not EARLIEST_BIRTH <= field.data <= clinic_today():
            raise ValidationError(
                f"Date of birth must be between {EARLIEST_BIRTH.isoformat()} and today."
            )

    def validate_mrn(self, field):
        if field.data and mrn_taken(field.data, exclude_id=self.patient_id):
            mrn = field.data.strip().upper()
            raise ValidationError(f"MRN {mrn} already belongs to another patient.")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if self.indication.data == "other" and not (self.indication_other.data or "").strip():
            self.indication_other.errors.append("Describe the indication when it is Other.")
            ok = False
        return ok

    def values(self) -> dict:
        return {name: self[name].data for name in PATIENT_FIELDS}


class PatientEditForm(PatientForm):
    """Editing: the MRN stays required, and the form carries the version it was drawn from."""

    mrn = StringField(
        "MRN (medical record number)",
        validators=[
            DataRequired("Enter the MRN."),
            Length(max=20, message="MRN must be at most 20 characters."),
            Regexp(r"^[A-Za-z0-9-]+$", message="MRN may hold letters, digits and hyphens only."),
        ],
    )
    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])


def _score_hint() -> str:
    ranges = ", ".join(
        f"{label} {low}–{high}" for key, (label, low, high) in INSTRUMENTS.items() if key != "cssrs"
    )
    return (
        f"{ranges}; C-SSRS screen 0 Negative, 1 Low, 2 Moderate, 3 High risk. "
        "For PHQ-9 you may answer the nine items below instead."
    )


def phq9_item(number: int) -> RadioField:
    """One PHQ-9 item as a radio group 0–3; unanswered stays None (total-only entry)."""
    return RadioField(
        f"{number}. {PHQ9_ITEMS[number - 1]}",
        choices=[
            SelectChoice(value, f"{value} — {label}") for value, label in PHQ9_ANSWERS.items()
        ],
        coerce=optional_int,
        validate_choice=False,
    )


class AssessmentForm(FlaskForm):
    instrument = SelectField(
        "Instrument",
        choices=choices({key: spec[0] for key, spec in INSTRUMENTS.items()}),
        validators=[DataRequired("Choose the instrument.")],
    )
    score = IntegerField("Score", validators=[Optional()], description=_score_hint())
    taken_at = ClinicTimeField(
        "Taken at",
        "time taken",
        as_utc=True,
        validators=[Optional()],
        description="Clinic time. Leave blank for now.",
    )
    infusion_id = SelectField("Session", coerce=optional_int)
    correction_reason = StringField("Reason for the correction", validators=[Length(max=500)])
    corrects_id = IntegerField(widget=HiddenInput(), validators=[Optional()])
    next = HiddenField()
    item_1 = phq9_item(1)
    item_2 = phq9_item(2)
    item_3 = phq9_item(3)
    item_4 = phq9_item(4)
    item_5 = phq9_item(5)
    item_6 = phq9_item(6)
    item_7 = phq9_item(7)
    item_8 = phq9_item(8)
    item_9 = phq9_item(9)

    def item_fields(self):
        return [self[f"item_{n}"] for n in range(1, len(PHQ9_ITEMS) + 1)]

    def items(self) -> list[int | None]:
        return [field.data for field in self.item_fields()]

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if self.corrects_id.data and not (self.correction_reason.data or "").strip():
            self.correction_reason.errors.append("Give the reason for the correction.")
            ok = False
        if self.instrument.errors or self.score.errors or self.taken_at.errors:
            return False
        problems = assessment_problems(
            self.instrument.data, self.score.data, self.items(), self.taken_at.data, utcnow()
        )
        for name, message in problems.items():
            if name == "items":
                unanswered = [f for f in self.item_fields() if f.data is None]
                (unanswered or self.item_fields())[0].errors.append(message)
            else:
                self[name].errors.append(message)
            ok = False
        return ok


class VoidForm(FlaskForm):
    reason = StringField(
        "Reason for voiding",
        validators=[DataRequired("Give the reason for voiding this score."), Length(max=500)],
        description="For example: entered for the wrong patient; wrong score typed.",
    )
    next = HiddenField()
