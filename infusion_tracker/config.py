"""Configuration defaults. Order: these, then instance/config.py, then FLASK_* environment
variables (plus DATABASE_URL and SECRET_KEY), then the test_config given to create_app."""

import os
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Defaults:
    CLINIC_NAME = "Infusion Tracker"
    CLINIC_TIMEZONE = "America/New_York"
    UNITS = "metric"  # or "us": °F and lb on screen, metric in the database
    ROOMS = ["Room 1", "Room 2", "Room 3", "Room 4", "Room 5", "Room 6"]

    # PostgreSQL connections are pinged before use after they lie idle (database.ping_if_idle).
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    # SQLite: seconds between a worker's checkpoints of the write-ahead log, from a thread
    # (database.checkpoint_forever); None leaves them to SQLite, inside a commit.
    SQLITE_CHECKPOINT_SECONDS: float | None = 1.0

    # Security (SPEC §8)
    IDLE_TIMEOUT_MINUTES = 15
    IDLE_WARNING_SECONDS = 60  # the on-screen warning before it (at most half the timeout)
    SESSION_MAX_HOURS = 12
    LOCKOUT_THRESHOLD = 5
    LOCKOUT_MINUTES = 15
    PASSWORD_MIN_LENGTH = 12
    PASSWORD_MAX_LENGTH = 128
    PASSWORD_MIN_SCORE = 3  # zxcvbn, 0–4: 3 is "safely unguessable" (about 10^10 guesses)
    PASSWORD_HASH_METHOD = "scrypt"  # noqa: S105 (a method name, not a password)
    REAUTH_MINUTES = 15
    # Refused password attempts per client address (see throttle.py); the per-username one
    # stays below LOCKOUT_THRESHOLD so one place cannot lock an account out.
    LOGIN_RATE_LIMIT = "20 per 15 minutes"
    LOGIN_RATE_LIMIT_PER_USERNAME = "4 per 15 minutes"
    # Roles that must sign in with a second factor (TOTP), e.g. ["admin", "physician"];
    # everyone else may turn it on at /account/two-factor.
    REQUIRE_TWO_FACTOR_ROLES: list[str] = []
    RATELIMIT_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = True  # Retry-After on the 429
    # Default: a file in the instance folder shared by every worker process of this machine
    # (ratelimit_store.py); several machines: a store they all reach, e.g. redis://….
    RATELIMIT_STORAGE_URI: str | None = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_DURATION = 0
    WTF_CSRF_TIME_LIMIT = None  # the login session bounds a form's life instead
    MAX_CONTENT_LENGTH = 2 * 1024 * 1024

    PER_PAGE = 25
    # Reverse proxies in front of the app (nginx = 1): trust that many X-Forwarded-* hops so
    # audit rows get the client's address and url_for the https scheme.
    TRUSTED_PROXIES = 0

    # Physician signature (review): the default attestation, editable on the sign form.
    ATTESTATION_TEXT = (
        "I have reviewed this infusion record and attest that it is accurate and complete."
    )


def secret_key_from_instance(instance_path: str, name: str = "secret_key") -> str:
    """Generate a key once into instance/ (owner-only) so a restart keeps using it: the
    session secret (everyone stays signed in), the audit chain's key and the key sealing the
    two-factor secrets."""
    path = Path(instance_path) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


# Plain environment variables read besides the FLASK_-prefixed ones.
ENVIRONMENT = {
    "DATABASE_URL": "SQLALCHEMY_DATABASE_URI",
    "SECRET_KEY": "SECRET_KEY",
    "AUDIT_KEY": "AUDIT_KEY",
    "TOTP_KEY": "TOTP_KEY",
    "CLINIC_TIMEZONE": "CLINIC_TIMEZONE",
    "UNITS": "UNITS",
}


def check(config) -> None:
    """Refuse to start on settings that would otherwise fail on the first page."""
    try:
        ZoneInfo(config["CLINIC_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"CLINIC_TIMEZONE {config['CLINIC_TIMEZONE']!r} is not a time zone name "
            "(e.g. America/New_York)."
        ) from error
    if config["UNITS"] not in ("metric", "us"):
        raise ValueError(f"UNITS must be 'metric' or 'us', not {config['UNITS']!r}.")


def load(app, test_config=None) -> None:
    app.config.from_object(Defaults)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(
        app.instance_path, "infusion_tracker.db"
    )
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env()
    for name, key in ENVIRONMENT.items():
        if os.environ.get(name):
            app.config[key] = os.environ[name]
    if test_config:
        app.config.update(test_config)
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgres://") or uri.startswith("postgresql://"):
        # psycopg 3 is the driver we ship.
        app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + uri.split("://", 1)[1]
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key_from_instance(app.instance_path)
    if not app.config.get("AUDIT_KEY"):
        # Keyed audit chain (audit.py): the key must not be in the database. Keep a copy
        # with the backups' keys; without it the trail cannot be verified.
        app.config["AUDIT_KEY"] = secret_key_from_instance(app.instance_path, "audit_key")
    if not app.config.get("TOTP_KEY"):
        # Seals the two-factor secrets at rest (sealing.py); like AUDIT_KEY, kept out of the
        # database and needed beside any backup that is restored elsewhere.
        app.config["TOTP_KEY"] = secret_key_from_instance(app.instance_path, "totp_key")
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        app.config["RATELIMIT_STORAGE_URI"] = "instance-sqlite://" + os.path.join(
            app.instance_path, "ratelimit.db")
    check(app.config)
