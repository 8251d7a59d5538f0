"""Start-up (issue 8: first answer within 1 s of launching the server): the app a web server
runs (infusion_tracker.wsgi) leaves out what serving never uses, and gunicorn serves it."""

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Imported only by the CLI (Alembic, via Flask-Migrate), at enrolment (segno) or when a
# password is set (zxcvbn): none belongs in a worker's start-up.
NOT_AT_START = ("alembic", "flask_migrate", "mako", "segno", "zxcvbn")


def server_env(tmp_path) -> dict:
    return {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "SECRET_KEY": "t"}


def test_the_served_app_does_not_import_the_cli_or_rarely_used_libraries(tmp_path):
    probe = (
        "import sys\n"
        "from infusion_tracker.wsgi import app\n"
        f"print(sorted(m for m in {NOT_AT_START!r} if m in sys.modules))\n"
        "print(sorted(app.cli.commands))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT, env=server_env(tmp_path), capture_output=True, text=True, check=True,
    )
    loaded, commands = result.stdout.splitlines()
    assert loaded == "[]"
    assert commands == "[]"


def test_the_full_app_keeps_its_commands(app):
    assert {"db", "create-staff", "verify-audit"} <= set(app.cli.commands)


def test_gunicorn_serves_the_wsgi_app_on_an_existing_database(tmp_path):
    env = server_env(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "infusion_tracker", "db", "upgrade"],
        cwd=ROOT, env=env, capture_output=True, check=True,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}",
         "infusion_tracker.wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert response.status == 200
        assert response.read() == b'{"status":"ok"}\n'
    finally:
        server.terminate()
        server.wait(timeout=10)
