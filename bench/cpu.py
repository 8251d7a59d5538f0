"""CPU per request, in-process: `time.process_time()` around one Flask test-client request
(SQLite runs in this process, so its work counts too), median of N after a warm-up. Unlike
wrk's requests/s it hardly moves with other processes' load on a shared machine. Also the
Python function calls of one request (test client included), a count no load moves at all.
The app is frozen once built, as wsgi.py freezes it in a served worker (gc.freeze).

    python bench/cpu.py --scale tiny
    python bench/cpu.py --scale tiny --pages healthz,search_name --repeat 20
    python bench/cpu.py --scale chain --pages patient,session --first-views

--first-views: each request to an address not yet shown (the first round of a page that goes
round 100 patients or sessions, as bench/run.py's first-views column): what a view costs
when nothing it shows is kept yet. Its Python calls are those of the next address's first view.

Reuses the dataset and the page list of bench/run.py (seed it first with run.py).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.run import (  # noqa: E402
    BY_NAME,
    FIRST_ROUND_MIN,
    PAGES,
    SECRET_KEY,
    clinic_now_text,
    database_url,
    first_request,
    make_app,
    requests_for,
    send,
    signed_in_client,
)


def cpu_ms(client, page: str, requests: list, restore) -> tuple[float, float]:
    """(median, minimum) CPU ms of `requests`, one after another: on a loaded machine the
    minimum moves least (other processes' load only ever adds cache misses and frequency
    drops)."""
    samples = []
    for request in requests:
        restore()
        started = time.process_time()
        send(client, page, request)
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples), min(samples)


def form_cookie(client, page: str):
    """For a form's page: a function that gives the client back the session cookie it has
    now, as bench/wrk.lua does after each redirect (a form's message, not followed to the
    page that shows it, would pile up in the cookie: one more to unpack and sign each post).
    For any other page, a function that does nothing."""
    if BY_NAME[page].method != "POST":
        return lambda: None
    value = client.get_cookie("session").value
    return lambda: client.set_cookie("session", value)


def python_calls(client, page: str, request, restore) -> int:
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event in ("call", "c_call")

    restore()
    sys.setprofile(count)
    try:
        send(client, page, request)
    finally:
        sys.setprofile(None)
    return calls


def dataset_arguments(parser: argparse.ArgumentParser, scale: str) -> None:
    """The dataset to measure on, as bench/run.py seeded it."""
    parser.add_argument("--scale", default=scale)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--data-dir", type=Path, default=BENCH / ".data")
    parser.add_argument("--pg-database")


def frozen_app(args: argparse.Namespace) -> tuple[object, dict]:
    """The app on the dataset of `args` (dataset_arguments), and the dataset's manifest."""
    os.environ["SECRET_KEY"] = SECRET_KEY
    url = database_url(args.db, args.scale, args.data_dir.resolve(), args.pg_database)
    manifest = json.loads((args.data_dir / f"{args.db}-{args.scale}.json").read_text())
    manifest["taken_at"] = clinic_now_text(url)
    app = make_app(url)
    # As wsgi.py does once the app is built: the collector's full passes then walk only what
    # requests made since, as in a gunicorn worker (unfrozen, a pass in 80 first views of a
    # session page walked the whole app: 1.5 ms a view here, 0.2 frozen).
    gc.freeze()
    return app, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    dataset_arguments(parser, scale="tiny")
    default = [p.name for p in PAGES if p.name not in ("hello", "record_reading")]
    parser.add_argument("--pages", default=",".join(default))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--first-views",
        action="store_true",
        help="one request to each address, none shown before (pages going round >= 20)",
    )
    args = parser.parse_args()
    app, manifest = frozen_app(args)
    clients: dict[str, object] = {}
    for page in [p.strip() for p in args.pages.split(",") if p.strip()]:
        role = BY_NAME[page].role
        client = clients.get(role) or clients.setdefault(role, signed_in_client(app, role))
        if args.first_views:
            addresses = requests_for(page, manifest)
            if len(addresses) < FIRST_ROUND_MIN:
                print(f"{page:15} goes round {len(addresses)} address(es): no first views")
                continue
            # The first address warms the process (templates compiled, statements cached).
            restore = form_cookie(client, page)
            send(client, page, addresses[0])
            count = min(args.repeat, len(addresses) - 2)
            median, least = cpu_ms(client, page, addresses[1 : 1 + count], restore)
            calls = python_calls(client, page, addresses[1 + count], restore)
        else:
            request = first_request(client, page, manifest)
            restore = form_cookie(client, page)
            send(client, page, request)  # warm-up
            median, least = cpu_ms(client, page, [request] * args.repeat, restore)
            calls = python_calls(client, page, request, restore)
        print(f"{page:15} {median:8.2f} ms CPU (min {least:.2f}) {calls:8,} Python calls",
              flush=True)


if __name__ == "__main__":
    main()
