"""Start-up of the app under gunicorn (issue 8: first answer within 1 s of launching gunicorn on
an existing database; worker memory under 150 MB RSS after the run).

For each mode (with and without --preload), launches gunicorn with 2 sync workers on a seeded
dataset, times launch → first 200 from /healthz, and adds up the CPU the master and its workers
had used by then (a figure other processes' load hardly moves, unlike the wall time). Modes
alternate run by run. After the last run of each mode, wrk drives /healthz and a signed-in
page, and each worker's memory is read: RSS, and PSS (shared pages split between the
processes sharing them, which is what --preload saves).

    python bench/startup.py --scale tiny --runs 5
    python bench/startup.py --root /path/to/other/checkout   # serve another checkout's code

The app's bytecode is written first (README's production steps; --no-compile leaves it out).

Seed the dataset first with bench/run.py.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.run import (  # noqa: E402
    LOGINS,
    SECRET_KEY,
    WORKERS,
    Browser,
    compile_bytecode,
    database_url,
    free_port,
    requests_for,
    run_wrk,
    sign_in,
)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def workers_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def memory_mb(pid: int) -> dict[str, float]:
    sizes = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            sizes[name.lower()] = round(int(rest.split()[0]) / 1024, 1)
    return sizes


def launch(root: Path, url: str, preload: bool, log) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class",
               "sync", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    command += ["--preload"] if preload else []
    env = {**os.environ, "SECRET_KEY": SECRET_KEY, "DATABASE_URL": url}
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [*command, "infusion_tracker.wsgi:app"], cwd=root, env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, port


def first_answer(process: subprocess.Popen, port: int, started: float) -> float:
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        if process.poll() is not None or time.perf_counter() - started > 60:
            raise RuntimeError("gunicorn did not answer /healthz")
        time.sleep(0.005)


def drive(port: int, manifest: dict, seconds: int, workdir: Path) -> dict[str, float]:
    """wrk on /healthz and on the patient list (a nurse), as bench/run.py drives them."""
    from bench.seed import PASSWORD

    options = argparse.Namespace(threads=2, connections=16, duration=seconds)
    rates = {}
    lines = requests_for("healthz", manifest)
    rates["healthz"] = run_wrk(port, lines, "", 200, options, workdir)["rps"]
    browser = Browser(port)
    sign_in(browser, LOGINS["nurse"], PASSWORD)
    lines = [("GET", "/patients/", "")]
    rates["patients"] = run_wrk(port, lines, browser.cookie, 200, options, workdir)["rps"]
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--data-dir", type=Path, default=BENCH / ".data")
    parser.add_argument("--root", type=Path, default=BENCH.parent, help="the checkout to serve")
    parser.add_argument("--runs", type=int, default=5, help="launches per mode")
    parser.add_argument("--modes", default="plain,preload")
    parser.add_argument("--wrk-seconds", type=int, default=5, help="0: no wrk, no memory")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="serve without writing the app's bytecode first (where PYTHONDONTWRITEBYTECODE is "
        "set, every launch then compiles the app)",
    )
    args = parser.parse_args()
    if not args.no_compile:
        compile_bytecode(args.root)
    data_dir = args.data_dir.resolve()
    url = database_url("sqlite", args.scale, data_dir)
    manifest = json.loads((data_dir / f"sqlite-{args.scale}.json").read_text())
    modes = [m.strip() for m in args.modes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="infusion-startup-"))
    results: dict[str, dict] = {m: {"wall": [], "cpu": []} for m in modes}
    with (workdir / "gunicorn.log").open("w") as log:
        for run in range(args.runs):
            for mode in modes:
                started = time.perf_counter()
                process, port = launch(args.root, url, mode == "preload", log)
                try:
                    wall = first_answer(process, port, started)
                    pids = [process.pid, *workers_of(process.pid)]
                    cpu = sum(cpu_seconds(pid) for pid in pids)
                    results[mode]["wall"].append(wall)
                    results[mode]["cpu"].append(cpu)
                    print(f"{mode:8} run {run + 1}: first answer {wall:.2f} s, "
                          f"CPU {cpu:.2f} s (master + {len(pids) - 1} workers)", flush=True)
                    if run == args.runs - 1 and args.wrk_seconds:
                        results[mode]["rps"] = drive(port, manifest, args.wrk_seconds, workdir)
                        results[mode]["master"] = memory_mb(process.pid)
                        results[mode]["workers"] = [memory_mb(p) for p in workers_of(process.pid)]
                finally:
                    process.terminate()
                    process.wait(timeout=30)
    print(f"\n{args.root}, {os.cpu_count()} CPUs, {WORKERS} workers, {args.runs} launches per "
          "mode, median (all)\n")
    print("| mode | launch → first /healthz 200 | CPU by then (master + workers) "
          "| worker RSS / PSS after wrk (MB) | master RSS / PSS (MB) |")
    print("|---|---:|---:|---|---|")
    for mode, r in results.items():
        walls = ", ".join(f"{w:.2f}" for w in r["wall"])
        cpus = ", ".join(f"{c:.2f}" for c in r["cpu"])
        workers = "; ".join(f"{w['rss']:.0f} / {w['pss']:.0f}" for w in r.get("workers", []))
        master = r.get("master")
        master = f"{master['rss']:.0f} / {master['pss']:.0f}" if master else "—"
        print(f"| {mode} | {statistics.median(r['wall']):.2f} s ({walls}) | "
              f"{statistics.median(r['cpu']):.2f} s ({cpus}) | {workers or '—'} | {master} |")
    if args.wrk_seconds:
        for mode, r in results.items():
            print(f"{mode}: wrk req/s " + ", ".join(f"{k} {v:,.0f}" for k, v in r["rps"].items()))


if __name__ == "__main__":
    main()
