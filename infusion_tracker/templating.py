"""Jinja filters and globals: clinic time, display units, status words."""

from flask import current_app

from . import clinical, timeutil, units, vocab


def format_mg(mg: float | None) -> str:
    """A dose in mg as every page and export shows it: clinical.round_mg, one decimal."""
    return "—" if mg is None else f"{clinical.round_mg(mg):.1f}"


def register(app) -> None:
    app.jinja_env.filters["clinic_datetime"] = timeutil.format_datetime
    app.jinja_env.filters["clinic_time"] = timeutil.format_time
    app.jinja_env.filters["temperature"] = lambda c: units.format_temperature(
        c, current_app.config["UNITS"]
    )
    app.jinja_env.filters["weight"] = lambda kg: units.format_weight(
        kg, current_app.config["UNITS"]
    )
    app.jinja_env.filters["mg"] = format_mg
    app.jinja_env.globals["units_system"] = lambda: current_app.config["UNITS"]
    app.jinja_env.globals["clinic_name"] = lambda: current_app.config["CLINIC_NAME"]
    app.jinja_env.globals["nav_items"] = nav_items
    # Code -> words and code -> status_tag kind, for templates (e.g. vocab.STATUS_KINDS).
    app.jinja_env.globals["vocab"] = vocab
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True


def nav_items() -> list[tuple[str, str, int | None]]:
    """Role-aware navigation: (endpoint, label, badge count)."""
    import sqlalchemy as sa
    from flask import current_app
    from flask_login import current_user

    from .extensions import db
    from .models import ROLE_ADMIN, ROLE_PHYSICIAN

    if current_user.role == ROLE_ADMIN:
        items = [("admin.staff_list", "Staff"), ("admin.audit_log", "Audit log")]
        items.append(("devices.device_list", "Monitors"))
    else:
        items = [("main.board", "Suite"), ("patients.search", "Patients")]
        if current_user.role == ROLE_PHYSICIAN:
            items.append(("review.queue", "Review"))
        items.append(("protocols.index", "Protocols"))
    items += [("ledger.stock", "Ledger")] + (  # issue 11
        [("quality.report", "Quality")] if current_user.role in (ROLE_ADMIN, ROLE_PHYSICIAN) else []
    )
    result = []
    for endpoint, label in items:
        if endpoint not in current_app.view_functions:
            continue
        badge = None
        if endpoint == "review.queue":
            from .review.services import awaiting_signature  # the queue's own definition

            badge = (
                db.session.scalar(sa.select(sa.func.count()).where(awaiting_signature())) or None
            )
        result.append((endpoint, label, badge))
    return result
