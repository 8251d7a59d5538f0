"""Serve Infusion Tracker: `python run.py [--host H] [--port P]`.

Creates instance/ with its database (through the migrations) and secret key on first run.
For production use gunicorn (see README).
"""

import argparse

import sqlalchemy as sa

from infusion_tracker import create_app
from infusion_tracker.commands import ensure_schema
from infusion_tracker.extensions import db
from infusion_tracker.models import Staff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()

    app = create_app()
    with app.app_context():
        ensure_schema()
        has_staff = db.session.scalar(sa.select(sa.exists().where(Staff.id.is_not(None))))
    address = f"http://{args.host}:{args.port}/"
    print(f"Infusion Tracker is running at {address}")
    if not has_staff:
        print(f"No account exists yet: create the first administrator at {address}setup")
    app.run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
