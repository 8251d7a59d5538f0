"""The session page in one place: its context, its row models and its chart, with one render
function that the session page, the refused forms of every session action (lifecycle,
readings, adverse events, signing) and the review reuse.

Works on a session loaded with queries.get_infusion_or_404(..., full=True): building the page
issues no query per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from flask import current_app, get_template_attribute, render_template
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from wtforms.validators import Length

from .. import charts, clinical, units
from ..devices import services as device_services
from ..inputs import arg_id
from ..memo import drawn, packed_cache
from ..models import (
    RHYTHMS,
    ROLE_PHYSICIAN,
    AdverseEvent,
    InfusionSession,
    ProposedReading,
    Reading,
)
from ..timeutil import clinic_today, formatter, plausible, utcnow
from ..vocab import AVPU, RHYTHM_SHORT, STATUS_KINDS
from . import adverse_events as ae_services
from . import queries
from . import readings as reading_services
from .board import status_line
from .forms import (
    CancelForm,
    CheckInForm,
    DetailsForm,
    PauseForm,
    RateForm,
    ResumeForm,
    RunOnForm,
    StartForm,
    StopForm,
)
from .lifecycle import start_problems
from .live import DoseGiven, LiveParts, SessionClock
from .reading_cells import reading_body, row_links
from .reading_forms import (
    AdverseEventForm,
    ReadingForm,
    ReasonForm,
    ReviewForm,
    offer_now,
    wall_time,
)

# context name -> (form class, field prefix, clinical action): the action forms on the session
# page. Prefixes keep field ids unique across the page's many forms.
ACTION_FORMS = {
    "checkin_form": (CheckInForm, "checkin", "check_in"),
    "start_form": (StartForm, "start", "start"),
    "pause_form": (PauseForm, "pause", "pause"),
    "resume_form": (ResumeForm, "resume", "resume"),
    "rate_form": (RateForm, "rate", "rate"),
    "stop_form": (StopForm, "stop", "stop"),
    "run_on_form": (RunOnForm, "run_on", "run_on"),
    "cancel_form": (CancelForm, "cancel", "cancel"),
}
# The action the state must allow for the page to draw each form (templates/infusions/
# detail.html and _run_on.html: the rate beside Pause, the run-on reason beside Stop).
DRAWN_WITH = {
    **{name: action for name, (_, _, action) in ACTION_FORMS.items()},
    "rate_form": "pause",
    "run_on_form": "stop",
}


class NotDrawn:
    """In the page's context, an action form the state does not draw: building every form on
    every view was a twentieth of the session page (issue 8). Anything the template reads of
    it fails loudly, rather than drawing a form without its CSRF token."""

    def __init__(self, name: str):
        self.name = name

    def __getattr__(self, attribute: str):
        raise RuntimeError(f"{self.name} is not drawn in this state (page.DRAWN_WITH)")


# Sessions whose table and chart each worker keeps drawn: more than a busy clinic's day, and
# more than a round of the benchmark's 100 sessions (pages viewed in turn that outnumber the
# memo never find theirs in it).
MEMO_SESSIONS = 128
READINGS_TABLES = "readings_tables"  # the app's drawn tables (memo.drawn)
BLANK_AE_FIELDS = "blank_ae_fields"  # the blank adverse-event form's fields (memo.drawn)
BLANK_READING_FIELDS = "blank_reading_fields"  # the blank reading form's fields (memo.drawn)
# Typed this long after the clinical time, a reading shows when it was entered.
LATE_ENTRY = timedelta(minutes=10)
READING_PREFIX = "reading"
AE_PREFIX = "ae"
PHASE_FOR_STATUS = {
    "planned": "baseline",
    "checked_in": "baseline",
    "infusing": "infusion",
    "paused": "infusion",
    "recovery": "recovery",
    "stopped_early": "recovery",
    "discharged": "discharge",
}
# The Void boxes are plain HTML posting to ReasonForm: the limit its validator enforces.
VOID_REASON_MAX = next(
    v.max for v in ReasonForm.reason.kwargs["validators"] if isinstance(v, Length)
)
# Fields with a "last …" hint beside their box.
HINT_FIELDS = ("systolic", "diastolic", "heart_rate", "resp_rate", "spo2", "moaas", "pain")


@dataclass
class ReadingRow:
    """One reading as the table shows it: its stored flags' levels, deltas and
    cross-references."""

    reading: Reading
    levels: dict[str, str]  # field_levels(reading)
    deltas: dict[str, int] = field(default_factory=dict)
    news2_risk: str | None = None
    late: bool = False
    corrected_by: list[int] = field(default_factory=list)
    answered_by: list[int] = field(default_factory=list)
    can_void: bool = False  # Void and Correct are offered
    just_saved: bool = False  # the reading the last save recorded (highlighted)

    @property
    def bp_level(self) -> str | None:
        """One word for the BP cell: the worse of systolic and diastolic."""
        levels = [
            level for level in (self.levels.get("systolic"), self.levels.get("diastolic")) if level
        ]
        return clinical.worst(levels) if levels else None

    @property
    def needs_action(self) -> bool:
        return queries.is_open_critical(self.reading)

    @property
    def rhythm_short(self) -> str:
        if self.reading.rhythm == "other":
            return rhythm_text(self.reading)
        return RHYTHM_SHORT.get(self.reading.rhythm) or rhythm_text(self.reading)


# Not frozen: a frozen dataclass sets each of its 45 fields through object.__setattr__, a
# quarter of a millisecond of a session page's first view (bench/RESULTS.md, Stop 26).
@dataclass(slots=True)
class TableLine:
    """One reading as the readings table draws it, in plain values only."""

    id: int
    taken_at: datetime
    phase: str
    created_at: datetime
    late: bool
    just_saved: bool
    severity: str
    voided: bool
    systolic: int | None
    diastolic: int | None
    heart_rate: int | None
    resp_rate: int | None
    spo2: int | None
    o2_flow_lpm: float | None
    temperature_c: float | None
    rhythm: str
    rhythm_short: str
    avpu: str
    moaas: int | None
    pain: int | None
    news2: int | None
    news2_risk: str | None
    levels: dict[str, str | None]  # {field: worst flag level, None when not flagged}
    bp_level: str | None
    systolic_delta: int | None
    heart_rate_delta: int | None
    recorded_by: str
    corrects_id: int | None
    note: str
    flags: tuple[tuple[str, str], ...]  # (level, message)
    critical_action: str
    critical_action_by: str
    critical_action_at: datetime | None
    critical_action_note: str
    answered_by: tuple[int, ...]
    corrected_by: tuple[int, ...]
    voided_by: str
    voided_at: datetime | None
    void_reason: str
    needs_action: bool
    can_void: bool


def _name(staff) -> str:
    return staff.display_name if staff is not None else ""


def table_line(row: ReadingRow) -> TableLine:
    r = row.reading
    return TableLine(
        id=r.id,
        taken_at=r.taken_at,
        phase=r.phase,
        created_at=r.created_at,
        late=row.late,
        just_saved=row.just_saved,
        severity=r.severity,
        voided=r.is_voided,
        systolic=r.systolic,
        diastolic=r.diastolic,
        heart_rate=r.heart_rate,
        resp_rate=r.resp_rate,
        spo2=r.spo2,
        o2_flow_lpm=r.o2_flow_lpm,
        temperature_c=r.temperature_c,
        rhythm=r.rhythm or "",
        rhythm_short=row.rhythm_short if r.rhythm else "",
        avpu=r.avpu or "",
        moaas=r.moaas,
        pain=r.pain,
        news2=r.news2,
        news2_risk=row.news2_risk,
        levels=dict.fromkeys(clinical.VITAL_FIELDS) | row.levels,
        bp_level=row.bp_level,
        systolic_delta=row.deltas.get("systolic"),
        heart_rate_delta=row.deltas.get("heart_rate"),
        recorded_by=_name(r.recorded_by),
        corrects_id=r.corrects_id,
        note=r.note or "",
        flags=tuple((flag["level"], flag["message"]) for flag in r.flags or []),
        critical_action=r.critical_action or "",
        critical_action_by=_name(r.critical_action_by),
        critical_action_at=r.critical_action_at,
        critical_action_note=r.critical_action_note or "",
        answered_by=tuple(row.answered_by),
        corrected_by=tuple(row.corrected_by),
        voided_by=_name(r.voided_by),
        voided_at=r.voided_at,
        void_reason=r.void_reason or "",
        needs_action=row.needs_action,
        can_void=row.can_void,
    )


def readings_table(infusion: InfusionSession, baseline: Reading | None, changeable) -> Markup:
    """The readings table (newest first), memoised under the session's version."""
    zone, system = current_app.config["CLINIC_TIMEZONE"], current_app.config["UNITS"]
    key = (
        infusion.id,
        # Any change to a reading, or to an adverse event answering one, makes a new version
        # stamped with its time (guards.begin_row_change), in the same transaction; the time
        # tells apart two histories of one session (a database restored from a backup).
        infusion.version,
        infusion.updated_at,
        # Who views: Void and Correct are offered by role and by who charted the row.
        current_user.id,
        current_user.is_physician,
        arg_id("saved"),  # the row the last save recorded is highlighted
        _names(infusion.readings),  # a clinician renamed since
        zone,  # the time and temperature filters read these from the config
        system,
    )

    def draw() -> str:
        rows = _reading_rows(infusion, baseline, changeable)
        csrf = generate_csrf()  # the Void forms' token, as the template's csrf_token()
        links = row_links()
        hhmm = formatter(zone)
        bodies = "\n".join(
            reading_body(table_line(row), system, hhmm, csrf, VOID_REASON_MAX, links)
            for row in reversed(rows)
        )
        return render_template(
            "infusions/_readings_table.html",
            readings=Markup(bodies),  # noqa: S704 (reading_cells escapes every text)
            baseline_at=baseline.taken_at if baseline else None,
        )

    # Shown again before anything in it changed, a table is not drawn again (a quarter of the
    # session page's CPU, bench/RESULTS.md).
    return drawn(READINGS_TABLES, key, draw, MEMO_SESSIONS)


def _names(readings: list[Reading]) -> tuple[tuple[int, str], ...]:
    """The clinicians the table names (charted, voided, answered), as they are named now."""
    staff = {
        person
        for reading in readings
        for person in (reading.recorded_by, reading.voided_by, reading.critical_action_by)
        if person is not None
    }
    return tuple(sorted((person.id, person.display_name) for person in staff))


@dataclass
class AdverseEventRow:
    event: AdverseEvent
    reading: Reading | None = None
    corrected_by: list[int] = field(default_factory=list)
    can_void: bool = False


@dataclass(frozen=True)
class CarryOver:
    """The last reading's O2, rhythm, AVPU and MOAA/S, offered as "unchanged" (one box)."""

    reading: Reading
    items: list[tuple[str, str]]  # (label, value in words), as the box lists them
    fields: dict[str, str]  # form field name -> the value its box takes (charting.js)


def carry_over(previous: Reading | None) -> CarryOver | None:
    values = reading_services.carry_values(previous)
    if not values:
        return None
    items, fields = [], {}
    if "o2_flow_lpm" in values:
        flow = values["o2_flow_lpm"]
        items.append(("O2", units.format_o2(flow)))
        fields.update({"o2_room_air": "y"} if flow == 0 else {"o2_flow_lpm": f"{flow:g}"})
    if "rhythm" in values:
        items.append(("Rhythm", rhythm_text(previous)))
        fields["rhythm"] = values["rhythm"]
        if "rhythm_other" in values:
            fields["rhythm_other"] = values["rhythm_other"]
    if "avpu" in values:
        items.append(("AVPU", AVPU[values["avpu"]]))
        fields["avpu"] = values["avpu"]
    if "moaas" in values:
        items.append(("MOAA/S", str(values["moaas"])))
        fields["moaas"] = str(values["moaas"])
    return CarryOver(previous, items, fields)


@dataclass
class NextDue:
    due_at: datetime
    overdue: bool
    interval_min: int


def _news2_risk(reading: Reading) -> str | None:
    if reading.news2 is None:
        return None
    # Whether one parameter scored 3 decides only a total of 3 or 4: below 3 none can have,
    # and from 5 the total alone decides (so most rows skip scoring the parts again).
    any_parameter_3 = False
    if 3 <= reading.news2 < 5:
        parts = clinical.news2_parts(queries.reading_values(reading)) or {}
        any_parameter_3 = any(score == 3 for score in parts.values())
    return clinical.news2_risk(reading.news2, any_parameter_3)


def _o2_text(flow: float | None) -> str:
    if flow is None:
        return ""
    return "room air" if flow == 0 else f"{flow:g} L/min"


def previous_hints(previous: Reading | None, system: str) -> dict[str, str]:
    """The hint beside each box: its value in the previous reading ("last 128")."""
    if previous is None:
        return {}
    hints = {
        name: f"last {getattr(previous, name)}"
        for name in HINT_FIELDS
        if getattr(previous, name) is not None
    }
    if previous.o2_flow_lpm is not None:
        hints["o2"] = f"last {_o2_text(previous.o2_flow_lpm)}"
    temperature = units.temperature_to_display(previous.temperature_c, system)
    if temperature is not None:
        hints["temperature"] = f"last {temperature:.1f}"
    if previous.avpu:
        hints["avpu"] = f"last {previous.avpu}"
    if previous.rhythm:
        hints["rhythm"] = "last " + rhythm_text(previous)
    return hints


def rhythm_text(reading: Reading) -> str:
    if reading.rhythm == "other" and reading.rhythm_other:
        return reading.rhythm_other
    return RHYTHMS.get(reading.rhythm, reading.rhythm)


def new_reading_form(infusion: InfusionSession, previous: Reading | None) -> ReadingForm:
    """A blank reading form: now (clinic time; kept only if changed, see ReadingForm), the
    phase the status suggests."""
    form = ReadingForm(
        formdata=None, prefix=READING_PREFIX, units_system=current_app.config["UNITS"]
    )
    offer_now(form.taken_at)
    form.taken_at_default.data = form.taken_at._value()  # the same minute (or marker)
    form.phase.data = PHASE_FOR_STATUS.get(infusion.status, "baseline")
    # O2 is stated at each reading, never assumed: room air is not pre-ticked, and the last
    # reading's O2, rhythm, AVPU and MOAA/S count only once "unchanged" is ticked.
    return form


def _blank_fields(name: str, macro: str, key: tuple, form, *args, **kwargs) -> Markup:
    """A blank form's boxes (the page draws its token and key), kept by each worker under
    `key` (everything they show) and the clinic's day and zone: a time box's hint names the
    day's repeated hour, and a time is shown in the zone. `form()` builds the form only when
    they are drawn, so its time, offered with offer_now, is a marker each view fills in."""
    key = (*key, clinic_today(), current_app.config["CLINIC_TIMEZONE"])

    def draw() -> str:
        return get_template_attribute("infusions/_charting_macros.html", macro)(
            form(), *args, **kwargs
        )

    return drawn(name, key, draw)


def blank_reading_fields(
    infusion: InfusionSession,
    previous: Reading | None,
    hints: dict[str, str],
    carry: CarryOver | None,
    confirm_baseline: bool,
    temp_unit: str,
) -> Markup:
    """The blank reading form's boxes: a running session's page is drawn again for each reading
    charted, and drawing them was a sixth of its Python calls (bench/RESULTS.md, Stop 26). Kept
    under the phase offered, the last reading's hints and the values behind "unchanged", and
    the units."""

    def form() -> ReadingForm:
        blank = new_reading_form(infusion, previous)
        _offer_carry(blank, previous)
        return blank

    key = (
        PHASE_FOR_STATUS.get(infusion.status, "baseline"),
        confirm_baseline,
        previous.id if previous else None,  # the reading "unchanged" confirms
        previous.taken_at if previous else None,  # "Unchanged since 10:05"
        tuple(hints.items()),
        (tuple(carry.items), tuple(carry.fields.items())) if carry else None,
        current_app.config["UNITS"],  # the temperature's unit, and its box's
    )
    return _blank_fields(
        BLANK_READING_FIELDS, "reading_fields", key, form,
        hints, temp_unit, confirm_baseline, bedside=True, carry=carry,
    )


def _offer_carry(form: ReadingForm, previous: Reading | None) -> None:
    """The form offers the last reading's values; a tick given for another reading (a refused
    form, drawn before a colleague charted) is taken back, to be given again for this one."""
    offered = str(previous.id) if previous else ""
    if form.carry_from.data != offered:
        form.same_as_last.data = False
        form.carry_from.data = offered


def new_adverse_event_form(reading: Reading | None = None) -> AdverseEventForm:
    form = AdverseEventForm(formdata=None, prefix=AE_PREFIX)
    if reading:
        form.onset_at.data = wall_time(reading.taken_at)
    else:
        offer_now(form.onset_at)
    form.infusion_action.data = "none"
    form.reading_id.data = str(reading.id) if reading else ""
    return form


def blank_ae_fields(reading: Reading | None) -> Markup:
    """The blank adverse-event form's boxes, the same on every session's page but for the
    critical reading it answers: drawn once a day by each worker, not on every page (3,100
    Python calls a page, bench/RESULTS.md, Stop 25)."""
    key = (reading.id if reading else None, reading.taken_at if reading else None)
    return _blank_fields(
        BLANK_AE_FIELDS, "adverse_event_fields", key, lambda: new_adverse_event_form(reading)
    )


def _answered_reading(all_readings: list[Reading]) -> Reading | None:
    """The critical reading named by ?ae_reading= ("Record adverse event" on that row)."""
    wanted = arg_id("ae_reading")
    return next((r for r in all_readings if r.id == wanted), None) if wanted else None


def _changeable(infusion: InfusionSession):
    # Asked of every row: the viewer read once (each current_user goes through Flask-Login).
    viewer_id, is_physician = current_user.id, current_user.is_physician

    def changeable(row) -> bool:
        """Void and Correct are offered to whoever may use them (readings.ensure_entry_rights)."""
        return not (infusion.is_signed or row.is_voided) and (
            row.recorded_by_id == viewer_id or is_physician
        )

    return changeable


def _referrers(rows, key: str) -> dict[int, list[int]]:
    """{id: ids of the rows pointing at it through `key`} (corrections, answered criticals)."""
    found: dict[int, list[int]] = {}
    for row in rows:
        target = getattr(row, key)
        if target:
            found.setdefault(target, []).append(row.id)
    return found


def _deltas(reading: Reading, baseline: Reading | None) -> dict[str, int]:
    if baseline is None or reading.phase == "baseline":
        return {}
    deltas = {}
    for name in ("systolic", "heart_rate"):
        value, base = getattr(reading, name), getattr(baseline, name)
        if value is not None and base is not None:
            deltas[name] = value - base
    return deltas


def _reading_rows(infusion: InfusionSession, baseline: Reading | None, changeable) -> list:
    corrected_by = _referrers(infusion.readings, "corrects_id")
    answered = [event for event in infusion.adverse_events if not event.is_voided]
    answered_by = _referrers(answered, "reading_id")
    saved = arg_id("saved")  # set by the redirect after a reading is recorded
    return [
        ReadingRow(
            reading=reading,
            levels=field_levels(reading),
            deltas=_deltas(reading, baseline),
            news2_risk=_news2_risk(reading),
            late=reading.created_at - reading.taken_at > LATE_ENTRY,
            corrected_by=corrected_by.get(reading.id, []),
            answered_by=answered_by.get(reading.id, []),
            can_void=changeable(reading),
            just_saved=reading.id == saved,
        )
        for reading in infusion.readings
    ]


def _ae_rows(infusion: InfusionSession, changeable) -> list[AdverseEventRow]:
    readings_by_id = {r.id: r for r in infusion.readings}
    corrected_by = _referrers(infusion.adverse_events, "corrects_id")
    return [
        AdverseEventRow(
            event,
            readings_by_id.get(event.reading_id),
            corrected_by.get(event.id, []),
            changeable(event),
        )
        for event in infusion.adverse_events
    ]


def _next_due(infusion: InfusionSession, previous, open_criticals, now) -> NextDue | None:
    line = status_line(infusion, previous, open_criticals, now)
    interval = queries.reading_interval(infusion)
    if line.due_at is None or not interval:
        return None
    return NextDue(line.due_at, line.overdue, interval)


def charting_context(
    infusion: InfusionSession,
    *,
    reading_form: ReadingForm | None = None,
    ae_form: AdverseEventForm | None = None,
    now: datetime | None = None,
) -> dict:
    """What the charting partials need. Works on the rows already loaded with
    queries.get_infusion_or_404(..., full=True): no query per reading."""
    now = now or utcnow()
    system = current_app.config["UNITS"]
    all_readings = list(infusion.readings)
    previous = queries.latest_of(all_readings)
    baseline = queries.latest_of(all_readings, "baseline")
    open_criticals = [r for r in all_readings if queries.is_open_critical(r)]
    changeable = _changeable(infusion)

    temp_unit = units.temperature_unit(system)
    hints = previous_hints(previous, system)
    carry = carry_over(previous)
    # A baseline after the start moves every change-from-baseline: it asks to be confirmed.
    confirm_baseline = infusion.started_at is not None
    refusal = reading_services.chart_refusal(infusion)
    reading_fields = None
    if reading_form is None and refusal is None:
        reading_form = new_reading_form(infusion, previous)
        reading_fields = blank_reading_fields(
            infusion, previous, hints, carry, confirm_baseline, temp_unit
        )
    if reading_form is not None:
        _offer_carry(reading_form, previous)
    ae_refused = ae_refusal(infusion)
    ae_reading = _answered_reading(all_readings)
    ae_fields = None
    if ae_form is None and ae_refused is None:
        ae_form = new_adverse_event_form(ae_reading)
        ae_fields = blank_ae_fields(ae_reading)

    return {
        "reading_form": reading_form,
        "reading_fields_html": reading_fields,  # drawn already for a blank form, else from the form
        "reading_refusal": refusal,
        "confirm_baseline": confirm_baseline,
        "reading_temp_unit": temp_unit,
        "reading_hints": hints,
        "previous_reading": previous,
        "carry": carry,
        "readings_table": readings_table(infusion, baseline, changeable),
        "next_due": _next_due(infusion, previous, open_criticals, now),
        "open_criticals": open_criticals,
        "reading_review_forms": {
            reading.id: ReviewForm(formdata=None, prefix=f"review-{reading.id}")
            for reading in open_criticals
        },
        "ae_form": ae_form,
        "ae_fields": ae_fields,  # drawn already for a blank form, else from ae_form
        "ae_refusal": ae_refused,
        "ae_reading": ae_reading,
        "ae_rows": _ae_rows(infusion, changeable),
        "void_reason_max": VOID_REASON_MAX,
    }


def ae_refusal(infusion: InfusionSession) -> str | None:
    if infusion.is_signed:
        return "This session was signed and is locked."
    if infusion.status not in ae_services.RECORDABLE_STATUSES:
        return (
            "Adverse events can be recorded from check-in until the session is signed "
            f"(this session is {infusion.status_label.lower()})."
        )
    return None


def vitals_chart(infusion: InfusionSession, height: int = 320):
    """BP, HR and SpO2 against time with the infusion's start, pauses and stop marked; voided
    readings are left out of the picture and counted in its words (the table strikes them)."""
    points = tuple(
        (
            reading.taken_at,
            reading.systolic,
            reading.diastolic,
            reading.heart_rate,
            reading.spo2,
            reading.severity,
            tuple(field_levels(reading).items()),
            reading.is_voided,
        )
        for reading in infusion.readings
        if plausible(reading.taken_at)  # a stored year-1 typo would stretch the axis
    )
    marks = tuple(
        (event.occurred_at, event.kind_label)
        for event in infusion.events
        if event.kind in ("start", "pause", "resume", "stop") and plausible(event.occurred_at)
    )
    return _vitals_svg(points, marks, height, current_app.config["CLINIC_TIMEZONE"])


# The SVG is a function of exactly these values and of the clinic's zone (its times are
# written in it: hence `zone` in the key). Memoised, a page shown again before anything on
# the chart changed is not drawn again (a sixth of the page's CPU, bench/RESULTS.md); a new,
# changed or voided reading or a new event is a new key, so a stale chart cannot be served.
@packed_cache(MEMO_SESSIONS)
def _vitals_svg(points: tuple, marks: tuple, height: int, zone: str) -> Markup:
    return charts.vitals_chart(
        [
            charts.VitalPoint(
                at=at,
                systolic=systolic,
                diastolic=diastolic,
                heart_rate=heart_rate,
                spo2=spo2,
                abnormal=severity == "abnormal",
                critical=severity == "critical",
                field_levels=dict(levels),
                voided=voided,
            )
            for at, systolic, diastolic, heart_rate, spo2, severity, levels, voided in points
        ],
        [charts.EventMark(at=at, label=label) for at, label in marks],
        height=height,
        title="Blood pressure, heart rate and SpO2",
        fmt_time=formatter(zone),
    )


def field_levels(reading: Reading) -> dict[str, str]:
    """{field: worst flag level} from the flags stored when the reading was charted (not
    re-derived from today's limits)."""
    levels: dict[str, str] = {}
    for flag in reading.flags or []:
        name, level = flag.get("field"), flag.get("level")
        if name and level:
            levels[name] = clinical.worst([levels.get(name, "normal"), level])
    return levels


def dose_given(infusion: InfusionSession, now: datetime) -> DoseGiven | None:
    """What the pump gave by `now`; None until the infusion has started."""
    return SessionClock.of(infusion).given(now)


def _override_names(infusion: InfusionSession) -> dict[int, str]:
    """{event id: who allowed its rate above the limit}: the physician who set the rate, whose
    name is already loaded with the event (no query)."""
    return {
        event.id: event.recorded_by.display_name
        if event.override_by_id == event.recorded_by_id
        else "a physician"
        for event in infusion.events
        if event.override_reason
    }


def _lifecycle_forms(infusion: InfusionSession, actions: list[str]) -> dict:
    """The empty action forms the state draws, and the details form until the signature."""
    forms = {
        name: form_class(formdata=None, prefix=prefix, version=infusion.version)
        if DRAWN_WITH[name] in actions
        else NotDrawn(name)
        for name, (form_class, prefix, _action) in ACTION_FORMS.items()
    }
    forms["details_form"] = (
        NotDrawn("details_form")
        if infusion.is_signed
        else DetailsForm(formdata=None, prefix="details", infusion=infusion)
    )
    return forms


def lifecycle_context(infusion: InfusionSession, now: datetime) -> dict:
    """The status line, dose, pump and the lifecycle actions the state allows. What the clock
    moves is in `live` (each view's own); `turns_at`: when the clock alone changes the rest."""
    readings = infusion.readings
    not_started = infusion.status in queries.NOT_STARTED_STATUSES
    clock = SessionClock.of(infusion)
    pump = clock.pump(now) if infusion.started_at else None
    line = status_line(
        infusion,
        queries.latest_of(readings),
        [reading for reading in readings if queries.is_open_critical(reading)],
        now,
    )
    observation_left = clock.observation_left_min(now)
    checked_in = infusion.status == "checked_in"
    baseline = queries.latest_of(readings, "baseline") if checked_in else None
    gate_changes_at = clinical.start_gate_changes_at(baseline and baseline.taken_at, now)
    return {
        "infusion": infusion,
        "patient": infusion.patient,
        "protocol": infusion.protocol,
        "line": line,
        "live": LiveParts(clock),
        "turns_at": clock.turns_at(now, line.due_at, gate_changes_at),
        "status_kinds": STATUS_KINDS,
        "actions": [] if infusion.is_signed else clinical.allowed_actions(infusion.status),
        "dose": queries.compute_dose(infusion),
        "dose_problem": queries.dose_problem(infusion) if not_started else None,
        "rate": pump.rate_mg_per_h if pump else None,
        "rate_limit": queries.rate_limit(infusion),
        "paused_before": any(event.kind == "pause" for event in infusion.events),
        "planned_reached": pump is not None and clock.planned_reached(pump),
        "run_on_events": queries.run_on_events(infusion),
        "given": clock.given(now),
        "override_names": _override_names(infusion),
        "start_problems": start_problems(infusion, baseline, now) if checked_in else [],
        "observation_done": observation_left == 0,
        "observation_shown": observation_left is not None,
        "vitals_chart": vitals_chart(infusion),
        "aldrete_items": clinical.ALDRETE_ITEMS,
        "aldrete_min": clinical.ALDRETE_DISCHARGE_MIN,
        "units_weight": units.weight_unit(current_app.config["UNITS"]),
        "is_physician": current_user.role == ROLE_PHYSICIAN,
    }


CHARTING_FORMS = ("reading_form", "ae_form")


def render_session_page(infusion_id: int, status: int = 200, **forms):
    """The session page, with any just-submitted form (lifecycle, reading, adverse event,
    signature) as typed and its messages: a refused submit answers 422 and keeps every value."""
    return session_page(queries.get_infusion_or_404(infusion_id, full=True), status, **forms)


def session_page(infusion: InfusionSession, status: int = 200, **forms):
    """The session page of a session loaded with queries.get_infusion_or_404(..., full=True)."""
    body = session_body(infusion, **forms)
    return page_around(body.title, Markup(body.html)), status  # noqa: S704 (drawn by Jinja, escaped)


class SessionBody(NamedTuple):
    title: str
    html: str
    turns_at: datetime | None  # when the clock alone changes what html shows (live.py)


def session_body(
    infusion: InfusionSession, proposed: list[ProposedReading] | None = None, **forms
) -> SessionBody:
    """The session page's title and body (infusions/drawn.py keeps them). `proposed`: the
    monitor values waiting, when the caller knows them already."""
    now = utcnow()
    charting_forms = {name: forms.pop(name) for name in CHARTING_FORMS if name in forms}
    lifecycle = lifecycle_context(infusion, now)
    context = {
        **lifecycle,
        **charting_context(infusion, now=now, **charting_forms),
        **_lifecycle_forms(infusion, lifecycle["actions"]),
        "proposed": device_services.pending_for(infusion) if proposed is None else proposed,
        **forms,
    }
    title = f"{infusion.patient.full_name} · session {infusion.series_number}"
    html = render_template("infusions/_detail_body.html", **context)
    return SessionBody(title, html, lifecycle["turns_at"])


def page_around(title: str, body: Markup) -> str:
    """The layout (navigation, messages) around a session page's body: drawn on each view."""
    return render_template("infusions/detail.html", title=title, body=body)
