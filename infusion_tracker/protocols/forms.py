"""The protocol form: dosing, reading schedule, and every alert threshold (clinical.Limits)."""

from flask_wtf import FlaskForm
from wtforms import FloatField, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from ..clinical import IMPOSSIBLE, LIMIT_FIELDS, LimitField
from ..vocab import INDICATIONS
from .services import PROTOCOL_FIELDS, limits_problems

LIMIT_GROUPS = (
    (
        "start",
        "Start limits",
        "“Start infusion” is refused while the baseline is outside these, unless a physician "
        "overrides with a reason.",
    ),
    ("normal", "Normal limits", "Readings outside these are flagged abnormal."),
    (
        "critical",
        "Critical thresholds",
        "Readings at these are flagged critical and the clinician must record an action.",
    ),
    (
        "delta",
        "Rise above the patient's baseline",
        "A rise of more than this above the session's baseline reading is flagged abnormal.",
    ),
)
# Which tier-1 range (clinical.IMPOSSIBLE) bounds a threshold, by the vital in its key.
LIMIT_VITALS = {
    "sbp": "systolic",
    "dbp": "diastolic",
    "hr": "heart_rate",
    "rr": "resp_rate",
    "spo2": "spo2",
    "temp": "temperature_c",
    "moaas": "moaas",
}
DELTA_RANGE = (1, 200)


def limit_range(key: str) -> tuple[float, float]:
    """A threshold must itself be a possible value of its vital sign."""
    group, vital = key.split("_")[:2]
    if group == "delta":
        return DELTA_RANGE
    low, high = IMPOSSIBLE[LIMIT_VITALS[vital]][:2]
    return low, high


def _between(label: str, low: float, high: float, unit: str) -> NumberRange:
    unit = f" {unit}" if unit else ""
    message = f"{label} must be between {low:g} and {high:g}{unit}."
    # NumberRange %-formats its message: a literal "%" (SpO2, deltas) must be doubled.
    return NumberRange(low, high, message=message.replace("%", "%%"))


def _limit_field(limit: LimitField) -> FloatField:
    low, high = limit_range(limit.key)
    return FloatField(
        limit.label,
        validators=[
            InputRequired(f"Enter {limit.label.lower()}."),
            _between(limit.label, low, high, limit.unit),
        ],
    )


class ProtocolForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired("Enter the protocol's name."), Length(max=120)],
        description="Say the dose and the use, e.g. “Ketamine 0.5 mg/kg over 40 min (depression)”.",
    )
    drug = StringField(
        "Drug", validators=[DataRequired("Enter the drug."), Length(max=60)], default="ketamine"
    )
    indication = SelectField(
        "Indication",
        choices=[
            SelectChoice("", "Choose…"),
            *(SelectChoice(k, v) for k, v in INDICATIONS.items()),
        ],
        validators=[DataRequired("Choose the indication.")],
    )
    dose_mg_per_kg = FloatField(
        "Dose",
        validators=[InputRequired("Enter the dose."), _between("Dose", 0.05, 5, "mg/kg")],
        description="Total ordered dose per kg of body weight, for the whole infusion.",
    )
    infusion_minutes = IntegerField(
        "Infusion time",
        validators=[
            InputRequired("Enter the infusion time."),
            _between("Infusion time", 5, 720, "minutes"),
        ],
    )
    max_total_mg = FloatField(
        "Maximum total dose",
        validators=[
            InputRequired("Enter the maximum total dose."),
            _between("Maximum total dose", 1, 1000, "mg"),
        ],
        description="A larger total needs a physician override with a reason.",
    )
    concentration_mg_per_ml = FloatField(
        "Concentration",
        validators=[
            InputRequired("Enter the concentration."),
            _between("Concentration", 0.1, 100, "mg/mL"),
        ],
        description="Of the prepared infusion, for the mL/h rate.",
    )
    reading_interval_infusion_min = IntegerField(
        "Reading interval during the infusion",
        validators=[
            InputRequired("Enter the reading interval during the infusion."),
            _between("Reading interval during the infusion", 1, 60, "minutes"),
        ],
    )
    reading_interval_recovery_min = IntegerField(
        "Reading interval during recovery",
        validators=[
            InputRequired("Enter the reading interval during recovery."),
            _between("Reading interval during recovery", 1, 120, "minutes"),
        ],
    )
    min_observation_min = IntegerField(
        "Minimum observation after the infusion",
        validators=[
            InputRequired("Enter the minimum observation time."),
            _between("Minimum observation after the infusion", 0, 480, "minutes"),
        ],
    )

    change_reason = StringField(
        "Reason for the change",
        validators=[Length(max=500, message="Reason: at most 500 characters.")],
        description="Required: kept with the new version and shown in its history.",
    )

    def limit_groups(self):
        """[(title, hint, [(field, unit)])] for the template: one section per group."""
        return [
            (
                title,
                hint,
                [(self[f"limit_{f.key}"], f.unit) for f in LIMIT_FIELDS if f.group == group],
            )
            for group, title, hint in LIMIT_GROUPS
        ]

    def limits(self) -> dict[str, float]:
        return {f.key: self[f"limit_{f.key}"].data for f in LIMIT_FIELDS}

    def fill_limits(self, limits: dict[str, float]) -> None:
        for f in LIMIT_FIELDS:
            self[f"limit_{f.key}"].data = limits[f.key]

    def values(self) -> dict:
        return {**{name: self[name].data for name in PROTOCOL_FIELDS}, "limits": self.limits()}

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for key, message in limits_problems(self.limits()).items():
            field = self[f"limit_{key}"]
            if not field.errors:
                field.errors.append(message)
                ok = False
        return ok


# One input per threshold, generated from clinical.LIMIT_FIELDS so that a new threshold
# there appears on the form without another edit here.
for _limit in LIMIT_FIELDS:
    setattr(ProtocolForm, f"limit_{_limit.key}", _limit_field(_limit))
