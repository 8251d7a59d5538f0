"""Forms for planning a session, its checklist and dose, each state change, and discharge.

Every form that changes a session carries the version it was drawn from (hidden), so a stale
click is refused with 409 instead of overwriting (SPEC §3). Weight is typed in the clinic's
units (kg or lb) and converted to kg here; the dose arithmetic is always in kg.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import HiddenInput, TextInput

from .. import clinical, units
from ..fields import ClinicTimeField, NumberField, planning_window
from ..timeutil import from_clinic, to_clinic, utcnow
from ..vocab import PREGNANCY_STATUSES

REASON_MAX = 2000
NOTES_MAX = 5000
# Impossible-value guards for the dose fields (tier 1): far outside any ketamine protocol.
DOSE_MG_PER_KG_RANGE = (0.01, 10.0)
DURATION_MIN_RANGE = (1, 720)
CONCENTRATION_RANGE = (0.1, 100.0)
RATE_MG_PER_H_RANGE = (0.1, 2000.0)
IV_GAUGES = ("18G", "20G", "22G", "24G")


def _num(value: float) -> str:
    return f"{value:g}"


class WholeNumber(IntegerField):
    widget = TextInput()

    def process_formdata(self, valuelist):
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        try:
            self.data = int(valuelist[0].strip())
        except ValueError:
            self.data = None
            raise ValueError("Enter a whole number, like 40.") from None


def _in_range(low: float, high: float, label: str, unit: str) -> NumberRange:
    return NumberRange(
        min=low, max=high, message=f"{label} must be between {_num(low)} and {_num(high)} {unit}."
    )


def _int_or_none(value):
    if value in (None, ""):
        return None
    return int(value)


def weight_field(label: str = "Weight"):
    return NumberField(label, example="72.5", validators=[Optional()])


def weight_kg_from_entry(value: float | None, system: str) -> float | None:
    """Typed weight (kg or lb) as kg, to the gram-ish (0.01 kg) so a lb round trip is stable."""
    if value is None:
        return None
    return round(units.weight_from_entry(value, system), 2)


def check_weight(field, system: str) -> None:
    """SPEC §4: weight 20–400 kg, the message in the units the clinic types."""
    kg = weight_kg_from_entry(field.data, system)
    if kg is None or not clinical.range_problem("weight_kg", kg):
        return
    low, high, label, unit = clinical.IMPOSSIBLE["weight_kg"]
    if system == "us":
        low, high = units.kg_to_lb(low), units.kg_to_lb(high)
        raise ValidationError(f"{label} must be between {low:.0f} and {high:.0f} lb.")
    raise ValidationError(f"{label} must be between {_num(low)} and {_num(high)} {unit}.")


class VersionedForm(FlaskForm):
    version = IntegerField(
        "Version",
        widget=HiddenInput(),
        validators=[InputRequired(message="The form is incomplete: reload the page.")],
    )


class CheckInForm(VersionedForm):
    pass


class ResumeForm(VersionedForm):
    pass


class StartForm(VersionedForm):
    override_reason = TextAreaField(
        "Physician override: reason",
        validators=[Optional(), Length(max=REASON_MAX)],
        description="Only when starting despite the problems listed above (physicians only).",
    )


class PauseForm(VersionedForm):
    reason = StringField(
        "Reason for the pause",
        validators=[
            InputRequired(message="Give the reason for the pause."),
            Length(max=REASON_MAX),
        ],
    )


class StopForm(VersionedForm):
    reason = StringField(
        "Reason for stopping",
        validators=[Optional(), Length(max=REASON_MAX)],
        description="Needed when stopping before the planned duration.",
    )


class RunOnForm(VersionedForm):
    reason = StringField(
        "Why the infusion runs on",
        validators=[
            InputRequired(message="Give the reason the infusion runs on."),
            Length(max=REASON_MAX),
        ],
    )


class CancelForm(VersionedForm):
    reason = StringField(
        "Reason for cancelling",
        validators=[
            InputRequired(message="Give the reason for cancelling."),
            Length(max=REASON_MAX),
        ],
    )


class RateForm(VersionedForm):
    mg_per_h = NumberField(
        "New rate",
        example="30",
        validators=[
            InputRequired(message="Enter the new rate in mg/h."),
            _in_range(*RATE_MG_PER_H_RANGE, "The rate", "mg/h"),
        ],
    )
    reason = StringField(
        "Reason for the change",
        validators=[
            InputRequired(message="Give the reason for the rate change."),
            Length(max=REASON_MAX),
        ],
    )
    override_reason = TextAreaField(
        "Physician override: reason",
        validators=[Optional(), Length(max=REASON_MAX)],
        description="Only for a rate above the protocol's limit (physicians only).",
    )


class DoseFieldsMixin:
    dose_mg_per_kg = NumberField(
        "Dose",
        example="0.5",
        validators=[Optional(), _in_range(*DOSE_MG_PER_KG_RANGE, "Dose", "mg/kg")],
    )
    duration_min = WholeNumber(
        "Duration",
        validators=[Optional(), _in_range(*DURATION_MIN_RANGE, "Duration", "minutes")],
    )
    concentration_mg_per_ml = NumberField(
        "Concentration",
        example="10",
        validators=[Optional(), _in_range(*CONCENTRATION_RANGE, "Concentration", "mg/mL")],
    )


def room_choices(current: str = "") -> list[tuple[str, str]]:
    rooms = list(current_app.config["ROOMS"])
    if current and current not in rooms:
        rooms.append(current)  # keep a room that has since left the configuration
    return [SelectChoice("", "Not yet assigned"), *(SelectChoice(room) for room in rooms)]


class PlanForm(DoseFieldsMixin, FlaskForm):
    protocol_id = SelectField(
        "Protocol",
        coerce=_int_or_none,
        validators=[InputRequired(message="Choose a protocol.")],
    )
    scheduled_for = ClinicTimeField(
        "Scheduled for",
        window=planning_window,
        validators=[InputRequired(message="Enter the date and time, like 2025-03-14 09:30.")],
        description="Clinic time.",
    )
    room = SelectField("Room", validators=[Optional()])
    clinician_id = SelectField(
        "Overseeing clinician",
        coerce=_int_or_none,
        validators=[InputRequired(message="Choose the overseeing clinician.")],
    )
    physician_id = SelectField(
        "Supervising physician",
        coerce=_int_or_none,
        validators=[InputRequired(message="Choose the supervising physician.")],
    )
    weight = weight_field()
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=NOTES_MAX)])

    def __init__(self, *args, protocols=(), clinicians=(), physicians=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.system = current_app.config["UNITS"]
        self.weight.label.text = f"Weight ({units.weight_unit(self.system)})"
        self.protocol_id.choices = [SelectChoice("", "Choose a protocol")] + [
            SelectChoice(
                p.id, f"{p.label} — {_num(p.dose_mg_per_kg)} mg/kg over {p.infusion_minutes} min"
            )
            for p in protocols
        ]
        self.clinician_id.choices = [SelectChoice("", "Choose")] + [
            SelectChoice(s.id, s.display_name) for s in clinicians
        ]
        self.physician_id.choices = [SelectChoice("", "Choose")] + [
            SelectChoice(s.id, s.display_name) for s in physicians
        ]
        self.room.choices = room_choices()
        if self.scheduled_for.data is None and not self.is_submitted():
            # The next five-minute mark in clinic time.
            local = to_clinic(utcnow() + timedelta(minutes=5)).replace(tzinfo=None)
            self.scheduled_for.data = local.replace(
                minute=local.minute - local.minute % 5, second=0, microsecond=0
            )

    def validate_weight(self, field):
        check_weight(field, self.system)

    def service_data(self) -> dict:
        return {
            "protocol_id": self.protocol_id.data,
            "clinician_id": self.clinician_id.data,
            "physician_id": self.physician_id.data,
            "scheduled_for": from_clinic(self.scheduled_for.data),
            "room": self.room.data or "",
            "weight_kg": weight_kg_from_entry(self.weight.data, self.system),
            "dose_mg_per_kg": self.dose_mg_per_kg.data,
            "duration_min": self.duration_min.data,
            "concentration_mg_per_ml": self.concentration_mg_per_ml.data,
            "notes": self.notes.data or "",
        }


class DetailsForm(DoseFieldsMixin, VersionedForm):
    """The checklist and dose panel. Dose fields are removed once the infusion has started."""

    room = SelectField("Room", validators=[Optional()])
    consent_on_file = BooleanField("Consent on file")
    npo_confirmed = BooleanField("NPO confirmed")
    escort_name = StringField(
        "Escort / driver",
        validators=[Optional(), Length(max=120)],
        description="Who takes the patient home.",
    )
    pregnancy_status = SelectField(
        "Pregnancy status",
        choices=[
            SelectChoice("", "Not recorded"),
            *(SelectChoice(value, label) for value, label in PREGNANCY_STATUSES.items()),
        ],
        validators=[Optional()],
    )
    med_allergy_review_done = BooleanField("Medication and allergy review done")
    weight = weight_field()
    iv_site = StringField(
        "IV site",
        validators=[Optional(), Length(max=60)],
        description="For example: left antecubital.",
    )
    iv_gauge = SelectField(
        "IV gauge",
        choices=[SelectChoice("", "Not recorded"), *map(SelectChoice, IV_GAUGES)],
        validators=[Optional()],
    )
    lot_number = StringField("Drug lot number", validators=[Optional(), Length(max=40)])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=NOTES_MAX)])

    DOSE_NAMES = ("weight", "dose_mg_per_kg", "duration_min", "concentration_mg_per_ml")

    def __init__(self, *args, infusion, **kwargs):
        system = current_app.config["UNITS"]
        # `weight` is not an attribute of the session: give its display value as the default.
        super().__init__(
            *args,
            obj=infusion,
            weight=units.weight_to_display(infusion.weight_kg, system),
            **kwargs,
        )
        self.system = system
        self.room.choices = room_choices(infusion.room)
        self.dose_editable = infusion.status in ("planned", "checked_in")
        if self.dose_editable:
            self.weight.label.text = f"Weight ({units.weight_unit(system)})"
        else:
            for name in self.DOSE_NAMES:
                delattr(self, name)

    def validate_weight(self, field):
        check_weight(field, self.system)

    def service_data(self) -> dict:
        data = {
            "room": self.room.data or "",
            "consent_on_file": self.consent_on_file.data,
            "npo_confirmed": self.npo_confirmed.data,
            "escort_name": self.escort_name.data or "",
            "pregnancy_status": self.pregnancy_status.data or "",
            "med_allergy_review_done": self.med_allergy_review_done.data,
            "iv_site": self.iv_site.data or "",
            "iv_gauge": self.iv_gauge.data or "",
            "lot_number": self.lot_number.data or "",
            "notes": self.notes.data or "",
        }
        if self.dose_editable:
            data["weight_kg"] = weight_kg_from_entry(self.weight.data, self.system)
            # A blank dose field keeps what the session has (the protocol's by default).
            for name in ("dose_mg_per_kg", "duration_min", "concentration_mg_per_ml"):
                if self[name].data is not None:
                    data[name] = self[name].data
        return data


class DischargeForm(VersionedForm):
    activity = RadioField("Activity", coerce=_int_or_none)
    respiration = RadioField("Respiration", coerce=_int_or_none)
    circulation = RadioField("Circulation", coerce=_int_or_none)
    consciousness = RadioField("Consciousness", coerce=_int_or_none)
    spo2 = RadioField("Oxygen saturation", coerce=_int_or_none)
    escort = StringField(
        "Escort",
        validators=[
            InputRequired(message="Name the escort who takes the patient home."),
            Length(max=120),
        ],
    )
    override_reason = TextAreaField(
        "Reason to discharge with a score below 9",
        validators=[Optional(), Length(max=REASON_MAX)],
        description="Only when the modified Aldrete score is below 9.",
    )
    note = TextAreaField("Discharge note", validators=[Optional(), Length(max=NOTES_MAX)])

    ITEM_NAMES = tuple(clinical.ALDRETE_ITEMS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, (label, choices) in clinical.ALDRETE_ITEMS.items():
            field = self[name]
            field.label.text = label
            field.choices = [
                SelectChoice(score, f"{score} — {words}") for score, words in choices.items()
            ]
            field.validators = [InputRequired(message=f"Choose the {label.lower()} score.")]

    def items(self) -> dict[str, int]:
        return {name: self[name].data for name in self.ITEM_NAMES}

    def total(self) -> int | None:
        scores = self.items()
        if any(score is None for score in scores.values()):
            return None
        return sum(scores.values())

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        total = self.total()
        if (
            valid
            and total is not None
            and total < clinical.ALDRETE_DISCHARGE_MIN
            and not (self.override_reason.data or "").strip()
        ):
            self.override_reason.errors = [
                f"The score is {total} of 10: document why the patient may leave "
                f"with less than {clinical.ALDRETE_DISCHARGE_MIN}, or keep observing."
            ]
            valid = False
        return valid

    def service_data(self) -> dict:
        return {
            **self.items(),
            "escort": self.escort.data or "",
            "override_reason": self.override_reason.data or "",
            "note": self.note.data or "",
        }
