"""The benchmark: seed (or reuse) a database at a scale, serve the app and a bare Flask hello app
under gunicorn (2 sync workers) on 127.0.0.1, sign in over HTTP like a browser, drive each page
with wrk, and report requests/s, p50, p99, errors, queries and bytes per request, and each
page's requests/s as a fraction of hello's: the run's (measured first and last) and the one
measured just before the page.

    python bench/run.py --scale tiny
    python bench/run.py --scale clinic --db postgres --pages board,session --duration 10

See README.md ("Benchmark") and bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import date, timedelta
from html import unescape
from pathlib import Path
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench import cores  # noqa: E402

SECRET_KEY = "bench-only-secret-key-not-for-production"  # noqa: S105
# The audit chain's key, fixed so a dataset verifies whichever checkout runs the harness (the
# app would otherwise generate one into that checkout's instance/). AUDIT_KEY in the
# environment wins: a dataset seeded with another key is copied and verified with that key.
AUDIT_KEY = "bench-only-audit-key-not-for-production"  # noqa: S105
PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
WORKERS = 2


# --- the pages --------------------------------------------------------------------------------


@dataclass
class Page:
    name: str
    label: str
    role: str  # who signs in: nurse, physician, admin, or "" for no sign-in
    method: str = "GET"
    expected: int = 200


PAGES = [
    Page("hello", "bare Flask hello (the ceiling)", ""),
    Page("healthz", "/healthz", ""),
    Page("board", "suite board /", "nurse"),
    Page("search_name", "patient search, name prefix", "nurse"),
    Page("search_mrn", "patient search, MRN", "nurse"),
    Page("patient", "patient page (30 sessions)", "nurse"),
    Page("session", "session page (40 readings, chart)", "nurse"),
    # A running session's page, as the bedside sees it between readings: kept, each view
    # filling in what the clock moves (infusions/live.py). Not by default: the benchmark's
    # recordings go into these sessions, so their readings grow from run to run.
    Page("session_running", "session page while infusing", "nurse"),
    Page("record_reading", "record a reading (POST → 302)", "nurse", "POST", 302),
    Page("review", "review queue /review/", "physician"),
    Page("audit_patient", "audit log, by patient", "admin"),
    Page("audit_dates", "audit log, by date range", "admin"),
    Page("csv", "CSV export (30 sessions)", "nurse"),
    Page("fhir", "FHIR export (30 sessions)", "nurse"),
    Page("quality", "quality report, one year", "physician"),
]
# Not driven by wrk unless asked for: a report over a year of data, timed with --quality.
NOT_BY_DEFAULT = ("hello", "session_running", "quality")
BY_NAME = {page.name: page for page in PAGES}
LOGINS = {"nurse": "jroe", "physician": "drpatel", "admin": "office"}


def mrn(patient_id: int) -> str:
    from infusion_tracker.patients.services import MRN_DIGITS, MRN_PREFIX

    return f"{MRN_PREFIX}{patient_id:0{MRN_DIGITS}d}"


def clinic_now_text(url: str) -> str:
    """Now as the reading form's datetime-local value (clinic wall time, to the minute)."""
    from infusion_tracker.infusions.reading_forms import clinic_now

    with make_app(url).app_context():
        return clinic_now().strftime("%Y-%m-%dT%H:%M")


PHASE_FOR = {"checked_in": "baseline", "infusing": "infusion", "paused": "infusion"}


FORM_KEY_FIELD = "reading-submission_key"


def reading_bodies(manifest: dict, token: str) -> list[tuple[str, str]]:
    """POST paths and form bodies: a plausible reading for each open session on the board,
    eight rounds of the sessions. Round by round, as clinicians at different bedsides chart:
    one session's eight in a row had the writers charting the same session at once, most of
    the time (Stop 29: 60-65 % of readings found the session's version moved meanwhile).
    Each body ends with the form key's field, its value given as the post is sent
    (with_form_key; bench/wrk.lua), one of its own, as each form the page draws has: the
    same key again would record nothing."""
    taken_at = manifest["taken_at"]
    rng = random.Random(1)
    lines = []
    for _ in range(8):
        for infusion_id, status in manifest["active"]:
            form = {
                "reading-csrf_token": token,
                "reading-taken_at": taken_at,
                "reading-phase": PHASE_FOR.get(status, "recovery"),
                "reading-systolic": rng.randrange(112, 150),
                "reading-diastolic": rng.randrange(70, 92),
                "reading-heart_rate": rng.randrange(62, 96),
                "reading-resp_rate": rng.choice((12, 14, 16)),
                "reading-spo2": rng.choice((96, 97, 98, 99)),
                "reading-o2_room_air": "y",
                "reading-rhythm": "nsr",
                "reading-avpu": "A",
                "reading-moaas": rng.choice((4, 5)),
                "reading-note": "",
                FORM_KEY_FIELD: "",  # its value added as each post is sent (with_form_key)
            }
            lines.append((f"/infusions/{infusion_id}/readings", urlencode(form)))
    return lines


# How many of the dataset's 30-session patients (and 40-reading sessions) a page's requests go
# round: the same at every scale, so that `chain` against `clinic` measures the data's size.
# (With all of them, 1,000 at `chain` and 100 at `clinic`, the chain runs measured pages the
# workers had not drawn yet against pages they had: bench/RESULTS.md, Stop 19.)
ROTATION = 100


def requests_for(page: str, manifest: dict, token: str = "") -> list[tuple[str, str, str]]:
    heavy = manifest["heavy_patients"][:ROTATION]
    rng = random.Random(page)
    if page in ("hello", "healthz", "board"):
        return [("GET", "/healthz" if page == "healthz" else "/", "")]
    if page == "search_name":
        return [("GET", f"/patients/?q={prefix}", "") for prefix in manifest["name_prefixes"]]
    if page == "search_mrn":
        ids = rng.sample(
            range(1, manifest["counts"]["patient"] + 1), min(200, manifest["counts"]["patient"])
        )
        return [("GET", f"/patients/?q={mrn(i)}", "") for i in ids]
    if page == "patient":
        return [("GET", f"/patients/{i}", "") for i in heavy]
    if page == "session":
        return [("GET", f"/infusions/{i}", "") for i in manifest["heavy_sessions"][:ROTATION]]
    if page == "session_running":
        return [("GET", f"/infusions/{i}", "") for i, status in manifest["active"]
                if status == "infusing"]
    if page == "record_reading":
        return [("POST", path, body) for path, body in reading_bodies(manifest, token)]
    if page == "review":
        return [("GET", "/review/", "")]
    if page == "audit_patient":
        return [("GET", f"/admin/audit?patient={mrn(i)}", "") for i in heavy]
    if page == "audit_dates":
        first = date.fromisoformat(manifest["first_day"])
        span = (date.fromisoformat(manifest["seeded_on"]) - first).days - 7
        lines = []
        for _ in range(50):
            start = first + timedelta(days=rng.randrange(max(span, 1)))
            query = urlencode(
                {"date_from": start.isoformat(), "date_to": (start + timedelta(days=6)).isoformat()}
            )
            lines.append(("GET", f"/admin/audit?{query}", ""))
        return lines
    if page == "csv":
        return [("GET", f"/patients/{i}/readings.csv", "") for i in heavy]
    if page == "fhir":
        return [("GET", f"/patients/{i}/fhir", "") for i in heavy]
    if page == "quality":
        end = date.fromisoformat(manifest["seeded_on"])
        query = urlencode({"start": (end - timedelta(days=364)).isoformat(), "end": end})
        return [("GET", f"/quality/?{query}", "")]
    raise ValueError(page)


# --- a browser's sign-in over HTTP --------------------------------------------------------------


class Browser:
    """Just enough of a browser: one cookie (Flask's session), no redirects followed."""

    def __init__(self, port: int):
        self.port = port
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"User-Agent": "infusion-bench"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        for name, value in response.getheaders():
            if name.lower() == "set-cookie" and value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        connection.close()
        return response.status, response.getheader("Location", ""), text


def form_token(html: str, name: str = "csrf_token") -> str:
    found = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]+)"', html) or re.search(
        rf'value="([^"]+)"[^>]*name="{re.escape(name)}"', html
    )
    if not found:
        raise RuntimeError(f"no {name} field on the page")
    return unescape(found.group(1))


def sign_in(browser: Browser, username: str, password: str) -> None:
    status, _, html = browser.request("GET", "/login")
    if status != 200:
        raise RuntimeError(f"GET /login answered {status}")
    status, location, _ = browser.request(
        "POST",
        "/login",
        urlencode({"csrf_token": form_token(html), "username": username, "password": password}),
    )
    if status != 302 or "/login" in location:
        raise RuntimeError(f"signing in as {username} failed ({status} → {location})")


# --- databases ---------------------------------------------------------------------------------


def database_url(db: str, scale: str, data_dir: Path, pg_database: str | None = None) -> str:
    if db == "sqlite":
        return f"sqlite:///{data_dir / f'{scale}.sqlite'}"
    return f"{PG_BASE}/{pg_database or f'bench_{scale}'}"


def pg_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def drop_database(db: str, url: str) -> None:
    if db == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = pg_name(url)
    if not name.startswith("bench"):  # never anyone else's database (e.g. `test`)
        raise SystemExit(f"refusing to drop {name}: benchmark databases are named bench*")
    # Fixed tools and arguments (the name is checked above): S603/S607 do not apply.
    for command in (["dropdb", "--if-exists", name], ["createdb", name]):
        subprocess.run([*command, "-h", "127.0.0.1", "-U", "postgres"], check=True)  # noqa: S603


def database_size(db: str, url: str) -> int:
    if db == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        return sum(
            Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists()
        )
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as connection:
        size = connection.scalar(sa.text("SELECT pg_database_size(current_database())"))
    engine.dispose()
    return int(size)


def make_app(url: str):
    from infusion_tracker import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET_KEY})


def ensure_dataset(args, url: str) -> dict:
    """Reuse the database when its manifest says it holds this scale; otherwise seed it."""
    import sqlalchemy as sa

    manifest_path = args.data_dir / f"{args.db}-{args.scale}.json"
    if manifest_path.exists() and not args.reseed:
        manifest = json.loads(manifest_path.read_text())
        try:
            engine = sa.create_engine(url)
            with engine.connect() as connection:
                patients = connection.scalar(sa.text("SELECT count(*) FROM patient"))
            engine.dispose()
        except sa.exc.SQLAlchemyError:
            patients = None
        if patients == manifest["counts"]["patient"]:
            print(
                f"Reusing {args.db} {args.scale} dataset (seeded {manifest['seeded_on']} in "
                f"{manifest['seed_seconds']:.0f} s); upgrading its schema to head."
            )
            from flask_migrate import upgrade

            # A dataset seeded by an older checkout lacks the later migrations.
            with make_app(url).app_context():
                upgrade(directory=str(ROOT / "infusion_tracker" / "migrations"))
            return manifest
    print(f"Seeding the {args.scale} dataset into {args.db} …", flush=True)
    drop_database(args.db, url)
    from flask_migrate import upgrade

    from bench import seed

    app = make_app(url)
    with app.app_context():
        upgrade(directory=str(ROOT / "infusion_tracker" / "migrations"))
        started, cpu = time.perf_counter(), time.process_time()
        if args.copy_from_sqlite:
            manifest = copy_sqlite_dataset(args)
        else:
            manifest = seed.seed(args.scale, progress=lambda line: print(line, flush=True))
        seed_seconds = time.perf_counter() - started
        manifest["seed_cpu_seconds"] = round(time.process_time() - cpu, 1)
        from infusion_tracker.extensions import db

        if args.db == "postgres":
            # What autovacuum would have done by now: statistics, and the visibility map and
            # hint bits, without which the first reads of a fresh copy write every page they
            # touch and no scan is index-only (the audit log by patient was 108.7 ms at
            # `chain` after ANALYZE alone: bench/RESULTS.md, Stop 16).
            db.session.commit()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE)")
        from infusion_tracker import audit

        if args.skip_verify:
            # A copy of a verified SQLite dataset, when the time for verify-audit (≈ 2 min per
            # million rows on PostgreSQL) is not there; the manifest says so.
            manifest["verify_seconds"] = None
            manifest["audit_verified_rows"] = None
        else:
            started = time.perf_counter()
            report = audit.verify_chain()
            manifest["verify_seconds"] = round(time.perf_counter() - started, 1)
            if not report.ok and report.broken_at <= manifest.get("audit_seeded_rows", 0):
                raise SystemExit(
                    f"seeded audit chain broken at {report.broken_at}: {report.reason}")
            if not report.ok:
                # A copy: rows the benchmark runs appended to the SQLite dataset after its
                # seeding were keyed by whichever checkout ran them; the seeded chain before
                # them verified.
                print(f"Audit chain verified up to row {report.broken_at - 1:,}; the rows "
                      "after it were appended by benchmark runs under another key.")
            manifest["audit_verified_rows"] = (
                report.rows if report.ok else report.broken_at - 1)
        from infusion_tracker.models import InfusionSession

        manifest["active"] = [
            (row.id, row.status)
            for row in db.session.execute(
                sa.select(InfusionSession.id, InfusionSession.status).where(
                    InfusionSession.id.in_(manifest["active_sessions"])
                )
            )
        ]
    if args.db == "sqlite":
        # Fold the write-ahead log into the file, so the size below is the database's.
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    manifest["seed_seconds"] = round(seed_seconds, 1)
    manifest["database_bytes"] = database_size(args.db, url)
    manifest["name_prefixes"] = sorted({name[:3] for name in seed.LAST})
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=1))
    verified = (
        "audit chain not verified (--skip-verify)" if manifest["audit_verified_rows"] is None
        else f"audit chain verified ({manifest['audit_verified_rows']:,} rows, "
        f"{manifest['verify_seconds']} s)"
    )
    print(f"Seeded in {seed_seconds:.1f} s; database {manifest['database_bytes'] / 1e6:,.0f} MB; "
          f"{verified}.")
    return manifest


def copy_sqlite_dataset(args) -> dict:
    """The SQLite dataset of this scale (seeded and verified), copied into PostgreSQL."""
    from bench import pgcopy
    from infusion_tracker.extensions import db

    sqlite_url = database_url("sqlite", args.scale, args.data_dir)
    source = json.loads((args.data_dir / f"sqlite-{args.scale}.json").read_text())
    print(f"Copying {sqlite_url} (seeded {source['seeded_on']}) with COPY …", flush=True)
    counts = pgcopy.copy_from_sqlite(
        sqlite_url.removeprefix("sqlite:///"), progress=lambda line: print(line, flush=True)
    )
    db.session.commit()
    keep = ("heavy_patients", "heavy_sessions", "active_sessions", "seeded_on", "first_day")
    manifest = {key: source[key] for key in keep}
    manifest["counts"] = {name: counts[name] for name in source["counts"]}
    manifest["copied_from"] = f"{sqlite_url} (seeded in {source['seed_seconds']} s)"
    manifest["audit_seeded_rows"] = source["audit_verified_rows"]
    return manifest


# --- queries per request, counted in-process --------------------------------------------------


def signed_in_client(app, role: str):
    """A Flask test client signed in as the role's user, like the browser above."""
    from bench.seed import PASSWORD

    client = app.test_client()
    if role:
        html = client.get("/login").get_data(as_text=True)
        response = client.post(
            "/login",
            data={"csrf_token": form_token(html), "username": LOGINS[role], "password": PASSWORD},
        )
        if response.status_code != 302:
            raise RuntimeError(f"test client sign-in as {role} answered {response.status_code}")
    return client


def first_request(client, page: str, manifest: dict) -> tuple[str, str, str]:
    token = ""
    if BY_NAME[page].method == "POST":
        html = client.get(f"/infusions/{manifest['active'][0][0]}").get_data(as_text=True)
        token = form_token(html, "reading-csrf_token")
    return requests_for(page, manifest, token)[0]


def with_form_key(method: str, body: str) -> str:
    """A reading form's body (ending with its key's field) with a key of its own
    (ReadingForm.submission_key)."""
    if method != "POST":
        return body
    return body + secrets.token_urlsafe(12)


def send(client, page: str, request: tuple[str, str, str]):
    method, path, body = request
    body = with_form_key(method, body)
    response = client.open(
        path, method=method, data=body or None, content_type="application/x-www-form-urlencoded"
    )
    if response.status_code != BY_NAME[page].expected:
        raise RuntimeError(f"{page}: {method} {path} answered {response.status_code}")
    return response


def count_queries(url: str, manifest: dict, pages: list[str]) -> dict[str, dict]:
    """One request of each page through the Flask test client (after one warm-up request),
    counting the statements SQLAlchemy sends and the body's bytes (wrk's byte count includes
    responses cut off at the end of the run, so it overstates slow pages). No app context is
    held around the requests: Flask-WTF caches the CSRF token in `g`, which would outlive the
    sign-in's new session."""
    import sqlalchemy as sa

    from infusion_tracker.database import TRANSACTION_CONTROL
    from infusion_tracker.extensions import db

    app = make_app(url)
    with app.app_context():
        engine = db.engine
    executed = []

    def statement(conn, cursor, text, *rest):
        if not text.lstrip().startswith(TRANSACTION_CONTROL):  # as the tests count them
            executed.append(text)

    sa.event.listen(engine, "before_cursor_execute", statement)
    counts = {}
    clients = {}
    for page in pages:
        if page == "hello":
            continue
        role = BY_NAME[page].role
        client = clients.get(role) or clients.setdefault(role, signed_in_client(app, role))
        request = first_request(client, page, manifest)
        send(client, page, request)  # warm-up: first connection, template compilation
        executed.clear()
        response = send(client, page, request)
        counts[page] = {"queries": len(executed), "body_bytes": len(response.get_data())}
    return counts


# --- servers and wrk -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compile_bytecode(root: Path) -> None:
    """The app's bytecode written, as README's production steps do where the environment sets
    PYTHONDONTWRITEBYTECODE (this machine does): otherwise every launch compiles the app again
    before its first answer, which no deployed server does."""
    subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "compileall", "-q", "infusion_tracker"], cwd=root, check=True,
        stdout=subprocess.DEVNULL,
    )


class Server:
    """gunicorn with 2 sync workers on 127.0.0.1, the app loaded before the fork (--preload);
    times the first answer after launch."""

    def __init__(self, app_spec: str, url: str | None, cwd: Path, log: Path):
        self.port = free_port()
        env = {**os.environ, "SECRET_KEY": SECRET_KEY}
        if url:
            env["DATABASE_URL"] = url
        self.log = log.open("w")
        started = time.perf_counter()
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(WORKERS),
                "--worker-class",
                "sync",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
                "--preload",  # as README's production command
                app_spec,
            ],
            cwd=cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/healthz" if url else "/")
                connection.getresponse().read()
                break
            except OSError:
                if self.process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"gunicorn did not start; see {log}") from None
                time.sleep(0.02)
        self.first_answer_s = time.perf_counter() - started

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each worker (the master's children)."""
        sizes = []
        for pid in cores.children(self.process.pid):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(round(int(line.split()[1]) / 1024, 1))
        return sizes

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def run_wrk(
    port: int,
    lines: list[tuple[str, str, str]],
    cookie: str,
    expected: int,
    args,
    workdir: Path,
    server_pid: int | None = None,
) -> dict:
    """wrk's figures; with `server_pid` (the gunicorn master), also where the cores went while
    it ran (bench/cores.py)."""
    request_file = workdir / "requests.tsv"
    with request_file.open("w") as handle:
        handle.write(f"COOKIE\t{cookie}\n")
        for method, path, body in lines:
            handle.write(f"{method}\t{path}\t{body}\n")
    before = cores.snapshot(server_pid) if server_pid else None
    result = subprocess.run(  # noqa: S603 (wrk with our own arguments)
        [
            "/usr/bin/wrk",
            "--threads",
            str(args.threads),
            "--connections",
            str(args.connections),
            "--duration",
            f"{args.duration}s",
            "--timeout",
            "10s",
            "--script",
            str(BENCH / "wrk.lua"),
            f"http://127.0.0.1:{port}",
            "--",
            str(request_file),
            str(expected),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            break
    else:
        raise RuntimeError(f"wrk printed no result:\n{result.stdout}\n{result.stderr}")
    seconds = raw["duration_us"] / 1e6
    socket_errors = sum(
        raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    use = cores.core_use(before, cores.snapshot(server_pid), raw["requests"]) if before else None
    return {
        "requests": raw["requests"],
        "rps": raw["requests"] / seconds,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": socket_errors + raw["unexpected_status"],
        "socket_errors": socket_errors,
        "socket_error_kinds": {
            k: raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        },
        "unexpected_status": raw["unexpected_status"],
        "wrk_bytes_per_response": raw["bytes"] / max(raw["requests"], 1),
        "core_use": use,
    }


def readings_in(url: str, ids: list[int]) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as connection:
        total = connection.scalar(
            sa.text("SELECT count(*) FROM reading WHERE infusion_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": ids},
        )
    engine.dispose()
    return int(total)


# A page whose requests go round this many addresses or more: its first round is reported
# on its own (the pages the clients go round are kept after their first view, so the median
# of the whole falls among first views on one run and kept ones on the next).
FIRST_ROUND_MIN = 20


def one_client_p50(
    port: int, cookie: str, lines: list, expected: int, seconds: float
) -> tuple[float, float | None]:
    """Median latency with one client sending requests one after another (ms), for the
    issue's one-client targets: at least 3 requests, then until `seconds` have passed; and
    the median of the first round of a page that goes round FIRST_ROUND_MIN addresses or more
    (each address's first view since the server started: nothing kept yet), else None."""
    timings = []
    started = time.perf_counter()
    for number in range(200):
        if number >= 3 and time.perf_counter() - started > seconds:
            break
        method, path, body = lines[number % len(lines)]
        browser = Browser(port)
        browser.cookie = cookie
        begun = time.perf_counter()
        status, location, _ = browser.request(method, path, with_form_key(method, body) or None)
        timings.append((time.perf_counter() - begun) * 1000)
        if status != expected:
            raise RuntimeError(f"{method} {path} answered {status} {location}")
    first_round = timings[: len(lines)] if len(lines) >= FIRST_ROUND_MIN else []
    return statistics.median(timings), statistics.median(first_round) if first_round else None


def measure(args, url: str, manifest: dict, pages: list[str], queries: dict) -> dict:
    from bench.seed import PASSWORD

    workdir = Path(tempfile.mkdtemp(prefix="infusion-bench-"))
    hello = Server("hello:app", None, BENCH, workdir / "hello.log")
    compile_bytecode(ROOT)
    app = Server("infusion_tracker.wsgi:app", url, ROOT, workdir / "app.log")
    results: dict[str, dict] = {}
    beside_args = argparse.Namespace(**{**vars(args), "duration": max(2, args.duration // 2)})
    try:
        hello_lines = requests_for("hello", manifest)
        results["hello"] = run_wrk(
            hello.port, hello_lines, "", 200, args, workdir, hello.process.pid
        )
        results["hello"]["one_client_p50_ms"], _ = one_client_p50(
            hello.port, "", hello_lines, 200, args.one_client_seconds
        )
        results["hello"]["body_bytes"] = len(Browser(hello.port).request("GET", "/")[2])
        print(f"  hello: {results['hello']['rps']:,.0f} req/s", flush=True)
        for page in pages:
            if page == "hello":
                continue
            spec = BY_NAME[page]
            browser = Browser(app.port)
            token = ""
            if spec.role:
                # A fresh sign-in per page: the idle limit counts from the cookie's last use.
                sign_in(browser, LOGINS[spec.role], PASSWORD)
            if spec.method == "POST":
                status, _, html = browser.request("GET", f"/infusions/{manifest['active'][0][0]}")
                token = form_token(html, "reading-csrf_token")
            lines = requests_for(page, manifest, token)
            # One request by hand first: the wrong answer stops the run instead of being timed.
            method, path, body = lines[0]
            check = Browser(app.port)
            check.cookie = browser.cookie
            status, location, _ = check.request(method, path, body or None)
            if status != spec.expected:
                raise RuntimeError(f"{page}: {method} {path} answered {status} {location}")
            single, first_views = one_client_p50(
                app.port, browser.cookie, lines, spec.expected, args.one_client_seconds
            )
            before = (
                readings_in(url, [i for i, _ in manifest["active"]]) if spec.method == "POST" else 0
            )
            # Hello again just before the page: on a machine whose speed drifts within a run
            # (by 45 % on one), the page's ratio to the hello beside it holds where its ratio to
            # the run's hello moves with the drift.
            beside = run_wrk(hello.port, hello_lines, "", 200, beside_args, workdir)["rps"]
            result = run_wrk(
                app.port, lines, browser.cookie, spec.expected, args, workdir, app.process.pid
            )
            result["hello_beside_rps"] = beside
            if spec.method == "POST":
                written = readings_in(url, [i for i, _ in manifest["active"]]) - before
                result["rows_written"] = written
                result["acknowledged"] = result["requests"] - result["unexpected_status"]
            result.update(
                queries[page], one_client_p50_ms=single, one_client_first_views_p50_ms=first_views
            )
            results[page] = result
            print(
                f"  {page}: {result['rps']:,.0f} req/s, p99 {result['p99_ms']:.0f} ms, "
                f"{result['errors']} errors",
                flush=True,
            )
        # Hello again at the end: the spread between the two shows how noisy the machine was.
        again = run_wrk(hello.port, hello_lines, "", 200, args, workdir)
        first = results["hello"]
        first["rps_end"] = again["rps"]
        first["rps_start"] = first["rps"]
        first["rps"] = (first["rps_start"] + again["rps"]) / 2
        startup = {
            "app_first_answer_s": round(app.first_answer_s, 2),
            "hello_first_answer_s": round(hello.first_answer_s, 2),
            "app_worker_rss_mb": app.worker_rss_mb(),
        }
    finally:
        app.stop()
        hello.stop()
    return {"pages": results, "startup": startup}


# --- output -------------------------------------------------------------------------------------


def table(results: dict, pages: list[str]) -> str:
    hello = results["hello"]["rps"]
    lines = [
        "| page | req/s | × hello | × hello beside | p50 ms | p99 ms | errors | queries "
        "| body bytes | 1-client p50 ms | 1-client first views p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for page in ["hello", *[p for p in pages if p != "hello"]]:
        r = results[page]
        queries = "—" if r.get("queries") is None else str(r["queries"])
        size = f"{r['body_bytes']:,}"
        # No response finished within the run: wrk's percentiles would read 0.
        p50, p99 = (
            (f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}") if r["requests"] else ("none", "none")
        )
        first_views = r.get("one_client_first_views_p50_ms")
        first_views = "—" if first_views is None else f"{first_views:.1f}"
        beside = r.get("hello_beside_rps")
        beside = "—" if beside is None else f"{r['rps'] / beside:.3f}"
        lines.append(
            f"| {BY_NAME[page].label} | {r['rps']:,.0f} | {r['rps'] / hello:.3f} | {beside} | "
            f"{p50} | {p99} | {r['errors']} | {queries} | "
            f"{size} | {r['one_client_p50_ms']:.1f} | {first_views} |"
        )
    return "\n".join(lines)


def core_table(results: dict, pages: list[str]) -> str:
    """bench/cores.py's split of each wrk run: % of one core, and CPU ms per request."""
    lines = [
        "| page | machine busy % | stolen % | server % | PostgreSQL % | wrk % | other % "
        "| CPU ms per request: server · PostgreSQL · wrk |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for page in ["hello", *[p for p in pages if p != "hello"]]:
        use = results[page]["core_use"]
        lines.append(
            f"| {BY_NAME[page].label} | {use['busy_pct']:.0f} | {use['steal_pct']:.0f} | "
            f"{use['server_pct']:.0f} | {use['postgres_pct']:.0f} | {use['wrk_pct']:.0f} | "
            f"{use['other_pct']:.0f} | {use['server_ms_per_request']:.2f} · "
            f"{use['postgres_ms_per_request']:.2f} · {use['wrk_ms_per_request']:.2f} |"
        )
    return "\n".join(lines)


def profile(url: str, manifest: dict, page: str) -> str:
    """One request of a page through the test client under pyinstrument (after a warm-up)."""
    from pyinstrument import Profiler

    app = make_app(url)
    client = signed_in_client(app, BY_NAME[page].role)
    request = first_request(client, page, manifest)
    send(client, page, request)
    profiler = Profiler(interval=0.0001)
    profiler.start()
    send(client, page, request)
    profiler.stop()
    return profiler.output_text(unicode=True, color=False, show_all=False)


def quality_timing(url: str, manifest: dict, repeats: int = 3) -> str:
    """The quality report for the year up to the day the data was seeded: the page through the
    test client (wall and CPU, median of `repeats` after a warm-up, statements counted), then
    each of the report's sections on its own."""
    import sqlalchemy as sa

    from infusion_tracker.extensions import db
    from infusion_tracker.models import SessionFigures
    from infusion_tracker.quality import services

    app = make_app(url)
    with app.app_context():
        engine = db.engine
    executed = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: executed.append(args[2]))
    client = signed_in_client(app, "physician")
    request = first_request(client, "quality", manifest)
    # Cold: no stored per-session figures (as after an upgrade); this request stores them.
    with app.app_context():
        db.session.execute(sa.delete(SessionFigures))
        db.session.commit()
    executed.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    send(client, "quality", request)
    out = [
        f"{request[1]}, cold (computes and stores every session's figures): wall "
        f"{time.perf_counter() - wall:.2f} s, CPU {time.process_time() - cpu:.2f} s, "
        f"{len(executed)} statements"
    ]
    walls, cpus = [], []
    for _ in range(repeats):
        executed.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        send(client, "quality", request)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    out += [
        f"{request[1]}, warm: wall {statistics.median(walls):.2f} s, "
        f"CPU {statistics.median(cpus):.2f} s "
        f"(median of {repeats}; all: {', '.join(f'{w:.2f}' for w in walls)} s), "
        f"{len(executed)} statements"
    ]
    end = date.fromisoformat(manifest["seeded_on"])
    period = services.Period(end - timedelta(days=364), end)
    with app.app_context():
        summary = services.summary(period)
        sections = {
            "summary": lambda: services.summary(period),
            "adverse_events": lambda: services.adverse_events(period, summary),
            "critical_readings": lambda: services.critical_readings(period, summary),
            "peak_rise": lambda: services.peak_rise(period),
            "reading_gaps": lambda: services.reading_gaps(period),
            "outcomes": lambda: services.outcomes(period),
        }
        for name, section in sections.items():
            wall, cpu = time.perf_counter(), time.process_time()
            section()
            out.append(
                f"  {name}: wall {time.perf_counter() - wall:.3f} s, "
                f"CPU {time.process_time() - cpu:.3f} s"
            )
        db.session.rollback()
    out.append(f"  (sessions in the period: {summary[0].sessions:,})")
    return "\n".join(out)


def plans(url: str, manifest: dict, pages: list[str]) -> str:
    """Every statement of one request of each page, with the database's plan. Scans (SQLite's
    SCAN, even of an index, PostgreSQL's Seq Scan) grow with the data unless the table is small
    (staff, protocol); searches do not."""
    import sqlalchemy as sa

    from infusion_tracker.extensions import db

    app = make_app(url)
    with app.app_context():
        engine = db.engine
    executed = []
    sa.event.listen(
        engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, params, *rest: executed.append((statement, params)),
    )
    postgres = engine.dialect.name == "postgresql"
    out = []
    for page in pages:
        if page in ("hello", "record_reading"):
            continue
        client = signed_in_client(app, BY_NAME[page].role)
        request = first_request(client, page, manifest)
        send(client, page, request)
        executed.clear()
        send(client, page, request)
        statements = [
            (s, p)
            for s, p in executed
            if s.lstrip().upper().startswith("SELECT") or " FROM " in s.upper()
        ]
        out.append(f"## {page} ({len(executed)} statements)")
        with engine.connect() as connection:
            for statement, params in statements:
                prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
                rows = connection.exec_driver_sql(prefix + statement, params).all()
                plan = [str(row[0] if postgres else row[-1]) for row in rows]
                scans = [
                    line
                    for line in plan
                    if "Seq Scan" in line or (line.startswith("SCAN") and "CONSTANT" not in line)
                ]
                first = " ".join(statement.split())[:150]
                out.append(f"- {'SCAN ' if scans else 'ok   '}{first}")
                out.extend(f"      {line.strip()}" for line in plan)
    return "\n".join(out)


def main() -> None:
    from bench.seed import SCALES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=list(SCALES), default="tiny")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--pages",
        default=",".join(p.name for p in PAGES if p.name not in NOT_BY_DEFAULT),
        help="comma-separated; default all: " + ",".join(BY_NAME),
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per page")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--one-client-seconds",
        type=float,
        default=2.0,
        help="per page, time sequential requests of one client for this long (median)",
    )
    parser.add_argument("--data-dir", type=Path, default=BENCH / ".data")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/…)")
    parser.add_argument(
        "--pg-database",
        help="PostgreSQL database (default bench_<scale>), e.g. a copy made with createdb -T",
    )
    parser.add_argument("--reseed", action="store_true", help="rebuild the dataset")
    parser.add_argument("--seed-only", action="store_true", help="build the dataset and stop")
    parser.add_argument(
        "--skip-verify",
        action="store_true",
        help="with --copy-from-sqlite: do not run verify-audit over the copy (its SQLite "
        "source was verified when it was seeded)",
    )
    parser.add_argument(
        "--copy-from-sqlite",
        action="store_true",
        help="--db postgres: build the dataset by copying the SQLite one of this scale (in "
        "--data-dir, seeded first) with COPY instead of generating it again",
    )
    parser.add_argument(
        "--plans", action="store_true", help="print each page's statements and plans and stop"
    )
    parser.add_argument(
        "--quality",
        action="store_true",
        help="time the quality report for the last year (and each of its sections) and stop",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="--quality: timed requests after the warm-up"
    )
    parser.add_argument(
        "--profile",
        metavar="PAGE",
        help="print a pyinstrument profile of one request of PAGE and stop",
    )
    args = parser.parse_args()
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    unknown = [p for p in pages if p not in BY_NAME]
    if unknown:
        parser.error(f"unknown pages: {', '.join(unknown)}")
    args.data_dir = args.data_dir.resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["SECRET_KEY"] = SECRET_KEY  # never generate instance/secret_key for a benchmark
    os.environ.setdefault("AUDIT_KEY", AUDIT_KEY)
    if args.pg_database and not args.pg_database.startswith("bench"):
        parser.error("--pg-database: benchmark databases are named bench*")
    if args.skip_verify and not args.copy_from_sqlite:
        parser.error("--skip-verify is for --copy-from-sqlite")
    if args.copy_from_sqlite and args.db != "postgres":
        parser.error("--copy-from-sqlite: only with --db postgres")
    url = database_url(args.db, args.scale, args.data_dir, args.pg_database)
    manifest = ensure_dataset(args, url)
    if args.seed_only:
        return
    manifest["taken_at"] = clinic_now_text(url)
    if args.profile:
        print(profile(url, manifest, args.profile))
        return
    if args.plans:
        print(plans(url, manifest, pages))
        return
    if args.quality:
        print(quality_timing(url, manifest, args.repeats))
        return
    print("Counting queries per request (Flask test client) …", flush=True)
    queries = count_queries(url, manifest, pages)
    print(
        f"Load: wrk {args.threads} threads, {args.connections} connections, "
        f"{args.duration} s per page; gunicorn {WORKERS} sync workers; {os.cpu_count()} CPUs.",
        flush=True,
    )
    measured = measure(args, url, manifest, pages, queries)
    print()
    print(table(measured["pages"], pages))
    print(f"\nWhere the {os.cpu_count()} cores went during each page's wrk run:\n")
    print(core_table(measured["pages"], pages))
    startup = measured["startup"]
    hello = measured["pages"]["hello"]
    print(
        f"\nhello at start {hello['rps_start']:,.0f} req/s, at end {hello['rps_end']:,.0f}; "
        f"app first answer {startup['app_first_answer_s']} s after launch; "
        f"worker RSS {startup['app_worker_rss_mb']} MB."
    )
    if "record_reading" in measured["pages"]:
        r = measured["pages"]["record_reading"]
        print(
            f"record a reading: {r['acknowledged']} acknowledged (302), "
            f"{r['rows_written']} rows written."
        )
    print(
        f"Dataset: {manifest['counts']}; seeded in {manifest['seed_seconds']} s; "
        f"{manifest['database_bytes'] / 1e6:,.0f} MB."
    )
    out = args.out or BENCH / "results" / f"{args.db}-{args.scale}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "scale": args.scale,
                "db": args.db,
                "cpus": os.cpu_count(),
                "workers": WORKERS,
                "connections": args.connections,
                "threads": args.threads,
                "duration_s": args.duration,
                "command": " ".join(sys.argv),
                "dataset": {
                    k: manifest[k]
                    for k in ("counts", "seed_seconds", "database_bytes", "seeded_on")
                },
                **measured,
            },
            indent=1,
        )
    )
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
