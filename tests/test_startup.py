"""Start-up (issue 8: first answer within 1 s of launching the server): the app a web server
runs (infusion_tracker.wsgi) leaves out what serving never uses, and gunicorn serves it as
README says, loaded once before the fork (--preload), each worker with its own connections."""

import http.client
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from infusion_tracker.extensions import db

ROOT = Path(__file__).resolve().parent.parent
# Imported only by the CLI (Alembic, via Flask-Migrate), at enrolment (segno), when a
# password is set (zxcvbn) or on PostgreSQL (psycopg; these servers run on SQLite): none
# belongs in their start-up.
NOT_AT_START = ("alembic", "flask_migrate", "mako", "segno", "zxcvbn", "psycopg")


def server_env(tmp_path) -> dict:
    return {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "SECRET_KEY": "t"}


def served_app_says(tmp_path, probe: str) -> list[str]:
    """The lines `probe` prints in a new interpreter that has imported the served app."""
    result = subprocess.run(
        [sys.executable, "-c", "from infusion_tracker.wsgi import app\n" + probe],
        cwd=ROOT, env=server_env(tmp_path), capture_output=True, text=True, check=True,
    )
    return result.stdout.splitlines()


def test_the_served_app_does_not_import_the_cli_or_rarely_used_libraries(tmp_path):
    probe = (
        "import sys\n"
        "from infusion_tracker.extensions import db\n"
        f"print(sorted(m for m in {NOT_AT_START!r} if m in sys.modules))\n"
        "print(sorted(app.cli.commands))\n"
        "with app.app_context():\n"
        "    print(db.engine.pool.checkedin() + db.engine.pool.checkedout())\n"
    )
    loaded, commands, connections = served_app_says(tmp_path, probe)
    assert loaded == "[]"
    assert commands == "[]"
    assert connections == "0"  # nothing for a forked worker to inherit


def test_the_served_app_is_out_of_the_collectors_sight(tmp_path):
    """What the app is built from is frozen: the collector's full passes never walk it (nor,
    under gunicorn --preload, copy it into each worker)."""
    frozen, collecting = served_app_says(
        tmp_path, "import gc\nprint(gc.get_freeze_count())\nprint(gc.isenabled())\n"
    )
    assert int(frozen) > 100_000  # modules, mappers, forms
    assert collecting == "True"  # resting only while the app was built


def test_the_full_app_keeps_its_commands(app):
    assert {"db", "create-staff", "verify-audit"} <= set(app.cli.commands)


def test_a_forked_child_starts_with_an_empty_pool(app):
    """What the workers of a preloaded gunicorn get: none of the parent's connections."""
    with db.engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
    assert db.engine.pool.checkedin() == 1
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        inherited = db.engine.pool.checkedin()
        with db.engine.connect() as connection:
            answer = connection.exec_driver_sql("SELECT 1").scalar()
        os.write(write, f"{inherited} {answer}".encode())
        os._exit(0)
    os.close(write)
    report = os.read(read, 100).decode()
    os.waitpid(child, 0)
    assert report == "0 1"
    with db.engine.connect() as connection:  # the parent's own connection still answers
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1


def holds_file(pid: int, path: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    return any(os.path.realpath(fds / fd) == str(path) for fd in os.listdir(fds))


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def test_preloaded_gunicorn_workers_each_open_their_own_connection(tmp_path):
    """README's command (--preload) on an existing database, 2 workers: both answer, each has
    the database file open itself, and the master that built the app before forking them
    has not opened it (so no connection was shared across the fork)."""
    env = server_env(tmp_path)
    database = (tmp_path / "app.db").resolve()
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "infusion_tracker", "db", "upgrade"],
        cwd=ROOT, env=env, capture_output=True, check=True,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--bind",
         f"127.0.0.1:{port}", "infusion_tracker.wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = get(port, "/healthz")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert answer == (200, b'{"status":"ok"}\n')
        workers = []
        with ThreadPoolExecutor(8) as pool:
            while not (len(workers) == 2 and all(holds_file(w, database) for w in workers)):
                assert time.monotonic() < deadline, "a worker never opened the database"
                answers = list(pool.map(lambda _: get(port, "/healthz"), range(40)))
                assert set(answers) == {(200, b'{"status":"ok"}\n')}
                workers = [int(pid) for pid in children.read_text().split()]
        assert not holds_file(server.pid, database)
    finally:
        server.terminate()
        server.wait(timeout=10)
