"""Forms for charting at the bedside: a reading, an adverse event, void and review answers.

Tier-1 ranges come from clinical.IMPOSSIBLE through clinical.reading_problems, so the form and
the service refuse the same values with the same words; the form only adds what it alone
knows (a box that is not a number, the clinic's temperature unit).
"""

import secrets
from datetime import datetime

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, Optional, ValidationError
from wtforms.widgets import TextInput

from .. import clinical, units
from ..fields import ClinicTimeField, NumberField
from ..inputs import bounded_id
from ..memo import per_view
from ..models import AdverseEvent, Reading
from ..timeutil import from_clinic, to_clinic, utcnow
from ..vocab import ADVERSE_EVENT_TYPES, AE_SEVERITIES, AVPU, INFUSION_ACTIONS, PHASES, RHYTHMS
from .adverse_events import ENTRY_FIELDS

NOTE_MAX = 1000
TEXT_MAX = 2000

# MOAA/S (Chernik 1990), shortened: responds to …; deepest sedation last.
MOAAS_LABELS = [
    ("5", "5 – readily to name"),
    ("4", "4 – lethargic to name"),
    ("3", "3 – loud or repeated name"),
    ("2", "2 – prodding or shaking"),
    ("1", "1 – trapezius squeeze"),
    ("0", "0 – no response"),
]
# One word per AVPU level, the initials being the stored codes, so the four fit one line.
AVPU_LABELS = [(code, AVPU[code].replace("Responds to ", "").capitalize()) for code in AVPU]
# Form field name where it differs from the Reading attribute (the box is in display units).
FORM_FIELD = {"temperature_c": "temperature"}


def clinic_now() -> datetime:
    """Now as naive clinic wall time to the minute: the default of a datetime-local box."""
    return to_clinic(utcnow()).replace(tzinfo=None, second=0, microsecond=0)


def offer_now(box: ClinicTimeField) -> None:
    """The box offers now, each view's own minute (memo.per_view), drawn as if typed: a kept
    page that offers it is kept for the day, not for the minute."""
    box.data = clinic_now()
    box.raw_data = [per_view(lambda: clinic_now().strftime(box.format[0]))]


def wall_time(value: datetime | None) -> datetime | None:
    """A stored UTC time as naive clinic wall time, for a datetime-local box."""
    local = to_clinic(value)
    return local.replace(tzinfo=None, second=0, microsecond=0) if local else None


def choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


def _int_or_none(value):
    return None if value in ("", None) else int(value)


class WholeNumberField(IntegerField):
    """A text box for a whole number (numeric keypad); blank is None, not an error."""

    widget = TextInput()

    def __init__(self, label, name_in_message=None, **kwargs):
        message = f"{name_in_message or label} must be a whole number."
        super().__init__(label, invalid_value_message=message, **kwargs)

    def process_formdata(self, valuelist):
        if valuelist and not valuelist[0].strip():
            self.data = None
            return
        super().process_formdata([valuelist[0].strip()] if valuelist else valuelist)


SUBMISSION_KEY_MAX = 64  # the column's width (Reading.submission_key)

def new_submission_key() -> str:
    return secrets.token_urlsafe(24)


class SubmissionKeyMixin:
    """A random key drawn afresh with each blank form and stored with what it records, so
    the same form posted twice stores once (issue 9). Each view of a kept session page has
    its own (memo.per_view): two tabs sharing one would take the second's reading for a retry
    of the first."""

    submission_key = HiddenField(default=lambda: per_view(new_submission_key))

    def validate_submission_key(self, field) -> None:
        # Hidden, so said at the top of the form: only a tampered page gets here.
        if len(field.data or "") > SUBMISSION_KEY_MAX:
            self.form_errors.append("This form was damaged; reload the page and enter it again.")
            raise ValidationError("Damaged form key.")

    def posted_key(self) -> str | None:
        # Only a key that came with the post counts (not the one drawn for a bare post).
        return (self.submission_key.raw_data or [""])[0] or None


class ReadingForm(SubmissionKeyMixin, FlaskForm):
    """One set of observations. Order here is the Tab order on the screen."""

    taken_at = ClinicTimeField(
        "Time taken", validators=[InputRequired("Enter the time the reading was taken.")]
    )
    # The time the form was drawn with: left as it was, the reading is stamped when it is
    # saved, so a page left open between readings does not date each one an interval early.
    taken_at_default = HiddenField()
    phase = RadioField(
        "Phase",
        choices=choices(PHASES.items()),
        validators=[InputRequired("Choose the phase of the session.")],
    )
    systolic = WholeNumberField("Systolic", "Systolic BP")
    diastolic = WholeNumberField("Diastolic", "Diastolic BP")
    heart_rate = WholeNumberField("Heart rate")
    resp_rate = WholeNumberField("Resp. rate", "Respiratory rate")
    spo2 = WholeNumberField("SpO2")
    o2_room_air = BooleanField("Room air")
    o2_flow_lpm = NumberField("O2 flow", example="2")
    temperature = NumberField("Temp", "Temperature", example="36.8")
    rhythm = SelectField(
        "Rhythm",
        choices=choices([("", "Not assessed"), *RHYTHMS.items()]),
        validators=[Optional()],
    )
    rhythm_other = StringField("Other rhythm", validators=[Length(max=120)])
    avpu = RadioField("AVPU", choices=choices(AVPU_LABELS), validators=[Optional()])
    moaas = SelectField(
        "MOAA/S",
        choices=choices([("", "Not assessed"), *MOAAS_LABELS]),
        coerce=_int_or_none,
        validators=[Optional()],
    )
    pain = WholeNumberField("Pain")
    # O2, rhythm, AVPU and MOAA/S "as last": one box confirms the previous reading's values for
    # the boxes left blank (readings.carry_over); unticked, nothing is carried.
    same_as_last = BooleanField("Unchanged since the last reading")
    carry_from = HiddenField()  # the reading whose values the box showed
    # A one-line box, so that Enter submits from here too.
    note = StringField("Note", validators=[Length(max=NOTE_MAX)])
    confirm_baseline = BooleanField(
        "Yes, record a new baseline",
        description="A baseline after the start moves every change-from-baseline.",
    )

    def __init__(self, *args, units_system: str = "metric", **kwargs):
        super().__init__(*args, **kwargs)
        self.units_system = units_system


    # --- between the screen and the service ----------------------------------------------

    def to_values(self) -> dict:
        """What was typed, keyed by Reading attribute names, in metric units."""
        flow = self.o2_flow_lpm.data
        if flow is None and self.o2_room_air.data:
            flow = 0.0  # room air, charted
        temperature = units.temperature_from_entry(self.temperature.data, self.units_system)
        rhythm = self.rhythm.data or ""
        typed = (self.taken_at.raw_data or [""])[0]
        unchanged = bool(typed) and typed == self.taken_at_default.data
        return {
            "taken_at": None if unchanged or not self.taken_at.data else from_clinic(
                self.taken_at.data
            ),
            "confirm_baseline": bool(self.confirm_baseline.data),
            "phase": self.phase.data or "",
            "systolic": self.systolic.data,
            "diastolic": self.diastolic.data,
            "heart_rate": self.heart_rate.data,
            "resp_rate": self.resp_rate.data,
            "spo2": self.spo2.data,
            "o2_flow_lpm": flow,
            "temperature_c": None if temperature is None else round(temperature, 2),
            "rhythm": rhythm,
            "rhythm_other": (self.rhythm_other.data or "").strip() if rhythm == "other" else "",
            "avpu": self.avpu.data or "",
            "moaas": self.moaas.data,
            "pain": self.pain.data,
            "note": (self.note.data or "").strip(),
            "submission_key": self.posted_key(),
            "same_as_last": bool(self.same_as_last.data),
            "carry_from": self._carry_from(),
        }

    def _carry_from(self) -> int | None:
        try:
            return bounded_id(int(self.carry_from.data or ""))
        except ValueError:
            return None

    def fill_from(self, reading: Reading) -> None:
        """Pre-fill with a reading's values (the correction form)."""
        self.taken_at.data = wall_time(reading.taken_at)
        self.phase.data = reading.phase
        for name in ("systolic", "diastolic", "heart_rate", "resp_rate", "spo2", "moaas", "pain"):
            getattr(self, name).data = getattr(reading, name)
        self.o2_room_air.data = reading.o2_flow_lpm == 0
        self.o2_flow_lpm.data = reading.o2_flow_lpm or None
        self.temperature.data = units.temperature_to_display(
            reading.temperature_c, self.units_system
        )
        self.rhythm.data = reading.rhythm
        self.rhythm_other.data = reading.rhythm_other
        self.avpu.data = reading.avpu or None
        self.note.data = reading.note

    def add_problems(self, problems: dict[str, str]) -> None:
        """Put the rule messages ({Reading attribute: message}) beside their boxes."""
        for name, message in problems.items():
            if name == "__all__":
                self.form_errors.append(message)
                continue
            if name == "temperature_c" and self.units_system == "us":
                message = temperature_range_message(self.units_system)
            field = self._fields.get(FORM_FIELD.get(name, name))
            if field is None:
                self.form_errors.append(message)
                continue
            if not isinstance(field.errors, list):
                field.errors = list(field.errors)
            if message not in field.errors:
                field.errors.append(message)

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.o2_room_air.data and self.o2_flow_lpm.data:
            self.add_problems({"o2_flow_lpm": "Tick room air or enter an O2 flow, not both."})
        if self.rhythm.data == "other" and not (self.rhythm_other.data or "").strip():
            self.add_problems({"rhythm_other": "Describe the other rhythm."})
        problems = clinical.reading_problems(self.to_values())
        typed_but_unreadable = any(
            getattr(self, FORM_FIELD.get(name, name)).errors
            for name in clinical.VITAL_FIELDS
            if FORM_FIELD.get(name, name) in self._fields
        )
        if typed_but_unreadable:
            # A box that was not a number is not "nothing measured".
            problems.pop("__all__", None)
        self.add_problems(problems)
        return valid and not self.errors


def temperature_range_message(system: str) -> str:
    """Tier-1 temperature range in the clinic's unit (clinical.IMPOSSIBLE holds °C)."""
    low, high, label, _unit = clinical.IMPOSSIBLE["temperature_c"]
    if system == "us":
        low, high = units.c_to_f(low), units.c_to_f(high)
    return f"{label} must be between {low:.1f} and {high:.1f} {units.temperature_unit(system)}."


class ReasonForm(FlaskForm):
    """Voiding an entry: the reason is required and kept (SPEC §3)."""

    reason = StringField(
        "Reason",
        validators=[InputRequired("Give the reason for voiding."), Length(max=500)],
    )


class ReviewForm(FlaskForm):
    """The answer "reviewed, no action" to a critical reading."""

    note = StringField(
        "Why no action is needed",
        validators=[
            InputRequired("Say what you reviewed and why no action is needed."),
            Length(max=NOTE_MAX),
        ],
    )


class AdverseEventForm(SubmissionKeyMixin, FlaskForm):
    """An adverse event (SPEC §2); paused or stopped also pauses or stops the infusion."""

    onset_at = ClinicTimeField(
        "Onset time", validators=[InputRequired("Enter the time the event began.")]
    )
    event_type = SelectField(
        "Type",
        choices=choices([("", "Choose a type"), *ADVERSE_EVENT_TYPES.items()]),
        validators=[InputRequired("Choose the type of event.")],
    )
    type_other = StringField("Other type", validators=[Length(max=120)])
    severity = RadioField(
        "Severity",
        choices=choices(AE_SEVERITIES.items()),
        validators=[InputRequired("Choose the severity.")],
    )
    serious = BooleanField("Serious adverse event")
    intervention = TextAreaField("Intervention given", validators=[Length(max=TEXT_MAX)])
    intervention_drug = StringField("Drug given", validators=[Length(max=60)])
    intervention_dose = StringField("Dose", validators=[Length(max=60)])
    infusion_action = RadioField(
        "Infusion action",
        choices=choices(INFUSION_ACTIONS.items()),
        default="none",
        validators=[InputRequired("Choose what was done with the infusion.")],
    )
    physician_notified = BooleanField("Physician notified")
    outcome = TextAreaField("Outcome", validators=[Length(max=TEXT_MAX)])
    reading_id = HiddenField()

    def validate_type_other(self, field) -> None:
        if self.event_type.data == "other" and not (field.data or "").strip():
            raise ValidationError("Describe the other type of event.")

    def to_values(self) -> dict:
        """What was typed, keyed by AdverseEvent attribute names."""
        event_type = self.event_type.data
        try:
            reading_id = int(self.reading_id.data) if self.reading_id.data else None
        except ValueError:
            reading_id = None
        if reading_id is not None:
            # Out of the id range: names no reading (refused), and never reaches the database.
            reading_id = bounded_id(reading_id) or 0
        return {
            "onset_at": from_clinic(self.onset_at.data) if self.onset_at.data else None,
            "event_type": event_type,
            "type_other": (self.type_other.data or "").strip() if event_type == "other" else "",
            "severity": self.severity.data,
            "serious": bool(self.serious.data),
            "intervention": (self.intervention.data or "").strip(),
            "intervention_drug": (self.intervention_drug.data or "").strip(),
            "intervention_dose": (self.intervention_dose.data or "").strip(),
            "infusion_action": self.infusion_action.data or "none",
            "physician_notified": bool(self.physician_notified.data),
            "outcome": (self.outcome.data or "").strip(),
            "reading_id": reading_id,
            "submission_key": self.posted_key(),
        }

    def fill_from(self, event: AdverseEvent) -> None:
        """Pre-fill with an adverse event's values (the correction form)."""
        self.onset_at.data = wall_time(event.onset_at)
        for name in set(ENTRY_FIELDS) - {"onset_at", "reading_id"}:
            getattr(self, name).data = getattr(event, name)
        self.reading_id.data = str(event.reading_id) if event.reading_id else ""

    def add_problems(self, problems: dict[str, str]) -> None:
        for name, message in problems.items():
            field = self._fields.get(name)
            if field is None:
                self.form_errors.append(message)
                continue
            if not isinstance(field.errors, list):
                field.errors = list(field.errors)
            field.errors.append(message)
