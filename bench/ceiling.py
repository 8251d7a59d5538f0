"""What a first view would cost without a part of the page: the most that drawing that part
faster could ever save. One process, first views (each request to an address not yet shown),
the whole page and the page without the part taking turns; CPU as bench/cpu.py measures it.

    python bench/ceiling.py --scale chain --page session --without chart,table
    python bench/ceiling.py --scale chain --page patient --without history

Parts: the session page's `chart` (the vitals chart) and `table` (the readings table); the
patient page's `charts` (outcome and peak-rise charts) and `history` (its sessions, scores
and both charts: the page of a patient with none). A part left out is drawn as nothing; the
rest of the page is drawn as usual. An instrument, not a page anyone sees.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from markupsafe import Markup

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.cpu import dataset_arguments, frozen_app  # noqa: E402
from bench.run import BY_NAME, requests_for, send, signed_in_client  # noqa: E402
from infusion_tracker import clinical  # noqa: E402
from infusion_tracker.infusions import page as session_page  # noqa: E402
from infusion_tracker.patients import history  # noqa: E402

PARTS = {
    "session": ("chart", "table"),
    "patient": ("charts", "history"),
}


def no_history(patient) -> history.PatientHistory:
    """The history of a patient with no session and no score."""
    return history.PatientHistory(
        rows=[],
        assessments=[],
        baseline_phq9=None,
        status=clinical.outcome_status(None, []),
        status_kind=clinical.outcome_kind(None, []),
        outcome_chart=None,
        peak_rise_chart=None,
        flagged_phq9=None,
    )


def nothing(*args, **kwargs) -> Markup:
    return Markup("")


def leave_out(parts: list[str]) -> dict:
    """{(module, name): stand-in} for the parts left out."""
    stand_ins = {
        "chart": [(session_page, "vitals_chart", nothing)],
        "table": [(session_page, "readings_table", nothing)],
        "charts": [(history, "_outcome_svg", nothing), (history, "_peak_svg", nothing)],
        "history": [(history, "patient_history", no_history)],
    }
    return {
        (module, name): stand_in
        for part in parts
        for module, name, stand_in in stand_ins[part]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    dataset_arguments(parser, scale="clinic")
    parser.add_argument("--page", choices=sorted(PARTS), default="session")
    parser.add_argument("--without", required=True, help="comma-separated parts (see above)")
    parser.add_argument("--views", type=int, default=80, help="first views, half of each kind")
    args = parser.parse_args()
    parts = [part.strip() for part in args.without.split(",") if part.strip()]
    unknown = set(parts) - set(PARTS[args.page])
    if unknown:
        parser.error(f"the {args.page} page has no part {', '.join(sorted(unknown))}")

    app, manifest = frozen_app(args)
    kinds = {"without": leave_out(parts)}
    kinds["whole"] = {key: getattr(*key) for key in kinds["without"]}
    client = signed_in_client(app, BY_NAME[args.page].role)
    addresses = requests_for(args.page, manifest)
    if len(addresses) < args.views + 2:
        parser.error(f"the dataset has {len(addresses)} addresses for the {args.page} page")

    def draw_as(kind: dict) -> None:
        for (module, name), function in kind.items():
            setattr(module, name, function)

    # One of each first, so that both kinds find the templates compiled and statements cached.
    samples: dict[str, list[float]] = {"whole": [], "without": []}
    sizes: dict[str, list[int]] = {"whole": [], "without": []}  # what was left out shows
    for number, address in enumerate(addresses[: args.views + 2]):
        kind = "without" if number % 2 else "whole"
        draw_as(kinds[kind])
        started = time.process_time()
        response = send(client, args.page, address)
        if number >= 2:
            samples[kind].append((time.process_time() - started) * 1000)
            sizes[kind].append(len(response.data))
    draw_as(kinds["whole"])

    full, less = statistics.median(samples["whole"]), statistics.median(samples["without"])
    print(
        f"{args.page} page, first views ({len(samples['whole'])} of each, taking turns): "
        f"whole {full:.2f} ms CPU (min {min(samples['whole']):.2f}), "
        f"without {'+'.join(parts)} {less:.2f} ms (min {min(samples['without']):.2f}): "
        f"{100 * (1 - less / full):.0f} % less; pages of "
        f"{statistics.mean(sizes['whole']):,.0f} and {statistics.mean(sizes['without']):,.0f} bytes"
    )


if __name__ == "__main__":
    main()
