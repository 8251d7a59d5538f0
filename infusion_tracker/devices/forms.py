"""Device registration and the accept-with-edits form for a proposed reading."""

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length

from ..models import PHASES
from .services import IDENTIFIER_MAX, NAME_MAX


class DeviceForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[
            DataRequired("Enter the device's name."),
            Length(max=NAME_MAX, message=f"Name: at most {NAME_MAX} characters."),
        ],
        description="How staff will know it, e.g. “Room 1 monitor (Mindray BeneVision)”.",
    )
    room = SelectField("Room", validate_choice=False)
    identifier = StringField(
        "MSH-3 identifier (for MLLP)",
        validators=[
            Length(max=IDENTIFIER_MAX, message=f"Identifier: at most {IDENTIFIER_MAX} characters.")
        ],
        description="One part of the device's MSH-3 or OBX-18, e.g. its EUI-64 "
        "00A0370000000001. Needed only if it sends over MLLP; HTTP uses the token.",
        render_kw={"autocomplete": "off", "autocapitalize": "none"},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rooms = current_app.config["ROOMS"]
        self.room.choices = [("", "Choose a room")] + [(room, room) for room in rooms]
        self.room.validators = [AnyOf(rooms, message="Choose the room the device is in.")]


# Value fields as typed on the accept page; their labels and units.
VALUE_FIELDS = {
    "systolic": ("Systolic", "mmHg"),
    "diastolic": ("Diastolic", "mmHg"),
    "heart_rate": ("Heart rate", "bpm"),
    "resp_rate": ("Respiratory rate", "/min"),
    "spo2": ("SpO2", "%"),
    "temperature_c": ("Temperature", None),  # in the clinic's units
}


class AcceptForm(FlaskForm):
    """Every value is optional text: the reading service judges it and names the field."""

    systolic = StringField("Systolic")
    diastolic = StringField("Diastolic")
    heart_rate = StringField("Heart rate")
    resp_rate = StringField("Respiratory rate")
    spo2 = StringField("SpO2")
    temperature_c = StringField("Temperature")
    phase = RadioField(
        "Phase",
        choices=[SelectChoice(value, label) for value, label in PHASES.items()],
        validate_choice=False,
        validators=[AnyOf(list(PHASES), message="Choose the phase of the session.")],
    )
    note = TextAreaField(
        "Note", validators=[Length(max=1000, message="Note: at most 1000 characters.")]
    )
