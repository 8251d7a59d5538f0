"""Administration: staff accounts and the audit log (office manager only, SPEC §1, §5)."""

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy.exc import IntegrityError

from ..auth import two_factor
from ..errors import RuleError, form_status, refusals_flashed, refusals_on, show_on_form
from ..extensions import db
from ..form_fields import render_field
from ..inputs import page_number
from ..memo import drawn
from ..permissions import admin_required
from ..timeutil import utcnow
from . import audit_cells, services
from .forms import AuditFilterForm, StaffCreateForm, StaffEditForm

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _actor():
    return current_user._get_current_object()


# --- Staff ---------------------------------------------------------------------------------


@bp.route("/staff/")
@admin_required
def staff_list():
    return render_template("admin/staff_list.html", staff=services.all_staff(), now=utcnow())


@bp.route("/staff/new", methods=["GET", "POST"])
@admin_required
def staff_new():
    form = StaffCreateForm()
    if form.validate_on_submit():
        try:
            staff, temporary = services.add_staff(
                form.username.data,
                form.full_name.data,
                form.credentials.data or "",
                form.role.data,
                _actor(),
                password=form.password.data or None,
            )
        except RuleError as error:
            db.session.rollback()
            show_on_form(form, error)
        except IntegrityError:
            # Someone created the same username between our check and the insert.
            db.session.rollback()
            form.username.errors = [*form.username.errors, "That username is already taken."]
        else:
            if temporary:
                return render_template(
                    "admin/temporary_password.html", staff=staff, password=temporary, created=True
                )
            flash(
                f"Account “{staff.username}” created for {staff.display_name}. They must choose "
                "their own password at first sign-in.",
                "success",
            )
            return redirect(url_for("admin.staff_list"))
    return render_template("admin/staff_form.html", form=form, staff=None), form_status(form)


@bp.route("/staff/<int:staff_id>", methods=["GET", "POST"])
@admin_required
def staff_edit(staff_id: int):
    staff = services.get_staff_or_404(staff_id)
    form = StaffEditForm(obj=staff)
    if form.validate_on_submit():
        with refusals_on(form):
            renamed = services.update_staff(
                staff, form.full_name.data, form.credentials.data or "", _actor()
            )
            role_changed = services.change_role(staff, form.role.data, _actor())
            if renamed or role_changed:
                flash(f"Saved the changes to {staff.display_name}.", "success")
            else:
                flash("Nothing was changed.", "info")
            return redirect(url_for("admin.staff_edit", staff_id=staff.id))
    return render_template(
        "admin/staff_form.html",
        form=form,
        staff=staff,
        is_self=staff.id == current_user.id,
        now=utcnow(),
    ), form_status(form)


def _account_action(staff_id: int, action, done: str):
    """Run one POST-button action on an account; a refusal comes back as a message."""
    staff = services.get_staff_or_404(staff_id)
    with refusals_flashed():
        action(staff, _actor())
        flash(done.format(name=staff.display_name), "success")
    return redirect(url_for("admin.staff_edit", staff_id=staff.id))


@bp.route("/staff/<int:staff_id>/deactivate", methods=["POST"])
@admin_required
def staff_deactivate(staff_id: int):
    return _account_action(
        staff_id, services.deactivate, "{name} is deactivated and has been signed out."
    )


@bp.route("/staff/<int:staff_id>/reactivate", methods=["POST"])
@admin_required
def staff_reactivate(staff_id: int):
    return _account_action(staff_id, services.reactivate, "{name} can sign in again.")


@bp.route("/staff/<int:staff_id>/unlock", methods=["POST"])
@admin_required
def staff_unlock(staff_id: int):
    return _account_action(staff_id, services.unlock, "{name} is unlocked.")


@bp.route("/staff/<int:staff_id>/reset-two-factor", methods=["POST"])
@admin_required
def staff_reset_two_factor(staff_id: int):
    return _account_action(
        staff_id, two_factor.reset, "{name}'s second factor is removed; they enrol again."
    )


@bp.route("/staff/<int:staff_id>/reset-password", methods=["POST"])
@admin_required
def staff_reset_password(staff_id: int):
    staff = services.get_staff_or_404(staff_id)
    with refusals_flashed():
        password = services.reset_password(staff, _actor())
            # Shown in this one response only (never flashed: the session cookie is readable).
        return render_template(
            "admin/temporary_password.html", staff=staff, password=password, created=False
        )
    return redirect(url_for("admin.staff_edit", staff_id=staff.id))


# --- Audit log -----------------------------------------------------------------------------

# The patient box is drawn narrow (an MRN), as the template asked before it was kept.
PATIENT_BOX_SIZE = 12


def _audit_filters(formdata) -> tuple[AuditFilterForm, services.AuditFilters | None]:
    """The filter form from the query string (or the export POST); None while it has errors."""
    form = AuditFilterForm(formdata=formdata)
    form.actor.choices = services.actor_choices()
    if not form.validate():
        return form, None
    filters = services.AuditFilters(
        actor=form.actor.data or "",
        action=form.action.data or "",
        date_from=form.date_from.data,
        date_to=form.date_to.data,
        sort=form.sort.data or "newest",
    )
    if form.patient.data:
        try:
            filters.patient_id = services.patient_id_for_mrn(form.patient.data)
        except RuleError as error:
            show_on_form(form, error)
            return form, None
    return form, filters


def _filter_args(form: AuditFilterForm) -> dict[str, str]:
    """The filters as they were typed, for page links and the export form."""
    return {
        field.name: field._value() if field.type == "DateField" else (field.data or "")
        for field in form
        if (field.data or "") != "" and not (field.name == "sort" and field.data == "newest")
    }


@bp.route("/audit")
@admin_required
def audit_log():
    form, filters = _audit_filters(request.args)
    page = None
    if filters is not None:
        number = page_number()
        page = services.page_of_events(filters, number, current_app.config["PER_PAGE"])
    return render_template(
        "admin/audit_log.html",
        form=form,
        filter_fields=audit_filter_fields(form),
        page=page,
        filter_args=_filter_args(form),
        table=audit_table(page.items) if page is not None else None,
    )


def audit_filter_fields(form: AuditFilterForm) -> Markup:
    """The filter boxes, each kept drawn under what it shows: its value as typed (or as
    chosen), its errors and its choices (the list of actors). Drawing the six was a sixth of
    a page shown again, the two lists most of it (bench/RESULTS.md, Stop 27)."""
    boxes = []
    for field in form:
        select = field.type == "SelectField"
        choices = tuple((choice.value, choice.label) for choice in field.choices) if select else ()
        key = (field.name, field.data if select else field._value(), tuple(field.errors), choices)
        size = PATIENT_BOX_SIZE if field.name == "patient" else None
        boxes.append(
            drawn("audit_filter_boxes", key, lambda f=field, s=size: render_field(f, size=s))
        )
    # Each box on a line of its own, as the template's {{ render_field(…) }} lines wrote them.
    return Markup("\n").join(Markup("    ") + box for box in boxes)


def audit_table(shown: list[services.ShownEntry]) -> Markup:
    """A page of the log, kept drawn under its entries' ids (an entry never changes once
    written: each is chained to the last by its hash), the names and MRNs it shows as they
    are now, and the clinic's zone (its times): the entries themselves are read only to draw
    it."""
    rows = tuple(shown)

    def draw() -> str:
        entries = services.entries_by_id([row.id for row in rows])
        return render_template(
            "admin/_audit_table.html", rows=audit_cells.table_rows(entries, rows)
        )

    return drawn("audit_tables", (rows, current_app.config["CLINIC_TIMEZONE"]), draw)


@bp.route("/audit/export", methods=["POST"])
@admin_required
def audit_export():
    form, filters = _audit_filters(request.form)
    if filters is None:
        return render_template(
            "admin/audit_log.html", form=form, page=None, filter_args=_filter_args(form)
        )
    services.record_export(filters, _actor())
    filename = f"audit-{utcnow():%Y%m%d-%H%M%S}.csv"
    return Response(
        stream_with_context(services.csv_lines(filters)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
