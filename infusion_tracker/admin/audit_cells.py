"""The audit log's rows, one per entry, as templates/admin/_audit_table.html drew them.

Python rather than the template: an audit log page's first view draws 50 of them, 0.85 ms
of a 5 ms page in Jinja (a dozen attribute lookups, escapes and calls a row), 0.50 here
(bench/RESULTS.md, Stop 27). The same HTML byte for byte, whitespace included. Every text
goes through escape() (hence the S704 exemption); ids are written as digits.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from ..timeutil import format_datetime
from . import services

# A row's and a cell's indentation, as the template wrote them.
ROW = "    "
CELL = "      "
WHEN = "%d %b %Y %H:%M:%S"


def _who(entry, shown: services.ShownEntry) -> str:
    if shown.actor:
        return f'{escape(shown.actor)} <span class="muted">({escape(entry.actor_name)})</span>'
    return escape(entry.actor_name)


def _record(entry, shown: services.ShownEntry) -> str:
    if not entry.entity_type:
        return "—"
    number = "" if entry.entity_id is None else f" #{entry.entity_id}"
    name = f'<br><span class="small">{escape(shown.staff_name)}</span>' if shown.staff_name else ""
    return f"{escape(services.field_label(entry.entity_type))}{number}{name}"


def _details(entry) -> str:
    lines = services.detail_lines(entry.details, clinical=entry.patient_id is not None)
    if not lines:
        return "—"
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<ul class="audit-details">{items}</ul>'


def entry_row(entry, shown: services.ShownEntry) -> str:
    """`entry`: a row of services.entries_by_id; `shown`: what of it may change since."""
    patient = "—" if entry.patient_id is None else escape(shown.mrn or f"#{entry.patient_id}")
    cells = (
        f'<td class="nowrap">{escape(format_datetime(entry.occurred_at, WHEN))}</td>',
        f"<td>{_who(entry, shown)}</td>",
        f"<td>{escape(services.action_label(entry.action))}<br>"
        f'<span class="muted small"><code>{escape(entry.action)}</code></span></td>',
        f"<td>{_record(entry, shown)}</td>",
        f"<td>{patient}</td>",
        f"<td>{_details(entry)}</td>",
        f'<td>{escape(entry.remote_addr or "—")}</td>',
    )
    return "\n".join([f"{ROW}<tr>", *(CELL + cell for cell in cells), f"{ROW}</tr>"])


def table_rows(entries, shown: tuple[services.ShownEntry, ...]) -> Markup:
    """The table's body rows (a plain string join: Markup + str would escape the str)."""
    rows = (entry_row(e, s) for e, s in zip(entries, shown, strict=True))
    return Markup("\n".join(rows))  # noqa: S704
