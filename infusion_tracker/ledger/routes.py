"""/ledger/: stock, vials, receipt, counts, discrepancies, reports; and the session's draw,
give and waste (posted from the session page's dose panel). Clinicians do; admins read.

Each write view either redirects (success) or draws the form again with 422; the request's
unit of work commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy.orm import aliased
from wtforms import SelectChoice

from .. import audit, unit_of_work
from ..errors import RuleError, show_on_form
from ..extensions import db
from ..infusions import guards
from ..infusions.live import LiveParts, SessionClock
from ..infusions.queries import get_infusion_or_404
from ..inputs import date_problem
from ..models import (
    CLINICAL_ROLES,
    LEDGER_KINDS,
    ROLE_ADMIN,
    ROLE_PHYSICIAN,
    InfusionSession,
    LedgerCount,
    LedgerDiscrepancy,
    LedgerEntry,
    LedgerVial,
    Staff,
    display_name,
    vial_label,
)
from ..permissions import clinician_required, physician_required, role_required
from ..timeutil import clinic_today, format_datetime, utcnow
from . import reports, services
from .forms import (
    CorrectForm,
    CountForm,
    DrawForm,
    PeriodForm,
    ReasonForm,
    ReceiveForm,
    VialWasteForm,
    WasteForm,
    default_period,
)

bp = Blueprint("ledger", __name__, url_prefix="/ledger")
any_staff = role_required(ROLE_ADMIN, *CLINICAL_ROLES)
resolver_required = role_required(ROLE_PHYSICIAN, ROLE_ADMIN)


def _actor():
    return current_user._get_current_object()


def _refused(form, error: RuleError) -> None:
    show_on_form(form, error)
    # A wrong witness password was counted toward their lockout: that must survive the 422.
    if error.field and error.field.endswith("_password"):
        unit_of_work.keep()


def _get(model, ident):
    row = db.session.get(model, ident)
    if row is None:
        abort(404)
    return row


def _attachment(body: str, filename: str) -> Response:
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# --- Stock, vials -------------------------------------------------------------------------------


@bp.route("/")
@any_staff
def stock():
    return render_template(
        "ledger/stock.html",
        in_safe=services.vials_in_safe(),
        open_count=len(services.open_discrepancies()),
        today=clinic_today(),
        last_count=db.session.scalar(
            sa.select(LedgerCount).order_by(LedgerCount.counted_at.desc()).limit(1)
        ),
    )


@bp.route("/vials")
@any_staff
def vials():
    rows = db.session.scalars(sa.select(LedgerVial).order_by(LedgerVial.id.desc())).all()
    return render_template(
        "ledger/vials.html", vials=rows, balances=services.vial_balances([v.id for v in rows])
    )


@bp.route("/vials/<int:vial_id>")
@any_staff
def vial(vial_id: int):
    row = _get(LedgerVial, vial_id)
    audit.record("ledger.vial_viewed", entity=row)  # its lines name patients by MRN
    return render_template(
        "ledger/vial.html",
        vial=row,
        lines=reports.vial_ledger(row),
        balance=services.vial_balance(row),
    )


@bp.route("/vials/<int:vial_id>/print")
@any_staff
def vial_print(vial_id: int):
    row = _get(LedgerVial, vial_id)
    lines = reports.vial_ledger(row)
    audit.record("ledger.vial_printed", entity=row)
    page = render_template("ledger/vial_print.html", vial=row, lines=lines,
                           balance=services.vial_balance(row),
                           now_text=format_datetime(utcnow()))
    return page


@bp.route("/vials/<int:vial_id>/ledger.csv")
@any_staff
def vial_csv(vial_id: int):
    row = _get(LedgerVial, vial_id)
    body = reports.vial_csv(row, reports.vial_ledger(row))
    audit.record("ledger.vial_exported", entity=row)
    return _attachment(body, f"ledger-{row.label}.csv")


@bp.route("/receive", methods=["GET", "POST"])
@clinician_required
def receive():
    form = ReceiveForm()
    if form.validate_on_submit():
        try:
            received = services.receive_vials(
                actor=_actor(), **{name: getattr(form, name).data for name in (
                    "quantity", "drug", "strength_mg_per_ml", "volume_ml", "lot", "expiry",
                    "supplier", "invoice_number")}
            )
        except RuleError as error:
            _refused(form, error)
        else:
            labels = ", ".join(v.label for v in received)
            flash(f"Received {len(received)} vial(s): {labels}.", "success")
            return redirect(url_for("ledger.stock"))
    return _form_page("ledger/receive.html", form)


@bp.route("/vials/<int:vial_id>/waste", methods=["GET", "POST"])
@clinician_required
def waste_vial(vial_id: int):
    row = _get(LedgerVial, vial_id)
    form = VialWasteForm()
    if form.validate_on_submit():
        try:
            services.waste_vial(row, _actor(), form.reason.data, form.witness_username.data,
                                form.witness_password.data, form.note.data)
        except RuleError as error:
            _refused(form, error)
        else:
            flash(f"Vial {row.label} wasted, witnessed.", "success")
            return redirect(url_for("ledger.vial", vial_id=row.id))
    return _form_page("ledger/waste_vial.html", form, vial=row,
                      balance=services.vial_balance(row))


@bp.route("/entries/<int:entry_id>/correct", methods=["GET", "POST"])
@clinician_required
def correct(entry_id: int):
    entry = _get(LedgerEntry, entry_id)
    if entry.infusion is not None:
        guards.ensure_editable(entry.infusion)  # a signed session's entries: 409
    form = CorrectForm()
    if request.method == "GET":
        form.amount_mg.data = entry.amount_mg
    if form.validate_on_submit():
        try:
            services.correct_entry(entry, _actor(), form.amount_mg.data, form.reason.data,
                                   form.witness_username.data, form.witness_password.data)
        except RuleError as error:
            _refused(form, error)
        else:
            flash("Correction recorded; the corrected entry is kept and marked.", "success")
            return redirect(url_for("ledger.vial", vial_id=entry.vial_id))
    return _form_page("ledger/correct.html", form, entry=entry)


def _form_page(template: str, form, **context):
    refused = bool(form.errors or form.form_errors)
    return render_template(template, form=form, **context), 422 if refused else 200


# --- Counts and discrepancies ---------------------------------------------------------------------


def _counted_values(in_safe) -> tuple[dict[int, float | None], dict[int, str]]:
    values, errors = {}, {}
    for row, _ in in_safe:
        raw = (request.form.get(f"counted_{row.id}") or "").strip().replace(",", ".")
        try:
            values[row.id] = float(raw) if raw else None
        except ValueError:
            values[row.id] = None
            errors[row.id] = f"{row.label}: enter the volume in mL, like 9.30."
    return values, errors


@bp.route("/count", methods=["GET", "POST"])
@clinician_required
def count():
    in_safe = services.vials_in_safe()
    form = CountForm()
    typed, errors = {}, {}
    if form.validate_on_submit():
        typed, errors = _counted_values(in_safe)
        if errors:
            form.form_errors.extend(errors.values())
        else:
            try:
                done = services.record_count(
                    _actor(), typed, form.second_counter_username.data,
                    form.second_counter_password.data, form.note.data,
                )
            except RuleError as error:
                _refused(form, error)
            else:
                mismatches = sum(not line.matches for line in done.lines)
                if mismatches:
                    flash(f"Count recorded: {mismatches} vial(s) do not match; a discrepancy "
                          "is open for each.", "error")
                    return redirect(url_for("ledger.discrepancies"))
                flash(f"Count recorded: all {len(done.lines)} vial(s) match.", "success")
                return redirect(url_for("ledger.stock"))
    return _form_page("ledger/count.html", form, in_safe=in_safe, typed=request.form,
                      errors=errors)


@bp.route("/discrepancies")
@any_staff
def discrepancies():
    rows = db.session.scalars(
        sa.select(LedgerDiscrepancy).order_by(
            LedgerDiscrepancy.resolved_at.is_not(None), LedgerDiscrepancy.opened_at.desc()
        ).limit(200)
    ).all()
    return render_template("ledger/discrepancies.html", rows=rows,
                           can_resolve=current_user.role in (ROLE_PHYSICIAN, ROLE_ADMIN))


@bp.route("/discrepancies/<int:discrepancy_id>/resolve", methods=["GET", "POST"])
@resolver_required
def resolve(discrepancy_id: int):
    row = _get(LedgerDiscrepancy, discrepancy_id)
    form = ReasonForm()
    if form.validate_on_submit():
        try:
            services.resolve_discrepancy(row, _actor(), form.reason.data)
        except RuleError as error:
            _refused(form, error)
        else:
            flash("Discrepancy resolved.", "success")
            return redirect(url_for("ledger.discrepancies"))
    return _form_page("ledger/resolve.html", form, discrepancy=row)


# --- Reports ----------------------------------------------------------------------------------


@bp.route("/reports/stock")
@any_staff
def stock_report():
    day = request.args.get("on", type=_iso_date) or clinic_today()
    lines = reports.stock_on(day)
    if request.args.get("format") == "csv":
        audit.record("ledger.stock_exported", details={"on": day})
        return _attachment(reports.stock_csv(lines), f"stock-{day.isoformat()}.csv")
    return render_template("ledger/stock_report.html", day=day, lines=lines,
                           total=sum(line.balance_mcg for line in lines))


@bp.route("/reports/period")
@any_staff
def period_report():
    form = PeriodForm(request.args)
    start, end = default_period(clinic_today())
    if form.validate():
        start, end = form.start.data or start, form.end.data or end
    if end < start:
        form.end.errors = ["The end of the period cannot be before its start."]
        start, end = end, start
    entries, corrected = reports.period_entries(start, end)
    if request.args.get("format") == "csv":
        audit.record("ledger.period_exported", details={"from": start, "to": end})
        return _attachment(reports.period_csv(entries, corrected),
                           f"ledger-{start.isoformat()}-{end.isoformat()}.csv")
    audit.record("ledger.period_viewed", details={"from": start, "to": end})
    totals = {kind: reports.counting_total(entries, corrected, kind)
              for kind in ("receipt", "draw", "give", "waste", "vial_waste")}
    return render_template("ledger/period_report.html", form=form, start=start, end=end,
                           entries=entries, corrected=corrected, totals=totals)


def _iso_date(value: str) -> date:
    """`?on=`: a date out of inputs' bounds is ignored like garbage (today's stock instead)."""
    day = date.fromisoformat(value)
    if date_problem("On", day):
        raise ValueError(value)
    return day


# --- The session: draw, give, waste, explain ---------------------------------------------------


def _session_back(infusion: InfusionSession):
    return redirect(url_for("ledger.session", infusion_id=infusion.id))


@bp.route("/sessions/<int:infusion_id>")
@clinician_required
def session(infusion_id: int):
    infusion = get_infusion_or_404(infusion_id)
    audit.record("ledger.session_viewed", entity=infusion, patient_id=infusion.patient_id)
    return render_template("ledger/session.html", infusion=infusion)


def _session_post(infusion_id: int, form, act, message: str, which: str):
    infusion = get_infusion_or_404(infusion_id)
    guards.ensure_editable(infusion)  # a signed session: 409 whatever was posted
    if form.validate_on_submit():
        try:
            act(infusion, form)
        except RuleError as error:
            _refused(form, error)
        else:
            flash(message, "success")
            return _session_back(infusion)
    return render_template("ledger/session.html", infusion=infusion,
                           posted={which: form}), 422


@bp.route("/sessions/<int:infusion_id>/draw", methods=["POST"])
@clinician_required
def draw(infusion_id: int):
    form = DrawForm()
    form.vial_id.choices = [SelectChoice(v.id, v.label) for v, _ in services.vials_in_safe()]

    def act(infusion, form):
        services.draw(infusion, _get(LedgerVial, form.vial_id.data), _actor(),
                      form.amount_mg.data, form.diluted_volume_ml.data)

    return _session_post(infusion_id, form, act, "Draw recorded.", "draw")


@bp.route("/sessions/<int:infusion_id>/give", methods=["POST"])
@clinician_required
def give(infusion_id: int):
    infusion = get_infusion_or_404(infusion_id)
    guards.ensure_editable(infusion)
    try:
        entry = services.record_given(infusion, _actor())
    except RuleError as error:
        flash(str(error), "error")
        return render_template("ledger/session.html", infusion=infusion), 422
    flash(f"Given recorded from the pump: {services.mg_text(entry.amount_mcg)}.", "success")
    return _session_back(infusion)


@bp.route("/sessions/<int:infusion_id>/waste", methods=["POST"])
@clinician_required
def waste(infusion_id: int):
    def act(infusion, form):
        services.waste_remainder(infusion, _actor(), form.amount_mg.data,
                                 form.witness_username.data, form.witness_password.data,
                                 form.note.data)

    return _session_post(infusion_id, WasteForm(), act, "Waste recorded, witnessed.", "waste")


@bp.route("/sessions/<int:infusion_id>/explain", methods=["POST"])
@physician_required
def explain(infusion_id: int):
    def act(infusion, form):
        services.explain_session(infusion, _actor(), form.reason.data)

    return _session_post(infusion_id, ReasonForm(), act,
                         "Reason recorded; the session may be signed.", "explain")


# --- The dose panel on the session page --------------------------------------------------------


class PanelEntry(NamedTuple):
    """One of the session's entries as the panel lists it, in plain values."""

    id: int
    kind: str
    amount_mcg: int
    corrects_id: int | None
    occurred_at: datetime
    diluted_volume_ml: float | None
    vial_id: int
    recorded_by: str  # display name
    witness: str | None  # display name

    @property
    def kind_label(self) -> str:
        return LEDGER_KINDS.get(self.kind, self.kind)

    @property
    def vial_label(self) -> str:
        return vial_label(self.vial_id)


@dataclass
class LedgerPanel:
    totals: services.SessionTotals
    pump_given: Markup  # what the pump's events and rates say it gave: "12.5 mg" (live.py)
    entries: list[PanelEntry]
    problem: str | None
    draw_form: DrawForm | None
    waste_form: WasteForm | None
    can_give: bool
    explain_form: ReasonForm | None


_RECORDER, _WITNESS = aliased(Staff), aliased(Staff)
# Built once. Every entry of the session with who recorded and witnessed it, as plain values:
# the panel lists them and works out the session's totals from them (services.totals_of), one
# query where the entries as ORM rows with their vial and staff and the totals took two, a
# fortieth of a session page's first view (bench/RESULTS.md, Stop 35).
_SESSION_ENTRIES = (
    sa.select(
        LedgerEntry.id,
        LedgerEntry.kind,
        LedgerEntry.amount_mcg,
        LedgerEntry.corrects_id,
        LedgerEntry.occurred_at,
        LedgerEntry.diluted_volume_ml,
        LedgerEntry.vial_id,
        _RECORDER.full_name,
        _RECORDER.credentials,
        _WITNESS.full_name,
        _WITNESS.credentials,
    )
    .join(_RECORDER, _RECORDER.id == LedgerEntry.recorded_by_id)
    .outerjoin(_WITNESS, _WITNESS.id == LedgerEntry.witness_id)
    .where(LedgerEntry.infusion_id == sa.bindparam("infusion_id"))
    .order_by(LedgerEntry.occurred_at, LedgerEntry.id)
)


def _session_entries(infusion_id: int) -> list[PanelEntry]:
    return [
        PanelEntry(
            *values,
            recorded_by=display_name(recorder, recorder_credentials),
            witness=display_name(witness, witness_credentials) if witness else None,
        )
        for *values, recorder, recorder_credentials, witness, witness_credentials
        in db.session.execute(_SESSION_ENTRIES, {"infusion_id": infusion_id})
    ]


@bp.app_template_global("ledger_panel")
def ledger_panel(infusion: InfusionSession, posted: dict | None = None) -> LedgerPanel:
    """What templates/ledger/_session_panel.html draws (a few small queries)."""
    posted = posted or {}
    entries = _session_entries(infusion.id)
    totals = services.totals_of(entries)
    clinician = current_user.role in CLINICAL_ROLES
    editable = clinician and not infusion.is_signed
    problem = services.ledger_problem(infusion, totals)
    draw_form = None
    if editable and infusion.status in services.DRAW_STATUSES:
        draw_form = posted.get("draw") or DrawForm(formdata=None)
        draw_form.vial_id.choices = [
            SelectChoice(v.id, f"{v.label} · lot {v.lot} · {services.mg_text(b)} left")
            for v, b in services.vials_in_safe()
        ]
    finished = infusion.status in (*services.FINISHED_STATUSES, "cancelled")
    waste_form = None
    if editable and finished and totals.in_hand > 0 and (
        totals.gives or infusion.status == "cancelled"
    ):
        waste_form = posted.get("waste") or WasteForm(formdata=None)
        if waste_form.amount_mg.data is None:
            waste_form.amount_mg.data = totals.in_hand / 1000
    explain_form = None
    if problem and current_user.role == ROLE_PHYSICIAN and not infusion.is_signed:
        explain_form = posted.get("explain") or ReasonForm(formdata=None)
    return LedgerPanel(
        totals=totals,
        pump_given=LiveParts(SessionClock.of(infusion)).pump_given_mg,
        entries=entries,
        problem=problem,
        draw_form=draw_form,
        waste_form=waste_form,
        can_give=editable and infusion.status in services.FINISHED_STATUSES
        and totals.drawn > 0 and not totals.gives,
        explain_form=explain_form,
    )
