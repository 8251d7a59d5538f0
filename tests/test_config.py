"""Settings: checked at start-up, read from the environment, and the reverse-proxy hops."""

import pytest
import sqlalchemy as sa

from infusion_tracker import create_app
from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent
from tests.conftest import base_config


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [("CLINIC_TIMEZONE", "Mars/Olympus", "CLINIC_TIMEZONE"), ("UNITS", "imperial", "UNITS")],
)
def test_bad_settings_stop_the_start(tmp_path, setting, value, message):
    with pytest.raises(ValueError, match=message):
        create_app({**base_config(f"sqlite:///{tmp_path / 'x.db'}"), setting: value})


def test_plain_environment_variables_are_read(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINIC_TIMEZONE", "America/Chicago")
    monkeypatch.setenv("UNITS", "us")
    app = create_app({"SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["CLINIC_TIMEZONE"] == "America/Chicago"
    assert app.config["UNITS"] == "us"


@pytest.mark.parametrize("app_config", [{"TRUSTED_PROXIES": 1}])
def test_behind_a_proxy_the_audit_keeps_the_client_address(client, make_staff):
    make_staff("np")  # with no account at all, /login sends everyone to /setup
    client.post(
        "/login",
        data={"username": "nobody", "password": "wrong password here"},
        headers={"X-Forwarded-For": "203.0.113.7"},
    )
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "auth.login_failed"))
    assert event.remote_addr == "203.0.113.7"


def test_without_a_proxy_forwarded_headers_are_ignored(client, make_staff):
    make_staff("np")
    client.post(
        "/login",
        data={"username": "nobody", "password": "wrong password here"},
        headers={"X-Forwarded-For": "203.0.113.7"},
    )
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "auth.login_failed"))
    assert event.remote_addr == "127.0.0.1"
