"""Role checks on the server. Login itself is enforced for every endpoint in security.py."""

from functools import wraps

from flask import abort
from flask_login import current_user

from .models import CLINICAL_ROLES, ROLE_ADMIN, ROLE_PHYSICIAN

PUBLIC_ATTR = "_public_endpoint"
PASSIVE_ATTR = "_passive_endpoint"


def public(view):
    """Mark a view reachable without login (login, setup, healthz)."""
    setattr(view, PUBLIC_ATTR, True)
    return view


def passive(view):
    """Mark a view a page calls by itself (the live board's poll): not activity, so an open
    page does not hold off the idle sign-out."""
    setattr(view, PASSIVE_ATTR, True)
    return view


def role_required(*roles: str):
    """Refuse (403) anyone whose role is not listed. Place below @bp.route."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated or current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


admin_required = role_required(ROLE_ADMIN)
clinician_required = role_required(*CLINICAL_ROLES)
physician_required = role_required(ROLE_PHYSICIAN)
