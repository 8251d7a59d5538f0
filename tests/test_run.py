"""`python run.py` on a new database: builds it through the migrations, prints the address
and the /setup link, and serves real HTTP."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_run_py_serves_a_fresh_database_and_points_to_setup(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
        "SECRET_KEY": "run-test",
    }
    server = subprocess.Popen(
        [sys.executable, "run.py", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            lines.append(line)
            if "/setup" in line:
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in output
        assert f"http://127.0.0.1:{port}/setup" in output
        base = f"http://127.0.0.1:{port}"
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"{base}/healthz") as response:
                    assert response.status == 200
                    break
            except urllib.error.URLError:
                time.sleep(0.1)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(f"{base}/login")
            raise AssertionError("expected a redirect to /setup")
        except urllib.error.HTTPError as redirect:
            assert redirect.code == 302
            assert redirect.headers["Location"].endswith("/setup")
        with urllib.request.urlopen(f"{base}/setup") as page:
            assert b"Create the first administrator" in page.read()
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()
    assert (tmp_path / "fresh.db").exists()
