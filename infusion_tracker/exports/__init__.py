"""Exports of a patient's record: readings as CSV, the record as a FHIR R4 Bundle."""
