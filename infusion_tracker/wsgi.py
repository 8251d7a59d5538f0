"""The app as a web server runs it: `gunicorn 'infusion_tracker.wsgi:app'`.

Without the CLI commands and the migrations (create_app(commands=False)): run
`flask --app infusion_tracker db upgrade` before starting it.
"""

from . import create_app

app = create_app(commands=False)
