"""Checks every write to a session goes through: the signature lock and optimistic locking."""

from ..errors import RuleError, StaleRecord
from ..models import InfusionSession


def ensure_editable(infusion: InfusionSession) -> None:
    """A signed session is locked (SPEC §3); later facts go in an addendum."""
    if infusion.is_signed:
        raise RuleError(
            "This session was signed and is locked. Add an addendum to record later facts."
        )


def check_version(infusion: InfusionSession, form_version: int | None) -> None:
    """Refuse a save drawn from an older version of the session (no lost updates)."""
    if form_version is not None and int(form_version) != infusion.version:
        who = infusion.updated_by.display_name if infusion.updated_by else "another user"
        raise StaleRecord(who, infusion.updated_at, what="This session")
