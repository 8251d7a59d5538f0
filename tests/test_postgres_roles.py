"""PostgreSQL set up as the README says (issue 9, defect 2): a migration role owns the
tables, the app signs in with its own role, which may append to the audit trail but not
change, delete or truncate it, nor disable its trigger. Uses a database and two roles of its
own, dropped afterwards."""

import os
import secrets

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from infusion_tracker import audit, create_app
from infusion_tracker.auth.services import create_staff
from infusion_tracker.extensions import db
from tests.conftest import PASSWORD, base_config, postgres_reachable

pytestmark = pytest.mark.postgres

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def roles_database():
    url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL
    reason = postgres_reachable(url)
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL not reachable: {reason}")
        pytest.skip(f"PostgreSQL not reachable: {reason}")
    tag = secrets.token_hex(4)
    owner, app_role, name = f"it_owner_{tag}", f"it_app_{tag}", f"it_roles_{tag}"
    # The maintenance database: CREATE/DROP DATABASE touch no suite's own database.
    maintenance = sa.make_url(url).set(database="postgres")
    admin = sa.create_engine(maintenance, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {owner} LOGIN")
        conn.exec_driver_sql(f"CREATE ROLE {app_role} LOGIN")
        conn.exec_driver_sql(f"CREATE DATABASE {name} OWNER {owner}")
    base = sa.make_url(url).set(database=name)
    try:
        yield {
            "owner": base.set(username=owner).render_as_string(hide_password=False),
            "app": base.set(username=app_role).render_as_string(hide_password=False),
            "app_role": app_role,
        }
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {app_role}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {owner}")
        admin.dispose()


def test_the_app_role_appends_to_the_audit_trail_but_cannot_touch_it(roles_database):
    owner_app = create_app(base_config(roles_database["owner"]))
    with owner_app.app_context():
        upgrade()
        result = owner_app.test_cli_runner().invoke(
            args=["grant-app-role", roles_database["app_role"]]
        )
        assert result.exit_code == 0, result.output
        db.engine.dispose()

    app = create_app(base_config(roles_database["app"]))
    with app.app_context():
        create_staff("nia", "Nia Nurse", "np", PASSWORD)  # writes staff and its audit row
        db.session.commit()
        assert audit.verify_chain().ok
        for statement in (
            "UPDATE audit_event SET action = 'x'",
            "DELETE FROM audit_event",
            "TRUNCATE audit_event",
            "ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change",
            "DROP TRIGGER audit_event_no_change ON audit_event",
        ):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied|must be owner"):
                db.session.execute(sa.text(statement))
            db.session.rollback()
        assert audit.verify_chain().rows == 1
        db.session.remove()
        db.engine.dispose()
