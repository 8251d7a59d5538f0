"""The live suite (issue 9): the app under gunicorn (4 sync workers) on 127.0.0.1, driven over
HTTP like browsers, then checked straight in its database.

1. Fuzzing: Hypothesis drives every form of the session page and patient registration
   (tests/suite/test_fuzz.py, run here through pytest).
2. Concurrency, on SQLite and on PostgreSQL: 20 clients chart into shared and separate
   sessions; every acknowledged (302) reading must be in the database, with no 500 and no
   "database is locked"; two edits from the same version: one wins, the other gets 409;
   ten wrong passwords for one account from one address, across the 4 workers: at most 4
   are tried (the per-username limit, below the lockout threshold), the account not locked.
3. Backup under load (SQLite): `backup` taken mid-run restores into a fresh instance that
   starts, verifies and holds every reading acknowledged before the backup began.
4. Crash, on SQLite and on PostgreSQL: kill -9 gunicorn's master and workers while clients
   write; restart; every acknowledged reading is there, `verify-audit` ok (and on SQLite
   PRAGMA integrity_check ok).
5. Scanners: sqlmap and wapiti signed in as a physician and as the administrator on a demo
   clinic (tests/suite/scanners.py): no finding; every form's CSRF token enforced.

    python tests/suite/run_suite.py [--seconds 20] [--skip-postgres] [--skip-fuzz] [--skip-scan]

Prints a summary and exits 1 on any finding. Every loop is bounded by a deadline and a
request cap; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SECRET_KEY = "suite-only-secret-key-not-for-production"  # noqa: S105
PASSWORD = "suite clinic tablet charting 2026"  # noqa: S105 (throwaway test logins)
PG_BASE = os.environ.get("SUITE_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
WORKERS = 4
CLIENTS = 20
SESSIONS = 6  # 20 clients over 6 sessions: some chart alone, most share
NURSES = ("suite-np1", "suite-np2", "suite-pa1")
MAX_REQUESTS_PER_CLIENT = 2000


@dataclass
class Findings:
    items: list[str] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def fail(self, text: str) -> None:
        self.items.append(text)
        print("  FINDING:", text, flush=True)


# --- an instance: seeded database, gunicorn ----------------------------------------------------


def instance_env(instance: Path, url: str | None) -> dict[str, str]:
    env = {**os.environ, "SECRET_KEY": SECRET_KEY, "INFUSION_TRACKER_INSTANCE": str(instance)}
    env.pop("DATABASE_URL", None)
    if url:
        env["DATABASE_URL"] = url
    env.pop("FLASK_DEBUG", None)
    return env


def seed(instance: Path, url: str | None) -> list[int]:
    """Staff and SESSIONS infusing sessions, through the app's own services and models (in a
    child process, so this process keeps no connection or app state)."""
    code = f"""
from infusion_tracker import create_app
from infusion_tracker.auth.services import create_staff
from infusion_tracker.commands import ensure_schema
from infusion_tracker.extensions import db
from infusion_tracker.models import InfusionSession, Patient
from infusion_tracker.protocols.services import ensure_default_protocol
from infusion_tracker.timeutil import utcnow
from datetime import date, timedelta
app = create_app()
with app.app_context():
    ensure_schema()
    staff = [create_staff(u, "Suite " + u, "np" if "np" in u else "pa", {PASSWORD!r}, via="cli")
             for u in {NURSES!r}]
    doctor = create_staff("suite-md", "Suite Doctor", "physician", {PASSWORD!r}, via="cli")
    protocol = ensure_default_protocol()
    now = utcnow()
    ids = []
    for n in range({SESSIONS}):
        patient = Patient(mrn=f"S{{n:07d}}", first_name="Suite", last_name=f"Patient{{n}}",
                          sex="female", indication="trd", date_of_birth=date(1980, 1, 1))
        db.session.add(patient)
        db.session.flush()
        s = InfusionSession(patient=patient, series_number=1, protocol=protocol,
            room=f"Room {{n % 4 + 1}}", status="infusing",
            scheduled_for=now - timedelta(hours=1), clinician=staff[0],
            physician=doctor, indication="trd", weight_kg=70.0, drug=protocol.drug,
            concentration_mg_per_ml=protocol.concentration_mg_per_ml,
            dose_mg_per_kg=protocol.dose_mg_per_kg, total_mg=round(70 * protocol.dose_mg_per_kg, 1),
            duration_min=protocol.infusion_minutes, checked_in_at=now - timedelta(minutes=50),
            started_at=now - timedelta(minutes=45))
        db.session.add(s)
        db.session.flush()
        ids.append(s.id)
    db.session.commit()
    print("IDS", *ids)
"""
    result = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", code], cwd=ROOT, env=instance_env(instance, url),
        capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{result.stdout}\n{result.stderr}")
    line = next(x for x in result.stdout.splitlines() if x.startswith("IDS"))
    return [int(x) for x in line.split()[1:]]


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """gunicorn, 4 sync workers forked from a preloaded app (README's production command), in
    its own process group (so kill -9 reaches every worker)."""

    def __init__(self, instance: Path, url: str | None, log: Path):
        self.port = free_port()
        self.log = log.open("a")
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class",
             "sync", "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning",
             "--timeout", "60", "--preload", "infusion_tracker:create_app()"],
            cwd=ROOT, env=instance_env(instance, url), stdout=self.log, stderr=self.log,
            start_new_session=True,
        )
        deadline = time.time() + 60
        while True:
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"gunicorn did not start; see {log}")
            time.sleep(0.1)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def kill(self) -> None:
        """kill -9 the master and every worker at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def flask(instance: Path, url: str | None, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-m", "flask", "--app", "infusion_tracker", *args],
        cwd=ROOT, env=instance_env(instance, url), capture_output=True, text=True,
        timeout=120, check=False,
    )


# --- clients ----------------------------------------------------------------------------------


def token(html: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{re.escape(name)}"', html)
    if not match:
        raise LookupError(name)
    return unescape(match.group(1))


def signed_in(base: str, username: str, password: str = PASSWORD) -> requests.Session:
    client = requests.Session()
    page = client.get(base + "/login", timeout=30).text
    answer = client.post(base + "/login", timeout=30, allow_redirects=False, data={
        "csrf_token": token(page, "csrf_token"), "username": username, "password": password})
    if answer.status_code != 302:
        raise RuntimeError(f"sign-in as {username} answered {answer.status_code}")
    return client


@dataclass
class Load:
    requests: int = 0
    acknowledged: list[tuple[float, str]] = field(default_factory=list)  # (time, note)
    statuses: dict[int, int] = field(default_factory=dict)
    locked: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1


def charting_client(base: str, cookies, infusion_id: int, name: str, deadline: float,
                    load: Load, stop: threading.Event) -> None:
    """Draw the session page, chart a reading with its unique note, repeat until the deadline."""
    client = requests.Session()
    client.cookies.update(cookies)
    for n in range(MAX_REQUESTS_PER_CLIENT):
        if time.time() > deadline or stop.is_set():
            return
        note = f"suite {name} {n}"
        try:
            page = client.get(f"{base}/infusions/{infusion_id}", timeout=30)
            load.count(page.status_code)
            if page.status_code != 200:
                continue
            html = page.text
            data = {
                "reading-csrf_token": token(html, "reading-csrf_token"),
                "reading-submission_key": token(html, "reading-submission_key"),
                "reading-taken_at": token(html, "reading-taken_at"),
                "reading-phase": "infusion", "reading-systolic": "124",
                "reading-diastolic": "78", "reading-heart_rate": "70", "reading-resp_rate": "14",
                "reading-spo2": "98", "reading-o2_room_air": "y", "reading-note": note,
            }
            sent = time.time()
            answer = client.post(f"{base}/infusions/{infusion_id}/readings", data=data,
                                 timeout=30, allow_redirects=False)
        except requests.RequestException as error:
            if not stop.is_set():
                with load.lock:
                    load.errors.append(f"{name}: {type(error).__name__}")
            continue
        load.count(answer.status_code)
        if "database is locked" in answer.text:
            with load.lock:
                load.locked += 1
        if answer.status_code == 302:
            with load.lock:
                load.acknowledged.append((sent, note))


def run_load(base: str, infusion_ids: list[int], seconds: float,
             stop: threading.Event | None = None) -> Load:
    load = Load()
    stop = stop or threading.Event()
    cookies = {user: signed_in(base, user).cookies for user in NURSES}
    deadline = time.time() + seconds
    threads = [
        threading.Thread(target=charting_client, daemon=True, args=(
            base, cookies[NURSES[i % len(NURSES)]], infusion_ids[i % len(infusion_ids)],
            f"c{i}", deadline, load, stop))
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    load.threads = threads
    return load


def wait_for_acks(load: Load, count: int, limit_s: float) -> None:
    """Until `count` readings are acknowledged (at most `limit_s`)."""
    deadline = time.time() + limit_s
    while len(load.acknowledged) < count and time.time() < deadline:
        time.sleep(0.1)


def join(load: Load) -> Load:
    for thread in load.threads:
        thread.join(timeout=60)
    return load


def notes_in_database(url: str | None, instance: Path) -> set[str]:
    if url is None:
        with closing(sqlite3.connect(instance / "infusion_tracker.db")) as db:
            rows = db.execute("SELECT note FROM reading WHERE note LIKE 'suite %'").fetchall()
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as db:
            rows = db.execute("SELECT note FROM reading WHERE note LIKE 'suite %'").fetchall()
    return {note for (note,) in rows}


def form_values(form_html: str) -> dict[str, str]:
    """What a browser would post for a form left as drawn."""
    fields = {}
    for tag in re.findall(r"<(?:input|textarea)[^>]*>", form_html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and ('type="checkbox"' not in tag and 'type="radio"' not in tag
                     or " checked" in tag):
            fields[unescape(name.group(1))] = unescape(value.group(1)) if value else ""
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>',
                                    form_html, re.S):
        chosen = re.search(r'<option selected value="([^"]*)"', options)
        fields[unescape(name)] = unescape(chosen.group(1)) if chosen else ""
    return fields


def conflicting_edits(label: str, base: str, infusion_id: int, findings: Findings) -> None:
    """Two clinicians open the session's details form at the same version and both save."""
    clients = [signed_in(base, NURSES[0]), signed_in(base, NURSES[1])]
    forms = []
    for client in clients:
        html = client.get(f"{base}/infusions/{infusion_id}", timeout=30).text
        start = html.index(f'action="/infusions/{infusion_id}/edit"')
        form_html = html[start: html.index("</form>", start)]
        forms.append(form_values(form_html))
    answers = []
    for n, (client, fields) in enumerate(zip(clients, forms, strict=True)):
        escort = next(name for name in fields if name.endswith("escort_name"))
        answer = client.post(f"{base}/infusions/{infusion_id}/edit", timeout=30,
                             allow_redirects=False, data={**fields, escort: f"Escort {n}"})
        answers.append(answer.status_code)
    findings.figures[f"{label}: conflicting edits"] = answers
    if sorted(answers) != [302, 409]:
        findings.fail(f"{label}: two edits from one version answered {answers}, not one 302 "
                      "and one 409")


# --- the runs ---------------------------------------------------------------------------------


def throttle_check(label: str, base: str, url: str | None, instance: Path,
                   findings: Findings) -> None:
    """Wrong passwords for one account from one address, spread over the 4 workers: the
    per-username limit (below the lockout threshold) holds across workers, so the account is
    not locked (with a per-process store each worker allowed its own 4)."""
    client = requests.Session()
    answers = []
    for _ in range(10):
        page = client.get(base + "/login", timeout=30).text
        answers.append(client.post(base + "/login", timeout=30, allow_redirects=False, data={
            "csrf_token": token(page, "csrf_token"), "username": "suite-md",
            "password": "not the password at all 1"}).status_code)
    findings.figures[f"{label}: 10 wrong passwords for one account"] = answers
    if url is None:
        with closing(sqlite3.connect(instance / "infusion_tracker.db")) as db:
            locked = db.execute("SELECT locked_until FROM staff WHERE username = 'suite-md'"
                                ).fetchone()[0]
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as db:
            locked = db.execute("SELECT locked_until FROM staff WHERE username = 'suite-md'"
                                ).fetchone()[0]
    allowed = sum(1 for code in answers if code != 429)
    if locked is not None or allowed > 4:
        findings.fail(f"{label}: one address had {allowed} password attempts at one account "
                      f"across the workers (limit 4){' and locked it out' if locked else ''}")


def check_load(label: str, load: Load, found: set[str], log: Path, findings: Findings) -> None:
    acked = {note for _, note in load.acknowledged}
    missing = acked - found
    server_log = log.read_text() if log.exists() else ""
    locked = load.locked + server_log.count("database is locked")
    findings.figures[f"{label}: requests"] = load.requests
    findings.figures[f"{label}: acknowledged readings"] = len(acked)
    findings.figures[f"{label}: statuses"] = dict(sorted(load.statuses.items()))
    if missing:
        findings.fail(f"{label}: {len(missing)} acknowledged readings missing, e.g. "
                      f"{sorted(missing)[:3]}")
    if load.statuses.get(500):
        findings.fail(f"{label}: {load.statuses[500]} answers were 500")
    if locked:
        findings.fail(f'{label}: "database is locked" {locked} times')
    if "Traceback" in server_log:
        findings.fail(f"{label}: a traceback in the server log ({log})")
    if load.errors:
        findings.fail(f"{label}: {len(load.errors)} requests failed: {load.errors[:3]}")
    if not acked:
        findings.fail(f"{label}: no reading was acknowledged at all")


def sqlite_run(work: Path, seconds: float, findings: Findings) -> None:
    instance = work / "sqlite"
    ids = seed(instance, None)
    log = work / "gunicorn-sqlite.log"
    started = time.perf_counter()
    server = Server(instance, None, log)
    try:
        load = run_load(server.base, ids, seconds)
        # Backup under load: a third of the way in, note what is acknowledged, then copy.
        wait_for_acks(load, 10, seconds * 0.6)
        with load.lock:
            before_backup = {note for _, note in load.acknowledged}
        backup = work / "under-load.db"
        backed = flask(instance, None, "backup", str(backup))
        if backed.returncode != 0:
            findings.fail(f"backup under load failed: {backed.stderr or backed.stdout}")
        join(load)
        conflicting_edits("SQLite", server.base, ids[0], findings)
        throttle_check("SQLite", server.base, None, instance, findings)
    finally:
        server.stop()
    check_load("SQLite", load, notes_in_database(None, instance), log, findings)
    findings.timings["SQLite load"] = time.perf_counter() - started
    if backup.exists():
        restore_backup(work, instance, backup, before_backup, findings)
    crash_run(instance, None, ids, work, findings)


def restore_backup(
    work: Path, instance: Path, backup: Path, before: set[str], findings: Findings
) -> None:
    started = time.perf_counter()
    fresh = work / "restored"
    fresh.mkdir()
    # The audit chain's key and the TOTP sealing key live outside the database (issue 9): a
    # restore takes them along.
    shutil.copy2(instance / "audit_key", fresh / "audit_key")
    shutil.copy2(instance / "totp_key", fresh / "totp_key")
    checked = flask(fresh, None, "restore-check", str(backup))
    if checked.returncode != 0:
        findings.fail(f"restore-check of the backup: {checked.stdout}{checked.stderr}")
    shutil.copyfile(backup, fresh / "infusion_tracker.db")
    verified = flask(fresh, None, "verify-audit")
    if verified.returncode != 0:
        findings.fail(f"verify-audit on the restored copy: {verified.stderr}")
    server = Server(fresh, None, work / "gunicorn-restored.log")
    try:
        signed_in(server.base, NURSES[0])  # it starts and serves a sign-in
    finally:
        server.stop()
    missing = before - notes_in_database(None, fresh)
    findings.figures["backup: readings acknowledged before it began"] = len(before)
    if missing:
        findings.fail(f"the restored backup lacks {len(missing)} readings acknowledged "
                      "before the backup began")
    findings.timings["backup restore"] = time.perf_counter() - started


def crash_run(instance: Path, url: str | None, ids: list[int], work: Path,
              findings: Findings) -> None:
    """kill -9 gunicorn mid-write, restart on the same database; nothing acknowledged lost."""
    label = "crash (PostgreSQL)" if url else "crash (SQLite)"
    started = time.perf_counter()
    log = work / f"gunicorn-{'postgres' if url else 'sqlite'}-crash.log"
    server = Server(instance, url, log)
    stop = threading.Event()
    load = run_load(server.base, ids, 60, stop)
    wait_for_acks(load, 20, 30)
    server.kill()  # mid-write: master and workers at once
    stop.set()
    join(load)
    server.log.close()
    findings.figures[f"{label}: readings acknowledged before kill -9"] = len(load.acknowledged)
    if url is None:
        with closing(sqlite3.connect(instance / "infusion_tracker.db")) as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            findings.fail(f"{label}: integrity_check says {integrity}")
    again = Server(instance, url, log)  # restarts on the same database
    try:
        signed_in(again.base, NURSES[0])
    finally:
        again.stop()
    missing = {note for _, note in load.acknowledged} - notes_in_database(url, instance)
    if missing:
        findings.fail(f"{label}: {len(missing)} acknowledged readings are gone")
    verified = flask(instance, url, "verify-audit")
    findings.figures[f"{label}: verify-audit"] = (verified.stdout or verified.stderr).strip()
    if verified.returncode != 0:
        findings.fail(f"{label}: verify-audit failed: {verified.stderr}")
    if not load.acknowledged:
        findings.fail(f"{label}: nothing was acknowledged before the kill")
    findings.timings[label] = time.perf_counter() - started


def postgres_run(work: Path, seconds: float, findings: Findings) -> None:
    import psycopg

    name = f"suite_{os.getpid()}"
    admin = PG_BASE.replace("postgresql+psycopg", "postgresql") + "/postgres"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        findings.fail(f"PostgreSQL unreachable at {PG_BASE}: {error}")
        return
    url = f"{PG_BASE}/{name}"
    started = time.perf_counter()
    instance = work / "postgres"
    log = work / "gunicorn-postgres.log"
    try:
        ids = seed(instance, url)
        server = Server(instance, url, log)
        try:
            load = join(run_load(server.base, ids, seconds))
            conflicting_edits("PostgreSQL", server.base, ids[1], findings)
            throttle_check("PostgreSQL", server.base, url, instance, findings)
        finally:
            server.stop()
        check_load("PostgreSQL", load, notes_in_database(url, instance), log, findings)
        verified = flask(instance, url, "verify-audit")
        if verified.returncode != 0:
            findings.fail(f"PostgreSQL: verify-audit failed: {verified.stderr}")
        findings.timings["PostgreSQL load"] = time.perf_counter() - started
        crash_run(instance, url, ids, work, findings)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_demo(instance: Path) -> subprocess.Popen:
    """The demo clinic (`flask seed-demo`: signed and unsigned sessions, addenda, a ledger with
    discrepancies, protocols with versions), started early: it takes ~40 s."""
    return subprocess.Popen(  # noqa: S603 (our own interpreter)
        [sys.executable, "-m", "flask", "--app", "infusion_tracker", "seed-demo"],
        cwd=ROOT, env=instance_env(instance, None), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


# wapiti's time per role: the physician reaches most pages and forms.
WAPITI_SECONDS = {"physician": 180, "admin": 90}


def scan_run(work: Path, seeding: subprocess.Popen, findings: Findings) -> None:
    """sqlmap and wapiti, signed in as a physician and as the administrator
    (tests/suite/scanners.py)."""
    from infusion_tracker.demo import DEMO_PASSWORD
    from tests.suite import scanners

    started = time.perf_counter()
    output, _ = seeding.communicate(timeout=300)
    if seeding.returncode != 0:
        findings.fail(f"scanners: seed-demo failed: {output}")
        return
    instance = work / "scan"
    log = work / "gunicorn-scan.log"

    def rows() -> int:
        with closing(sqlite3.connect(instance / "infusion_tracker.db")) as db:
            tables = [t for (t,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            return sum(db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)

    server = Server(instance, None, log)
    try:
        # The physician first: the administrator's scan may reset other people's passwords.
        for role, username in (("physician", "drpatel"), ("admin", "office")):
            client = signed_in(server.base, username, DEMO_PASSWORD)
            found = scanners.crawl(server.base, client)
            findings.figures[f"scan ({role}): pages, GET targets, forms"] = (
                len(found.pages), len(found.gets), len(found.posts))
            refused = scanners.csrf_enforced(server.base, client, found, rows)
            for failure in refused:
                findings.fail(f"scan ({role}): CSRF not enforced: {failure}")
            cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
            # The physician's tools run at once (each spends most of its time waiting). The
            # administrator's run one after the other, sqlmap in one process: their pages
            # include the audit log, which every write by a concurrent attack changes, and
            # sqlmap reads a page that changes between its true and false probes as a
            # boolean-blind injection (seen: `page` on /admin/audit, an int it never queries).
            alone = role == "admin"
            with ThreadPoolExecutor(1 if alone else 2) as pool:
                sqlmap = pool.submit(scanners.sqlmap, server.base, cookie, found, work, role,
                                     parts=1 if alone else scanners.SQLMAP_PARTS)
                wapiti = pool.submit(
                    scanners.wapiti, server.base, client.cookies, work, role,
                    csrf_proven=not refused, crawl_=found, seconds=WAPITI_SECONDS[role])
            for result in (sqlmap.result(), wapiti.result()):
                label = f"{result.tool} ({role})"
                findings.timings[label] = result.seconds
                for name, value in result.figures.items():
                    findings.figures[f"{label}: {name}"] = value
                findings.figures[f"{label}: findings"] = len(result.findings)
                for item in result.findings:
                    findings.fail(item)
            still = client.get(server.base + "/account/two-factor", timeout=30,
                               allow_redirects=False)
            if still.status_code != 200:
                findings.fail(f"scan ({role}): the scan lost its sign-in (a page answered "
                              f"{still.status_code}), so it covered less than it says")
    finally:
        server.stop()
    server_log = log.read_text()
    if "Traceback" in server_log:
        # The first traceback itself: the log goes with the scratch folder.
        first = server_log[server_log.index("Traceback"):][:6000]
        findings.fail(f"scanners: {server_log.count('Traceback')} tracebacks in the server "
                      f"log ({log}); from the first:\n{first}")
    findings.timings["scanners"] = time.perf_counter() - started


def fuzz_run(findings: Findings) -> None:
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-m", "slow",
         "tests/suite/test_fuzz.py"],
        cwd=ROOT, env={**os.environ, "INFUSION_SUITE": "1"}, capture_output=True, text=True,
        timeout=600, check=False,
    )
    tail = result.stdout.strip().splitlines()[-1:] or [""]
    findings.figures["fuzzing"] = tail[0]
    counts = re.findall(r"fuzz requests: (\d+)", result.stdout)
    if counts:
        findings.figures["fuzzing: requests"] = int(counts[-1])
    if result.returncode != 0:
        findings.fail("fuzzing: " + "\n".join(result.stdout.splitlines()[-30:]))
    findings.timings["fuzzing"] = time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="load per backend")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-fuzz", action="store_true")
    parser.add_argument("--skip-scan", action="store_true")
    args = parser.parse_args()
    findings = Findings()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="infusion-suite-") as scratch:
        work = Path(scratch)
        seeding = None if args.skip_scan else seed_demo(work / "scan")
        if not args.skip_fuzz:
            print("== fuzzing (Hypothesis)", flush=True)
            fuzz_run(findings)
        print(f"== SQLite: {CLIENTS} clients, {WORKERS} workers, {args.seconds:g} s; "
              "backup under load; kill -9", flush=True)
        sqlite_run(work, args.seconds, findings)
        if not args.skip_postgres:
            print(f"== PostgreSQL: {CLIENTS} clients, {WORKERS} workers, {args.seconds:g} s",
                  flush=True)
            postgres_run(work, args.seconds, findings)
        if seeding:
            print("== scanners: sqlmap and wapiti, signed in as a physician and as the admin",
                  flush=True)
            scan_run(work, seeding, findings)
    findings.timings["total"] = time.perf_counter() - started
    print("\n== summary")
    for name, value in findings.figures.items():
        print(f"  {name}: {value}")
    for name, seconds in findings.timings.items():
        print(f"  time, {name}: {seconds:.1f} s")
    print(f"  findings: {len(findings.items)}")
    for item in findings.items:
        print("   -", item)
    return 1 if findings.items else 0


if __name__ == "__main__":
    sys.exit(main())
