"""Infusion protocols: every clinician reads them; only physicians create or revise them."""

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from ..clinical import DEFAULT_LIMITS, LIMIT_FIELDS, Limits
from ..errors import form_status, refusals_on
from ..models import INDICATIONS
from ..permissions import clinician_required, physician_required
from . import services
from .forms import LIMIT_GROUPS, ProtocolForm

bp = Blueprint("protocols", __name__, url_prefix="/protocols")

# A new protocol starts from the usual schedule and the clinic-wide default thresholds.
NEW_PROTOCOL_DEFAULTS = {
    "drug": "ketamine",
    "concentration_mg_per_ml": 1.0,
    "reading_interval_infusion_min": 5,
    "reading_interval_recovery_min": 15,
    "min_observation_min": 30,
}


def _limit_rows(protocol):
    """[(title, [(label, value, unit)])] of a protocol's thresholds, by group."""
    limits = Limits.from_dict(protocol.limits).to_dict()
    return [
        (
            title,
            [(f.label, limits[f.key], f.unit) for f in LIMIT_FIELDS if f.group == group],
        )
        for group, title, _hint in LIMIT_GROUPS
    ]


@bp.route("/")
@clinician_required
def index():
    return render_template(
        "protocols/index.html", protocols=services.current_protocols(), indications=INDICATIONS
    )


@bp.route("/new", methods=["GET", "POST"])
@physician_required
def new():
    form = ProtocolForm(data=NEW_PROTOCOL_DEFAULTS)
    if not form.is_submitted():
        form.fill_limits(DEFAULT_LIMITS)
    if form.validate_on_submit():
        with refusals_on(form):
            protocol = services.create_protocol(form.values(), current_user._get_current_object())
            flash(f"Protocol “{protocol.name}” created (version 1).", "success")
            return redirect(url_for("protocols.view", protocol_id=protocol.id))
    return render_template("protocols/form.html", form=form, protocol=None), form_status(form)


@bp.route("/<int:protocol_id>")
@clinician_required
def view(protocol_id: int):
    protocol = services.get_protocol_or_404(protocol_id)
    current = services.current_version_of(protocol)
    return render_template(
        "protocols/view.html",
        protocol=protocol,
        current=current,
        limit_rows=_limit_rows(protocol),
        indications=INDICATIONS,
    )


@bp.route("/<int:protocol_id>/history")
@clinician_required
def history(protocol_id: int):
    protocol = services.get_protocol_or_404(protocol_id)
    return render_template(
        "protocols/history.html", protocol=protocol, versions=services.version_history(protocol)
    )


@bp.route("/<int:protocol_id>/compare")
@clinician_required
def compare(protocol_id: int):
    """This version beside the one it replaced, the changed rows marked."""
    newer = services.get_protocol_or_404(protocol_id)
    if newer.previous_version_id is None:
        abort(404)
    older = services.get_protocol_or_404(newer.previous_version_id)
    return render_template(
        "protocols/compare.html",
        older=older,
        newer=newer,
        rows=services.compare_rows(older, newer),
    )


@bp.route("/<int:protocol_id>/edit", methods=["GET", "POST"])
@physician_required
def edit(protocol_id: int):
    protocol = services.get_protocol_or_404(protocol_id)
    form = ProtocolForm(obj=protocol)
    if not form.is_submitted():
        if not protocol.is_current:
            current = services.current_version_of(protocol)
            flash(
                f"Version {protocol.version} is no longer current; you are editing "
                f"version {current.version}.",
                "info",
            )
            return redirect(url_for("protocols.edit", protocol_id=current.id))
        form.fill_limits(Limits.from_dict(protocol.limits).to_dict())
    if form.validate_on_submit():
        with refusals_on(form):
            revision = services.revise_protocol(
                protocol,
                form.values(),
                current_user._get_current_object(),
                reason=form.change_reason.data,
            )
            if revision is None:
                flash(f"Nothing changed; version {protocol.version} stays current.", "info")
                return redirect(url_for("protocols.view", protocol_id=protocol.id))
            flash(
                f"Saved as version {revision.version}. Sessions already planned keep the "
                "version they were planned with.",
                "success",
            )
            return redirect(url_for("protocols.view", protocol_id=revision.id))
    return render_template(
        "protocols/form.html", form=form, protocol=protocol
    ), form_status(form)
