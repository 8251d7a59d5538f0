"""The migrations build the same schema as the models, on SQLite and on PostgreSQL, and the
first run gets the default protocol and the append-only audit table."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from infusion_tracker import create_app
from infusion_tracker.extensions import db
from tests.conftest import TEST_DATABASE_URL, base_config


@pytest.fixture
def migrated_app(tmp_path):
    url = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'migrated.db'}"
    app = create_app(base_config(url))
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade()
        yield app
        db.session.remove()
        downgrade(revision="base")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        db.engine.dispose()


def test_migrations_match_the_models(migrated_app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True}
        )
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_first_run_has_the_default_protocol(migrated_app):
    from infusion_tracker.models import Protocol
    from infusion_tracker.protocols.services import DEFAULT_PROTOCOL, ensure_default_protocol

    protocol = db.session.scalar(sa.select(Protocol))
    # The migration writes its values out; they must match what the code calls the default.
    assert {key: getattr(protocol, key) for key in DEFAULT_PROTOCOL} == DEFAULT_PROTOCOL
    assert protocol.version == 1 and protocol.is_current
    assert ensure_default_protocol() is protocol


def test_migrated_audit_table_refuses_update_and_delete(migrated_app):
    from infusion_tracker import audit

    audit.record("test.event", details={"n": 1})
    db.session.commit()
    for statement in ("UPDATE audit_event SET action = 'x'", "DELETE FROM audit_event"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            db.session.execute(sa.text(statement))
        db.session.rollback()
    assert audit.verify_chain().ok
