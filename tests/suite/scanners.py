"""Scanners (issue 9, the suite, item 2): sqlmap and wapiti (the Debian packages) against a
running instance on 127.0.0.1, signed in (the session cookie handed to the tools), over the
pages and forms that sign-in reaches.

- The crawl is ours (bounded: MAX_PAGES, PER_PATTERN pages per URL shape): every link and
  form a role reaches, minus EXCLUDED (sign-out ends the scan's own sign-in; a wrong current
  password counts towards the lockout, which would end it too).
- sqlmap reads the crawl as a Burp log (every GET with parameters, every POST form with the
  values a browser would send), --batch, level 1, risk 1; its CSV of injectable parameters
  is the finding list.
- wapiti crawls again itself (scope: the site, depth and time bounded) and attacks with the
  modules in WAPITI_MODULES; its JSON report's vulnerabilities, and its "Internal Server
  Error" anomalies, are findings.
- CSRF: wapiti knows only bare names like csrf_token, while the session page draws one form
  per object with a prefixed token (``void-reading-12-csrf_token``). Every crawled form is
  posted here with its token forged and with it missing: each must answer 400 and write
  nothing. Only then is wapiti's "Lack of anti CSRF token" on a form whose token is prefixed
  dropped as a false positive (counted in the summary).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import requests

MAX_PAGES = 150
PER_PATTERN = 4  # pages of one URL shape (/patients/N): the first two are enough
EXCLUDED = ("/logout", "/account/password", "/static/", "/healthz")
NOT_HTML = (".csv", "/fhir", "/print", "/openapi.json")
SQLMAP_SECONDS = 300
SQLMAP_PARTS = 4
SQLMAP = shutil.which("sqlmap") or "/usr/bin/sqlmap"
# Debian's wapiti 3.0.4 is run through this shim, which changes two things:
# - it crashes on Python 3.11 as soon as a URL is excluded (-x): wildcard_translate puts the
#   (?ms) flags at the end of the pattern, which 3.11 refuses; replaced (same meaning);
# - it builds every attack module, chosen or not, and the wapp module then downloads its
#   database from the internet: only the chosen modules are built (the suite's traffic stays on
#   127.0.0.1; the environment's proxy settings below catch anything else).
WAPITI = ["/usr/bin/python3", "-c", """
import re, sys
import wapitiCore.net.crawler as crawler
from wapitiCore.attack import attack
crawler.wildcard_translate = lambda pattern: re.compile(
    "(?ms)" + ".*".join(re.escape(part) for part in pattern.split("*")) + r"\\Z")
chosen = sys.argv[sys.argv.index("-m") + 1].split(",")
attack.modules[:] = [name for name in attack.modules if name[4:] in chosen]
from wapitiCore.main.wapiti import wapiti_main
sys.argv[0] = "wapiti"
sys.exit(wapiti_main())
"""]
NOWHERE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
WAPITI_SECONDS = 150  # --max-scan-time; the process itself gets a margin on top
# blindsql (sleep payloads) is left to sqlmap, which runs its time-based tests where the
# heuristics react.
WAPITI_MODULES = "sql,xss,permanentxss,exec,file,redirect,crlf,csrf"
TOKEN = re.compile(r"(?:^|-)csrf_token$")


class _Page(HTMLParser):
    """Links and forms of one page (forms: method, action, fields as a browser posts them)."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.forms: list[tuple[str, str, dict[str, str]]] = []
        self._form: dict[str, str] | None = None
        self._select: str | None = None
        self._text: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            self._form = {}
            self.forms.append(((a.get("method") or "get").lower(), a.get("action") or "",
                               self._form))
        elif self._form is None or not a.get("name"):
            if tag == "option" and self._select and self._form is not None and (
                    "selected" in a or not self._form.get(self._select)):
                self._form[self._select] = a.get("value") or ""
            return
        elif tag == "input":
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._form[a["name"]] = a.get("value") or "y"
                else:
                    self._form.setdefault(a["name"], "")
            elif kind != "submit":
                self._form[a["name"]] = a.get("value") or ""
        elif tag == "textarea":
            self._text = a["name"]
            self._form[a["name"]] = ""
        elif tag == "select":
            self._select = a["name"]
            self._form.setdefault(a["name"], "")

    def handle_data(self, data):
        if self._text and self._form is not None:
            self._form[self._text] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._text = None


# Values that let a form through validation, so the scanners reach the services behind it.
FILL = {
    "systolic": "124", "diastolic": "78", "heart_rate": "70", "resp_rate": "14", "spo2": "98",
    "reason": "scan", "note": "scan", "first_name": "Scan", "last_name": "Patient",
    "date_of_birth": "1980-01-01", "q": "a", "explanation": "scan", "text": "scan",
}


def filled(fields: dict[str, str]) -> dict[str, str]:
    return {name: value or FILL.get(name.rsplit("-", 1)[-1], "")
            for name, value in fields.items()}


@dataclass
class Crawl:
    pages: list[str] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)  # URLs with parameters
    # action, fields, the page it is on
    posts: list[tuple[str, dict[str, str], str]] = field(default_factory=list)


def shape(url: str) -> str:
    parts = urlsplit(url)
    keys = ",".join(sorted(k for k, _ in parse_qsl(parts.query, keep_blank_values=True)))
    return re.sub(r"\d+", "N", parts.path) + "?" + keys


def crawl(base: str, client: requests.Session) -> Crawl:
    """Breadth first from /, same origin, bounded by MAX_PAGES and PER_PATTERN."""
    found = Crawl()
    queue, seen, shapes, posted = ["/"], {"/"}, {}, set()
    while queue and len(found.pages) < MAX_PAGES:
        path = queue.pop(0)
        answer = client.get(base + path, timeout=30, allow_redirects=False)
        if answer.is_redirect and answer.headers["Location"].startswith("/"):
            location = answer.headers["Location"]  # e.g. a role's home page from /
            if location not in seen and not location.startswith(EXCLUDED):
                seen.add(location)
                queue.append(location)
            continue
        if answer.status_code != 200 or "text/html" not in answer.headers.get("Content-Type", ""):
            continue
        found.pages.append(path)
        parser = _Page()
        parser.feed(answer.text)
        targets = list(parser.links)
        for method, action, fields in parser.forms:
            action = urljoin(path, action or path)
            if method == "get":
                targets.append(action.split("?")[0] + "?" + urlencode(filled(fields)))
            elif not action.startswith(EXCLUDED) and shape(action) not in posted:
                posted.add(shape(action))
                found.posts.append((action, filled(fields), path))
        for link in targets:
            url = urljoin(path, link.split("#")[0])
            parts = urlsplit(url)
            if parts.netloc and base.split("//")[1] != parts.netloc:
                continue
            local = parts.path + ("?" + parts.query if parts.query else "")
            if not local or local in seen or local.startswith(EXCLUDED):
                continue
            seen.add(local)
            key = shape(local)
            shapes[key] = shapes.get(key, 0) + 1
            if shapes[key] > PER_PATTERN:
                continue
            if parts.query:
                found.gets.append(local)
            if not local.endswith(NOT_HTML) and "/fhir" not in local:
                queue.append(local)
    return found


# --- CSRF: prove the prefixed tokens are enforced -------------------------------------------


def csrf_enforced(base: str, client: requests.Session, crawl_: Crawl, count_rows) -> list[str]:
    """Post every crawled form with its token forged, then without it: each must be a 400
    that writes nothing. Returns what failed (empty: every token is enforced)."""
    failures = []
    for action, fields, _page in crawl_.posts:
        names = [name for name in fields if TOKEN.search(name)]
        if not names:
            failures.append(f"{action}: no CSRF token field in the form")
            continue
        for forged in ({**fields, names[0]: "wapiti"},
                       {k: v for k, v in fields.items() if k != names[0]}):
            before = count_rows()
            answer = client.post(base + action, data=forged, timeout=30, allow_redirects=False)
            if answer.status_code != 400 or count_rows() != before:
                failures.append(f"{action}: a forged or missing {names[0]} answered "
                                f"{answer.status_code}")
                break
    return failures


# --- sqlmap ---------------------------------------------------------------------------------

SEPARATOR = "=" * 54


def burp_log(base: str, cookie: str, crawl_: Crawl) -> list[str]:
    """The crawl as Burp log entries, the format `sqlmap -l` reads."""
    host = base.split("//")[1]
    blocks = []
    for url in crawl_.gets:
        blocks.append(f"GET {url} HTTP/1.1\nHost: {host}\nCookie: {cookie}\n\n")
    for action, fields, page in crawl_.posts:
        body = urlencode(fields)
        blocks.append(
            f"POST {action} HTTP/1.1\nHost: {host}\nCookie: {cookie}\nReferer: {base}{page}\n"
            f"Content-Type: application/x-www-form-urlencoded\nContent-Length: {len(body)}\n\n"
            f"{body}\n")
    return [f"{SEPARATOR}\n{block}{SEPARATOR}\n\n" for block in blocks]


@dataclass
class ScanResult:
    tool: str
    role: str
    seconds: float
    findings: list[str] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)


def sqlmap(base: str, cookie: str, crawl_: Crawl, work: Path, role: str,
           dbms: str = "SQLite", parts: int = SQLMAP_PARTS) -> ScanResult:
    """Every parameter gets sqlmap's heuristic probes (quotes, casts, DBMS error patterns);
    the ones that react get the full level-1 tests for the known back end (--smart, --dbms:
    the whole matrix over every field would take most of an hour). The targets are split
    over SQLMAP_PARTS processes: sqlmap spends most of its time waiting (it sleeps between
    the two requests of its stability check), the four gunicorn workers do not."""
    started = time.perf_counter()
    result = ScanResult("sqlmap", role, 0)
    blocks = burp_log(base, cookie, crawl_)
    processes = []
    for part in range(parts):
        name = f"sqlmap-{role}-{part}"
        (work / f"{name}.log").write_text("".join(blocks[part::parts]))
        # sqlmap reads its targets from stdin whenever stdin is not a terminal: give it one.
        terminal, tty = os.openpty()
        out = (work / f"{name}.out").open("w")
        processes.append((name, terminal, tty, out, subprocess.Popen(  # noqa: S603
            [SQLMAP, "-l", str(work / f"{name}.log"), "--batch", "--level", "1", "--risk",
             "1", "--dbms", dbms, "--smart", "--threads", "2", "--time-sec", "2",
             "--output-dir", str(work / name), "--results-file", str(work / f"{name}.csv"),
             "--disable-coloring", "--skip-waf", "--answers", "follow=N"],
            stdin=tty, stdout=out, stderr=subprocess.STDOUT)))
    deadline = time.time() + SQLMAP_SECONDS
    stdout = ""
    for name, terminal, tty, out, process in processes:
        try:
            process.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            # A slow machine ends the scan short; that is coverage lost, not a vulnerability:
            # the summary shows it, and what sqlmap did test is still read below.
            stopped = result.figures.get("parts stopped at the time limit", 0)
            result.figures["parts stopped at the time limit"] = stopped + 1
        for handle in (terminal, tty):
            os.close(handle)
        out.close()
        stdout += (work / f"{name}.out").read_text()
        results = work / f"{name}.csv"
        if results.exists():
            with results.open() as handle:
                for row in csv.DictReader(handle):
                    if row.get("Parameter"):
                        result.findings.append(
                            f"sqlmap ({role}): injectable {row.get('Place')} parameter "
                            f"{row['Parameter']} at {row.get('Target URL')}")
    result.seconds = time.perf_counter() - started
    result.figures["targets"] = len(blocks)
    result.figures["parameters probed"] = len(re.findall(
        r"testing if \w+ parameter '[^']+' is dynamic", stdout))
    result.figures["parameters tested in full (heuristics reacted)"] = len(re.findall(
        r"testing for SQL injection on \w+ parameter", stdout))
    for line in re.findall(r".*(?:is vulnerable|appears to be '.*' injectable).*", stdout):
        result.findings.append(f"sqlmap ({role}): {line.strip()}")
    return result


# --- wapiti ---------------------------------------------------------------------------------


def wapiti(base: str, cookies: requests.cookies.RequestsCookieJar, work: Path, role: str,
           csrf_proven: bool, crawl_: Crawl, seconds: float = WAPITI_SECONDS) -> ScanResult:
    """wapiti started on the pages of our crawl that hold forms or queries, and its attacks,
    in about `seconds`:
    half for its crawl (--max-scan-time bounds only the crawl in 3.0.4), the rest shared
    by the modules (--max-attack-time, checked between two attacked requests)."""
    started = time.perf_counter()
    jar = {"127.0.0.1": {"/": {c.name: {"value": c.value, "expires": None, "secure": False,
                                         "port": None, "version": 0} for c in cookies}}}
    cookie_file = work / f"wapiti-{role}-cookies.json"
    cookie_file.write_text(json.dumps(jar))
    report = work / f"wapiti-{role}.json"
    result = ScanResult("wapiti", role, 0)
    command = [
        *WAPITI, "-u", base + "/", "--scope", "folder", "-c", str(cookie_file),
        "-m", WAPITI_MODULES, "-d", "1", "--max-links-per-page", "1",
        "--max-files-per-dir", "8", "--max-scan-time", str(round(seconds / 2)),
        "--max-attack-time", str(round(seconds / 2 / (WAPITI_MODULES.count(",") + 1))),
        "-t", "20", "-f", "json", "-o", str(report),
        "--store-session", str(work / f"wapiti-{role}-session"), "--flush-session",
        "--no-bugreport", "-v", "1",
    ]
    for excluded in EXCLUDED:
        command += ["-x", f"{base}{excluded}*"]
    for kind in NOT_HTML:  # exports and PDFs: slow to make, and no forms in them
        command += ["-x", f"{base}/*{kind}*"]
    # Its crawler parses a page in seconds, and goes breadth first: it starts on the pages
    # that hold forms (then on to the forms) and one query of each path, and follows one link
    # per page, so that it reaches the forms within its crawl time.
    starts = dict.fromkeys(page for _action, _fields, page in crawl_.posts)
    starts |= dict.fromkeys({url.split("?")[0]: url for url in crawl_.gets}.values())
    for page in starts:
        command += ["-s", base + page]
    with (work / f"wapiti-{role}.out").open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                   env={**os.environ, **NOWHERE})
        try:
            process.wait(timeout=seconds * 2 + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            result.findings.append(f"wapiti ({role}) did not stop within {seconds * 2 + 60} s")
    result.seconds = time.perf_counter() - started
    if not report.exists():
        result.findings.append(f"wapiti ({role}) wrote no report")
        return result
    data = json.loads(report.read_text())
    attacked = set(re.findall(r"^\[\+\] (GET|POST) (\S+)", (work / f"wapiti-{role}.out")
                              .read_text(errors="replace"), re.M))
    result.figures["requests attacked (GET, POST)"] = (
        sum(1 for method, _ in attacked if method == "GET"),
        sum(1 for method, _ in attacked if method == "POST"))
    filtered = 0
    for category, items in data.get("vulnerabilities", {}).items():
        for item in items:
            request = item.get("http_request", "")
            prefixed = re.search(r"[\w-]+-csrf_token=", request)
            if (category == "Cross Site Request Forgery" and csrf_proven and prefixed
                    and "Lack of anti CSRF token" in item.get("info", "")):
                filtered += 1
                continue
            result.findings.append(f"wapiti ({role}): {category} at {item.get('method')} "
                                   f"{item.get('path')}: {item.get('info')}")
    for category, items in data.get("anomalies", {}).items():
        if items:
            result.figures[f"anomalies: {category}"] = len(items)
        if category == "Internal Server Error":
            for item in items:
                result.findings.append(f"wapiti ({role}): 500 at {item.get('method')} "
                                       f"{item.get('path')}")
    result.figures["CSRF reports dropped (prefixed token, proven enforced)"] = filtered
    return result
