"""/quality/: the report for a chosen period (physicians and admins), and a CSV of each table."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request

from .. import audit
from ..ledger.forms import PeriodForm, default_period
from ..ledger.reports import to_csv
from ..models import ROLE_ADMIN, ROLE_PHYSICIAN
from ..permissions import role_required
from ..timeutil import clinic_today
from . import charts, services

bp = Blueprint("quality", __name__, url_prefix="/quality")
quality_roles = role_required(ROLE_PHYSICIAN, ROLE_ADMIN)


def _period(form: PeriodForm) -> services.Period:
    start, end = default_period(clinic_today())
    start = start.replace(month=1) if start.month > 1 else start  # the year so far by default
    if form.validate():
        start, end = form.start.data or start, form.end.data or end
    if end < start:
        form.end.errors = ["The end of the period cannot be before its start."]
        start, end = end, start
    return services.Period(start, end)


def _thin(row) -> str:
    return "fewer than 5 patients" if row.few else ""


TABLES = {
    "summary": (
        ["Protocol", "Sessions", "Patients", "Completed", "Stopped early", "Note"],
        lambda r: [[x.protocol, x.sessions, x.patients, x.completed, x.stopped_early, _thin(x)]
                   for x in r.summary],
    ),
    "adverse-events": (
        ["Protocol", "Adverse event", "Severity", "Events", "Per 100 infusions",
         "Median dose at onset (mg/kg)", "Patients", "Note"],
        lambda r: [[x.protocol, x.type_label, x.severity_label, x.events, x.per_100,
                    x.median_mg_per_kg, x.patients, _thin(x)] for x in r.adverse_events],
    ),
    "critical-readings": (
        ["Protocol", "Vital sign", "Sessions with a critical reading", "Sessions", "Share (%)",
         "Patients", "Note"],
        lambda r: [[x.protocol, x.label, x.sessions_with, x.sessions, x.share, x.patients,
                    _thin(x)] for x in r.critical_readings],
    ),
    "peak-rise": (
        ["Protocol", "Infusion number", "Sessions", "Patients", "Median SBP rise (mmHg)",
         "Lower quartile", "Upper quartile", "Highest", "Note"],
        lambda r: [[x.protocol, x.infusion_number, x.sessions, x.patients, x.median, x.q1,
                    x.q3, x.highest, _thin(x)] for x in r.peak_rise],
    ),
    "reading-gaps": (
        ["Protocol", "Intervals", "Mean minutes between readings", "Overdue", "Overdue (%)",
         "Patients", "Note"],
        lambda r: [[x.protocol, x.gaps, x.mean_minutes, x.overdue, x.overdue_share, x.patients,
                    _thin(x)] for x in r.reading_gaps],
    ),
    "outcomes": (
        ["Protocol", "Instrument", "When", "Patients", "Responders", "Response (%)", "Remitted",
         "Remission (%)", "Note"],
        lambda r: [[x.protocol, x.label, x.when, x.patients, x.responders, x.response_rate,
                    x.remitted, x.remission_rate, _thin(x)] for x in r.outcomes],
    ),
}


def _charts(report: services.QualityReport) -> dict:
    clinic = services.CLINIC
    return {
        "adverse-events": charts.bar_chart(
            "Adverse events per 100 infusions, all protocols",
            [(f"{x.type_label} ({x.severity_label.lower()})", x.per_100, x.few)
             for x in report.adverse_events if x.protocol == clinic],
            unit="per 100",
        ),
        "critical-readings": charts.bar_chart(
            "Share of sessions with a critical reading, by vital sign, all protocols",
            [(x.label, x.share, x.few) for x in report.critical_readings
             if x.protocol == clinic],
            unit="%", maximum=100,
        ),
        "peak-rise": charts.bar_chart(
            "Median peak systolic BP rise by infusion number, all protocols",
            [(f"Infusion {x.infusion_number}", x.median, x.few) for x in report.peak_rise
             if x.protocol == clinic],
            unit="mmHg",
        ),
        "reading-gaps": charts.bar_chart(
            "Share of readings later than the protocol's interval",
            [(x.protocol, x.overdue_share, x.few) for x in report.reading_gaps],
            unit="%", maximum=100,
        ),
        "outcomes": charts.bar_chart(
            "Response rate by instrument, all protocols",
            [(f"{x.label}, {x.when}", x.response_rate, x.few) for x in report.outcomes
             if x.patients and x.protocol == clinic],
            unit="%", maximum=100,
        ),
    }


@bp.route("/")
@quality_roles
def report():
    form = PeriodForm(request.args)
    period = _period(form)
    result = services.quality_report(period)
    audit.record("quality.viewed", details={"from": period.start, "to": period.end})
    return render_template("quality/report.html", form=form, report=result,
                           charts=_charts(result), few_limit=services.FEW_PATIENTS)


@bp.route("/<table>.csv")
@quality_roles
def table_csv(table: str):
    if table not in TABLES:
        abort(404)
    form = PeriodForm(request.args)
    period = _period(form)
    header, rows = TABLES[table]
    body = to_csv(header, rows(services.quality_report(period)))
    audit.record("quality.exported", details={"table": table, "from": period.start,
                                              "to": period.end})
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition":
            f'attachment; filename="quality-{table}-{period.start}-{period.end}.csv"'})
