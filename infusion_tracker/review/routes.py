"""The review queue (/review/), signing and addenda (POST under the session's address), and the
printable session record (/infusions/<id>/print). Paths are written in full because the
session-level ones live under /infusions/ (SPEC §7), not under /review."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    session,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup

from .. import audit, unit_of_work
from ..errors import refusals_on
from ..infusions.page import render_session_page
from ..infusions.queries import get_infusion_or_404
from ..inputs import page_number
from ..memo import drawn, per_view
from ..models import (
    Addendum,
    InfusionSession,
)
from ..permissions import clinician_required, physician_required
from ..throttle import limit_password_attempts
from ..timeutil import utcnow
from . import record, services
from .forms import AddendumForm, SignForm

bp = Blueprint("review", __name__)


def session_page(infusion_id: int, anchor: str | None = "signature") -> str:
    return url_for("infusions.detail", infusion_id=infusion_id, _anchor=anchor)


@bp.route("/review/")
@physician_required
def queue():
    page = page_number()
    queue_page = services.review_queue(page, current_app.config["PER_PAGE"])
    audit.record("review_queue.viewed", details={"page": page})
    return render_template("review/queue.html", queue=queue_page, table=queue_table(queue_page))


def queue_table(queue_page: services.QueuePage) -> Markup:
    """A page of the queue, kept drawn under the rows it shows, as read, and the clinic's
    zone (its times): the queue shown again unchanged is not drawn again."""
    rows = tuple(queue_page.rows)

    def draw() -> str:
        return render_template(
            "review/_queue_table.html", rows=queue_page.entries, reasons=services.REASONS
        )

    return drawn("review_queues", (rows, current_app.config["CLINIC_TIMEZONE"]), draw)


def _hidden_errors_to_summary(form: SignForm) -> None:
    # The error summary lists visible fields only; a bad hidden version must still be said.
    form.form_errors.extend(form.version.errors)


def reauth_needed_now() -> bool:
    """Whether signing now asks for the password again (this browser's last sign-in or
    password entry is older than REAUTH_MINUTES)."""
    return services.reauth_needed(float(session.get("auth_at", 0)))


@bp.route("/infusions/<int:infusion_id>/sign", methods=["POST"])
@physician_required
@limit_password_attempts
def sign(infusion_id: int):
    infusion = get_infusion_or_404(infusion_id)
    actor = current_user._get_current_object()
    # State first: a locked or unfinished session is refused (409) whatever was posted.
    services.check_can_sign(infusion, actor)
    form = SignForm()
    if form.validate_on_submit():
        try:
            services.sign_infusion(
                infusion,
                actor,
                form.attestation.data,
                form.version.data,
                password=form.password.data,
                password_required=reauth_needed_now(),
                opened_at=form.opened_at_utc(),
            )
        except services.ReauthFailed as error:
            unit_of_work.keep()  # the failure counts towards the lockout
            form.password.errors = [str(error)]
        else:
            if form.password.data:
                session["auth_at"] = time.time()
            flash("Session signed. It is now locked; later facts go in an addendum.", "success")
            return redirect(session_page(infusion.id))
    _hidden_errors_to_summary(form)
    return render_session_page(infusion_id, 422, refused_sign_form=form)


@bp.route("/infusions/<int:infusion_id>/addenda", methods=["POST"])
@physician_required
def add_addendum(infusion_id: int):
    infusion = get_infusion_or_404(infusion_id)
    actor = current_user._get_current_object()
    services.check_can_add_addendum(infusion, actor)
    form = AddendumForm()
    if form.validate_on_submit():
        with refusals_on(form):
            services.add_addendum(infusion, actor, form.text.data)
            flash("Addendum added.", "success")
            return redirect(session_page(infusion.id, "addenda"))
    return render_session_page(infusion_id, 422, refused_addendum_form=form)


@bp.route("/infusions/<int:infusion_id>/print")
@clinician_required
def print_record(infusion_id: int):
    infusion = get_infusion_or_404(infusion_id, full=True)
    audit.record("session.printed", entity=infusion, patient_id=infusion.patient_id)
    return render_template("review/print.html", r=record.build(infusion))


# --- The signature panel on the session page --------------------------------------------


@dataclass
class SignaturePanel:
    addenda: list[Addendum]
    sign_form: SignForm | None  # set when this user may sign now
    addendum_form: AddendumForm | None  # set when this user may add an addendum
    reauth_needed: bool


@bp.app_template_global("signature_panel")
def signature_panel(
    infusion: InfusionSession,
    sign_form: SignForm | None = None,
    addendum_form: AddendumForm | None = None,
) -> SignaturePanel:
    """What templates/infusions/_signature.html draws for the signed-in user (no query); a
    refused signature or addendum comes back as typed."""
    physician = current_user.is_authenticated and current_user.is_physician
    if physician and infusion.status == "discharged" and not infusion.is_signed:
        # formdata=None: the session page may be redrawn after another form's POST.
        sign_form = sign_form or SignForm(
            formdata=None,
            attestation=current_app.config["ATTESTATION_TEXT"],
            version=infusion.version,
            opened_at=per_view(lambda: utcnow().isoformat()),
        )
    else:
        sign_form = None
    if physician and infusion.is_signed:
        addendum_form = addendum_form or AddendumForm(formdata=None)
    else:
        addendum_form = None
    return SignaturePanel(
        addenda=infusion.addenda,  # eager-loaded with their authors by the session page
        sign_form=sign_form,
        addendum_form=addendum_form,
        reauth_needed=bool(sign_form) and reauth_needed_now(),
    )
