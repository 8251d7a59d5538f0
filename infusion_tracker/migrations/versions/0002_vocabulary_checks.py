"""Vocabulary CHECK constraints

The database itself refuses a status, phase, severity, rhythm, AVPU level, event kind,
adverse-event type, instrument, indication, sex or pregnancy status that is not in
infusion_tracker/vocab.py, and a MOAA/S, pain, Aldrete total or score outside its scale.

Revision ID: 0002_vocabulary_checks
Revises: 0001
Create Date: 2026-12-01 09:00:00

SQLite cannot add a constraint to a table, so batch mode rebuilds each table (copy, drop,
rename); migrations/env.py turns foreign keys off around that, and this migration runs
PRAGMA foreign_key_check before it ends. audit_event is not rebuilt, so its append-only
triggers stay as they are. PostgreSQL gets plain ALTER TABLE ... ADD CONSTRAINT.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0002_vocabulary_checks"
down_revision = "0001"
branch_labels = None
depends_on = None

# Written out, not built from vocab.py, so this migration keeps meaning what it meant when
# written; a later change to a vocabulary needs its own migration. Names follow the naming
# convention: ck_<table>_<name>. tests/test_migrations.py checks they equal the models'.
CHECKS = {
    'patient': {
        'indication': (
            "indication IN ('depression','trd','depression_si','ptsd','ocd',"
            "'fibromyalgia','crps','sfn','other')"
        ),
        'sex': "sex IN ('female','male','other','unknown')",
    },
    'protocol': {
        'indication': (
            "indication IN ('depression','trd','depression_si','ptsd','ocd',"
            "'fibromyalgia','crps','sfn','other')"
        ),
    },
    'infusion_session': {
        'aldrete_total': 'aldrete_total BETWEEN 0 AND 10',
        'indication': (
            "indication IN ('depression','trd','depression_si','ptsd','ocd',"
            "'fibromyalgia','crps','sfn','other')"
        ),
        'pregnancy_status': (
            "pregnancy_status IN ('','negative','not_pregnant_reported',"
            "'not_applicable','positive')"
        ),
        'status': (
            "status IN ('planned','checked_in','infusing','paused','recovery',"
            "'stopped_early','discharged','cancelled')"
        ),
    },
    'assessment': {
        'instrument': "instrument IN ('phq9','gad7','madrs','pain_nrs','cadss','cssrs')",
        'score': (
            "(instrument = 'phq9' AND score BETWEEN 0 AND 27) OR "
            "(instrument = 'gad7' AND score BETWEEN 0 AND 21) OR "
            "(instrument = 'madrs' AND score BETWEEN 0 AND 60) OR "
            "(instrument = 'pain_nrs' AND score BETWEEN 0 AND 10) OR "
            "(instrument = 'cadss' AND score BETWEEN 0 AND 92) OR "
            "(instrument = 'cssrs' AND score BETWEEN 0 AND 3)"
        ),
    },
    'infusion_event': {
        'kind': "kind IN ('start','pause','resume','rate_change','stop')",
    },
    'reading': {
        'avpu': "avpu IN ('','A','V','P','U')",
        'critical_action': "critical_action IN ('','reviewed','adverse_event')",
        'moaas': 'moaas BETWEEN 0 AND 5',
        'pain': 'pain BETWEEN 0 AND 10',
        'phase': "phase IN ('baseline','infusion','recovery','discharge')",
        'rhythm': (
            "rhythm IN ('','nsr','sinus_tach','sinus_brady','sinus_arrhythmia',"
            "'af','flutter','svt','pacs','pvcs','junctional','paced','vt',"
            "'artifact','other')"
        ),
        'severity': "severity IN ('normal','abnormal','critical')",
    },
    'adverse_event': {
        'event_type': (
            "event_type IN ('hypertension','tachycardia','bradycardia',"
            "'hypotension','arrhythmia','desaturation','respiratory_depression',"
            "'excessive_sedation','emergence_reaction','anxiety','agitation',"
            "'nausea','vomiting','dizziness','headache','allergic_reaction',"
            "'iv_infiltration','fall','suicidal_ideation','other')"
        ),
        'infusion_action': "infusion_action IN ('none','slowed','paused','stopped')",
        'severity': "severity IN ('mild','moderate','severe')",
    },
}


class VocabularyViolation(RuntimeError):
    """Existing rows hold values the new constraints refuse: fix them, then upgrade again."""


def _violations(bind) -> list[str]:
    problems = []
    for table, checks in CHECKS.items():
        for name, condition in checks.items():
            # NOT (NULL) is not true, so NULLs pass here exactly as they pass a CHECK.
            rows = bind.execute(
                sa.text(f"SELECT id FROM {table} WHERE NOT ({condition}) ORDER BY id")
            ).scalars().all()
            if rows:
                ids = ", ".join(str(row) for row in rows[:10]) + (" …" if len(rows) > 10 else "")
                problems.append(
                    f"{table}.{name}: {len(rows)} row(s) outside ({condition}); ids {ids}"
                )
    return problems


def upgrade():
    bind = op.get_bind()
    # Refuse before changing anything: nothing clinical is deleted or rewritten to fit.
    problems = _violations(bind)
    if problems:
        raise VocabularyViolation(
            "Cannot add the vocabulary constraints; these rows hold values outside the "
            "vocabularies and must be corrected by hand first:\n" + "\n".join(problems)
        )
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for name, condition in checks.items():
                batch.create_check_constraint(op.f(f"ck_{table}_{name}"), condition)
    _assert_foreign_keys_intact(bind)


def downgrade():
    bind = op.get_bind()
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for name in checks:
                batch.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
    _assert_foreign_keys_intact(bind)


def _assert_foreign_keys_intact(bind):
    """The rebuilds ran with foreign keys off (env.py): prove no reference was broken."""
    if bind.dialect.name != "sqlite":
        return
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"Foreign keys broken by the table rebuild: {broken[:10]}")
