"""Infusion Tracker: charting for an IV ketamine infusion clinic."""

import logging
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(test_config=None, commands: bool = True) -> Flask:
    """The app. `commands=False` is the app as a web server runs it (wsgi.py): without the
    CLI commands and Flask-Migrate, whose import of Alembic is a third of a worker's start-up
    and which serving never uses."""
    app = Flask(
        __name__,
        instance_path=os.path.abspath(
            os.environ.get("INFUSION_TRACKER_INSTANCE") or os.path.join(ROOT, "instance")
        ),
        instance_relative_config=True,
        template_folder=os.path.join(ROOT, "templates"),
    )
    from . import config, inputs, templating, widgets

    app.jinja_environment = templating.Environment  # before anything builds app.jinja_env

    # Secret key, audit key and (by default) the database live here: owner only.
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
    os.chmod(app.instance_path, 0o700)
    config.load(app, test_config)
    if app.config["TRUSTED_PROXIES"]:
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    widgets.install()
    inputs.init_app(app)  # before the blueprints: the bounded int converter binds as routes add
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    if commands:
        register_migrations(app)
        register_commands(app)
    register_templating(app)
    if not app.debug and not app.testing:
        logging.basicConfig(level=logging.INFO)
    return app


def register_extensions(app: Flask) -> None:
    from . import database, security, throttle, unit_of_work
    from .extensions import csrf, db, login_manager

    database.engine_options(app)
    db.init_app(app)
    database.init_app(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    security.init_app(app)
    throttle.init_app(app)
    unit_of_work.init_app(app)


def register_blueprints(app: Flask) -> None:
    from .admin.routes import bp as admin_bp
    from .auth.routes import bp as auth_bp
    from .auth.two_factor_views import bp as two_factor_bp
    from .devices.routes import bp as devices_bp
    from .exports.routes import bp as exports_bp
    from .infusions.routes import bp as infusions_bp
    from .ledger.routes import bp as ledger_bp
    from .main.routes import bp as main_bp
    from .patients.routes import bp as patients_bp
    from .protocols.routes import bp as protocols_bp
    from .quality.routes import bp as quality_bp
    from .review.routes import bp as review_bp

    for bp in (
        auth_bp,
        two_factor_bp,  # the code step at sign-in, one's own enrolment (issue 9)
        main_bp,
        admin_bp,
        review_bp,
        infusions_bp,
        patients_bp,
        protocols_bp,
        exports_bp,
        devices_bp,  # monitor intake: device pages, POST /api/hl7, proposed readings
        ledger_bp,  # controlled-substance ledger
        quality_bp,  # the clinic's quality report
    ):
        app.register_blueprint(bp)


def register_errorhandlers(app: Flask) -> None:
    from . import errors

    errors.register(app)


def register_migrations(app: Flask) -> None:
    from flask_migrate import Migrate

    from .extensions import db

    Migrate(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"))


def register_commands(app: Flask) -> None:
    from . import commands
    from .devices import commands as device_commands
    from .ledger import commands as ledger_commands
    from .quality import commands as quality_commands

    for module in (commands, device_commands, ledger_commands, quality_commands):
        module.register(app)


def register_templating(app: Flask) -> None:
    from . import templating

    templating.register(app)
