"""Patients: registration, search, the patient page with its history, outcome scores."""
