"""The controlled-substance ledger (/ledger/): vials, draws, gives, witnessed wastes, counts."""

from . import append_only  # noqa: F401  (the database refuses edits to entries and vials)
