"""The printable session record: everything charted on one session, shaped for one template.

Works on a session loaded by get_infusion_or_404(full=True) (every relationship eager-loaded),
so building it issues no queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from flask_login import current_user
from markupsafe import Markup

from .. import clinical, timeutil, units
from ..infusions import page
from ..infusions.live import DoseGiven
from ..models import (
    AE_SEVERITIES,
    AVPU,
    CSSRS_RESULTS,
    INFUSION_ACTIONS,
    PHASES,
    PREGNANCY_STATUSES,
    RHYTHMS,
    SEXES,
    AdverseEvent,
    Assessment,
    InfusionSession,
    Reading,
)
from ..patients.services import age_on


@dataclass
class DoseLines:
    weight_kg: float | None
    mg_per_kg: float
    ordered: clinical.Dose | None  # weight × mg/kg, when a weight was recorded
    total_mg: float | None  # what the session records as given
    mg_per_h: float | None
    ml_per_h: float | None
    volume_ml: float | None
    differs: bool  # the recorded total is not weight × mg/kg
    given: DoseGiven | None  # what the pump gave (page.dose_given), None if not started


@dataclass
class ReadingRow:
    reading: Reading
    levels: dict[str, str]  # field -> "abnormal" | "critical"
    flag_messages: list[str]
    corrects_time: datetime | None = None  # when the reading it replaces was taken

    def level(self, *names: str) -> str:
        return clinical.worst(self.levels[n] for n in names if n in self.levels)


@dataclass
class ChecklistRow:
    label: str
    value: str
    done: bool


@dataclass
class AldreteRow:
    label: str
    score: int | None
    wording: str


@dataclass
class Record:
    infusion: InfusionSession
    age: int | None
    dose: DoseLines
    checklist: list[ChecklistRow]
    readings: list[ReadingRow]
    chart: Markup | None
    adverse_events: list[AdverseEvent]
    assessments: list[Assessment]
    aldrete: list[AldreteRow]
    printed_at: datetime
    printed_by: str
    labels: dict[str, dict] = field(default_factory=dict)

    @property
    def patient(self):
        return self.infusion.patient

    @property
    def draft(self) -> bool:
        return not self.infusion.is_signed


def dose_lines(infusion: InfusionSession, now: datetime) -> DoseLines:
    """SPEC §3 dose arithmetic: total = weight × mg/kg; rate = total / duration; mL/h; and
    what was given, worded as on the session page."""
    ordered = None
    if infusion.weight_kg:
        ordered = clinical.dose(
            infusion.weight_kg,
            infusion.dose_mg_per_kg,
            infusion.duration_min,
            infusion.concentration_mg_per_ml,
        )
    total = infusion.total_mg
    mg_per_h = ml_per_h = volume = None
    if total is not None and infusion.duration_min:
        mg_per_h = round(total * 60 / infusion.duration_min, 2)
        ml_per_h = round(mg_per_h / infusion.concentration_mg_per_ml, 2)
        volume = round(total / infusion.concentration_mg_per_ml, 2)
    return DoseLines(
        weight_kg=infusion.weight_kg,
        mg_per_kg=infusion.dose_mg_per_kg,
        ordered=ordered,
        total_mg=total,
        mg_per_h=mg_per_h,
        ml_per_h=ml_per_h,
        volume_ml=volume,
        differs=ordered is not None and total is not None and abs(ordered.total_mg - total) > 0.05,
        given=page.dose_given(infusion, now),
    )


def checklist_rows(infusion: InfusionSession) -> list[ChecklistRow]:
    system = current_app.config["UNITS"]
    rows = []
    for key, label in clinical.CHECKLIST_ITEMS:
        value = getattr(infusion, key)
        if isinstance(value, bool):
            text = "Yes" if value else "No"
        elif key == "pregnancy_status":
            text = PREGNANCY_STATUSES.get(value, value) if value else "Not recorded"
        elif key == "weight_kg":
            text = units.format_weight(value, system) if value else "Not recorded"
        else:
            text = value or "Not recorded"
        done = bool(value) and not (key == "pregnancy_status" and value == "positive")
        rows.append(ChecklistRow(label, text, done))
    return rows


def reading_rows(infusion: InfusionSession) -> list[ReadingRow]:
    taken = {reading.id: reading.taken_at for reading in infusion.readings}
    rows = []
    for reading in infusion.readings:
        levels = page.field_levels(reading)
        messages = [flag.get("message", "") for flag in reading.flags or [] if flag.get("message")]
        rows.append(ReadingRow(reading, levels, messages, taken.get(reading.corrects_id)))
    return rows


def vitals_chart(rows: list[ReadingRow], infusion: InfusionSession) -> Markup | None:
    """The session page's chart, shorter for the sheet; none when every reading was voided."""
    if all(row.reading.is_voided for row in rows):
        return None
    return page.vitals_chart(infusion, height=240)


def aldrete_rows(infusion: InfusionSession) -> list[AldreteRow]:
    answers = infusion.aldrete or {}
    rows = []
    for key, (label, choices) in clinical.ALDRETE_ITEMS.items():
        score = answers.get(key)
        rows.append(AldreteRow(label, score, choices.get(score, "") if score is not None else ""))
    return rows


def build(infusion: InfusionSession) -> Record:
    """Shape one eagerly loaded session for templates/review/print.html."""
    day = timeutil.to_clinic(infusion.started_at or infusion.scheduled_for).date()
    readings = reading_rows(infusion)
    now = timeutil.utcnow()
    return Record(
        infusion=infusion,
        age=age_on(infusion.patient.date_of_birth, day),
        dose=dose_lines(infusion, now),
        checklist=checklist_rows(infusion),
        readings=readings,
        chart=vitals_chart(readings, infusion),
        adverse_events=list(infusion.adverse_events),
        assessments=list(infusion.assessments),
        aldrete=aldrete_rows(infusion) if infusion.aldrete else [],
        printed_at=now,
        printed_by=current_user.display_name,
        labels={
            "phase": PHASES,
            "rhythm": RHYTHMS,
            "avpu": AVPU,
            "sex": SEXES,
            "ae_severity": AE_SEVERITIES,
            "infusion_action": INFUSION_ACTIONS,
            "cssrs": CSSRS_RESULTS,
        },
    )
