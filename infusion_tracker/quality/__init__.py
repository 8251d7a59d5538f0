"""The quality report (/quality/): the clinic's safety and results across patients."""
