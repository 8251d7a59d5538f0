"""A page view's record of who looked commits without waiting for the disk; every other write
(a charted reading, an export's row, a refusal's row) waits for it. Read off the connection as
each audit row goes in: SQLite's `synchronous` (1 NORMAL, 2 FULL), PostgreSQL's
`synchronous_commit`."""

import pytest
import sqlalchemy as sa

from infusion_tracker.extensions import db
from tests.test_bedside import form_post, get

LAZY = {"sqlite": 1, "postgresql": "off"}
WAITS = {"sqlite": 2, "postgresql": "on"}


@pytest.fixture
def commits(app):
    """[(audit action, the connection's setting when its row was inserted)], in order."""
    seen = []
    with app.app_context():
        engine = db.engine
    ask = "PRAGMA synchronous" if engine.dialect.name == "sqlite" else "SHOW synchronous_commit"

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO audit_event"):
            setting = cursor.connection.execute(ask).fetchone()[0]
            seen.append((context.compiled_parameters[0]["action"], setting))

    sa.event.listen(engine, "before_cursor_execute", before)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", before)


def test_a_look_commits_lazily_and_every_write_waits(app, client, infusing, commits):
    html = get(client, infusing)
    assert form_post(client, infusing, html, systolic=120).status_code == 302
    get(client, infusing)
    csv = client.get(f"/patients/{infusing.patient_id}/readings.csv")
    assert csv.status_code == 200
    assert client.get("/admin/audit").status_code == 403
    get(client, infusing)
    name = db.engine.dialect.name
    lazy, waits = LAZY[name], WAITS[name]
    assert commits == [
        ("session.viewed", lazy),
        ("reading.recorded", waits),  # the next write on the connection waits again
        ("session.viewed", lazy),
        ("export.readings_csv", waits),  # who took data out is on disk before the file
        ("auth.access_denied", waits),
        ("session.viewed", lazy),
    ]
