"""Infusion protocols: physician-owned, versioned (a session keeps the version it ran under)."""
