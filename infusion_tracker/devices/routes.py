"""Monitor intake pages: the admin's device pages, `POST /api/hl7` for devices, and the
clinician's accept / dismiss of proposed readings."""

from __future__ import annotations

import json
from contextlib import suppress
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from .. import audit, unit_of_work
from ..errors import RuleError, show_on_form
from ..extensions import csrf, db
from ..infusions.readings import ReadingRefused
from ..permissions import admin_required, clinician_required, public
from ..timeutil import format_time
from ..units import temperature_from_entry, temperature_to_display
from . import services
from .forms import VALUE_FIELDS, AcceptForm, DeviceForm

bp = Blueprint("devices", __name__)

HL7_TYPES = ("application/hl7-v2", "x-application/hl7-v2+er7", "text/plain")
HL7_MIMETYPE = "application/hl7-v2"
OPENAPI = Path(__file__).with_name("openapi.json")


def _actor():
    return current_user._get_current_object()


# --- Devices (admin) ---------------------------------------------------------------------


@bp.route("/admin/devices/")
@admin_required
def device_list():
    return render_template("devices/list.html", devices=services.all_devices())


@bp.route("/admin/devices/new", methods=["GET", "POST"])
@admin_required
def device_new():
    form = DeviceForm()
    status = 200
    if form.validate_on_submit():
        try:
            device, token = services.register_device(
                form.name.data, form.room.data, _actor(), identifier=form.identifier.data or ""
            )
        except RuleError as error:
            db.session.rollback()
            show_on_form(form, error)
        else:
            return render_template("devices/token.html", device=device, token=token)
    if request.method == "POST":
        status = 422
    return render_template("devices/form.html", form=form), status


@bp.route("/admin/devices/<int:device_id>")
@admin_required
def device_detail(device_id: int):
    device = services.get_device_or_404(device_id)
    return render_template(
        "devices/detail.html", device=device, messages=services.recent_messages(device)
    )


@bp.route("/admin/devices/<int:device_id>/revoke", methods=["POST"])
@admin_required
def device_revoke(device_id: int):
    device = services.get_device_or_404(device_id)
    services.revoke_device(device, _actor())  # RuleError: the error handler answers 409
    flash(f"“{device.name}” revoked: its token and identifier no longer work.", "success")
    return redirect(url_for("devices.device_detail", device_id=device.id))


# --- The intake ----------------------------------------------------------------------------


def _hl7_response(answer: services.Answer, headers: dict | None = None) -> Response:
    return Response(
        answer.ack,
        status=answer.http_status,
        mimetype=HL7_MIMETYPE,
        headers=headers or {},
    )


@bp.route("/api/hl7", methods=["POST"])
@csrf.exempt  # devices authenticate with a bearer token, not a browser session
@public  # no login: the token check below is mandatory instead
def api_hl7():
    """One HL7 v2 ORU^R01 in, its ACK out (see openapi.json)."""
    limit = services.setting("HL7_MAX_BYTES")
    body = request.stream.read(limit + 1)
    raw = body.decode("utf-8", errors="replace")
    auth = request.authorization
    token = auth.token if auth is not None and auth.type == "bearer" else None
    device = services.device_for_token(token or "")
    if device is None:
        answer = services.refusal(raw[:limit], "AR", "A valid device token is required.", 401)
        return _hl7_response(answer, {"WWW-Authenticate": 'Bearer realm="hl7"'})
    if request.mimetype not in HL7_TYPES:
        reason = f"Send the message as {HL7_MIMETYPE} (or text/plain)."
        return _hl7_response(services.refusal(raw[:limit], "AR", reason, 415))
    if len(body) > limit:
        reason = f"The message is larger than {limit} bytes."
        return _hl7_response(services.refusal(raw[:limit], "AR", reason, 413))
    answer = services.receive(device, raw, "http")
    unit_of_work.keep()  # a refused message is kept for audit too
    return _hl7_response(answer)


@bp.route("/api/hl7/openapi.json")
@public  # describes the interface only; no data
def api_hl7_openapi():
    document = json.loads(OPENAPI.read_text())
    document["servers"] = [{"url": request.host_url.rstrip("/")}]
    return document


# --- Proposed readings (clinicians) --------------------------------------------------------


def _session_url(infusion_id: int) -> str:
    return url_for("infusions.detail", infusion_id=infusion_id) + "#proposed-readings"


def _edits(form: AcceptForm) -> dict:
    """The accept page's values as the reading service takes them (temperature in °C)."""
    edits = {name: (form[name].data or "").strip() for name in VALUE_FIELDS}
    # Blank stays blank; anything not a number is refused by the service, naming the field.
    with suppress(ValueError):
        edits["temperature_c"] = temperature_from_entry(
            float(edits["temperature_c"]), current_app.config["UNITS"]
        )
    edits["phase"] = form.phase.data
    edits["note"] = form.note.data or ""
    return edits


def _fill(form: AcceptForm, proposed) -> None:
    for name in VALUE_FIELDS:
        value = getattr(proposed, name)
        if name == "temperature_c":
            value = temperature_to_display(value, current_app.config["UNITS"])
        form[name].data = "" if value is None else f"{value:g}"
    form.phase.data = proposed.phase


@bp.route("/proposed-readings/<int:proposed_id>/accept", methods=["GET", "POST"])
@clinician_required
def accept_proposed(proposed_id: int):
    proposed = services.get_proposed_or_404(proposed_id)
    form = AcceptForm()
    edited = request.method == "POST" and request.form.get("edited") == "1"
    if request.method == "POST" and (not edited or form.validate()):
        try:
            reading = services.accept(proposed, _actor(), _edits(form) if edited else None)
        except ReadingRefused as refused:
            db.session.rollback()
            if not edited:
                _fill(form, proposed)
            for name, message in refused.problems.items():
                if name in form._fields:
                    form[name].errors = [*form[name].errors, message]
                else:
                    form.form_errors.append(message)
        else:
            message = (
                f"Reading at {format_time(reading.taken_at)} from {proposed.device.name} charted."
            )
            if reading.severity == "critical":
                message += " It is critical: record what was done about it on the chart."
            flash(message, "error" if reading.severity == "critical" else "success")
            return redirect(_session_url(proposed.infusion_id))
    elif request.method == "GET":
        audit.record("proposed_reading.viewed", entity=proposed,
                     patient_id=proposed.infusion.patient_id)
        _fill(form, proposed)
    status = 422 if request.method == "POST" else 200
    return render_template("devices/accept.html", proposed=proposed, form=form), status


@bp.route("/proposed-readings/<int:proposed_id>/dismiss", methods=["POST"])
@clinician_required
def dismiss_proposed(proposed_id: int):
    proposed = services.get_proposed_or_404(proposed_id)
    services.dismiss(proposed, _actor(), request.form.get("reason", ""))
    flash(
        f"Monitor values at {format_time(proposed.observed_at)} dismissed; "
        "they stay on record, not in the chart.",
        "success",
    )
    return redirect(_session_url(proposed.infusion_id))
