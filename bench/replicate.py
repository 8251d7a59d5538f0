"""A chain-sized stand-in built from a seeded `clinic` SQLite dataset in minutes: the clinic's
finished sessions (with their patients, pump events, readings and assessments) copied nine
more times with shifted ids, as ten clinics with the same history would hold them. The audit
trail is the clinic's alone (re-chaining ten million rows costs as much as seeding `chain`), so
this is for what reads sessions and readings (the quality report), not for the audit pages.

    python bench/replicate.py /work/benchdata/clinic.sqlite /work/benchdata/replica --copies 10

writes `<out>/chain.sqlite` and `<out>/sqlite-chain.json` (the clinic manifest with the new
counts), which `bench/run.py --scale chain --data-dir <out>` then reuses.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

# table -> (its id's offset key, {column: offset key}); offsets are multiples of the table's
# largest id, so copy k of a row gets id + k × max(id).
SHIFTS = {
    "patient": ("patient", {}),
    "infusion_session": ("infusion_session", {"patient_id": "patient"}),
    "infusion_event": ("infusion_event", {"infusion_id": "infusion_session"}),
    "reading": ("reading", {"infusion_id": "infusion_session", "corrects_id": "reading"}),
    "assessment": (
        "assessment",
        {"patient_id": "patient", "infusion_id": "infusion_session", "corrects_id": "assessment"},
    ),
}
# Only finished sessions are copied: today's board and planned list stay the clinic's.
FINISHED = "(SELECT id FROM infusion_session WHERE id <= :max_session AND status = 'discharged')"
WHERE = {
    "patient": "id <= :max_patient",
    "infusion_session": "id <= :max_session AND status = 'discharged'",
    "infusion_event": f"infusion_id IN {FINISHED}",
    "reading": f"infusion_id IN {FINISHED}",
    "assessment": f"id <= :max_assessment AND (infusion_id IS NULL OR infusion_id IN {FINISHED})",
}


def replicate(source: Path, out: Path, copies: int) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    target = out / "chain.sqlite"
    with closing(sqlite3.connect(source)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(source, target)
    with closing(sqlite3.connect(target)) as connection:
        largest = {
            table: connection.execute(f"SELECT max(id) FROM {table}").fetchone()[0]  # noqa: S608
            for table in SHIFTS
        }
        params = {f"max_{name.removeprefix('infusion_')}": n for name, n in largest.items()}
        for copy in range(1, copies):
            started = time.perf_counter()
            for table, (own, columns) in SHIFTS.items():
                names = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
                shifted = {"id": own, **columns}
                values = []
                for name in names:
                    if name in shifted:
                        values.append(f"{name} + {copy * largest[shifted[name]]}")
                    elif table == "patient" and name == "mrn":
                        values.append(f"'IT-' || printf('%06d', id + {copy * largest['patient']})")
                    else:
                        values.append(name)
                connection.execute(
                    f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608 (our own names)
                    f"SELECT {', '.join(values)} FROM {table} WHERE {WHERE[table]}",
                    params,
                )
            connection.commit()
            print(f"  copy {copy}: {time.perf_counter() - started:.0f} s", flush=True)
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in (*SHIFTS, "audit_event")
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a seeded clinic.sqlite")
    parser.add_argument("out", type=Path, help="directory for chain.sqlite and its manifest")
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    counts = replicate(args.source, args.out, args.copies)
    manifest = json.loads((args.source.parent / "sqlite-clinic.json").read_text())
    manifest["counts"] = counts
    manifest["replicated_from"] = f"{args.source} × {args.copies}"
    manifest["seed_seconds"] = round(time.perf_counter() - started, 1)
    manifest["database_bytes"] = (args.out / "chain.sqlite").stat().st_size
    (args.out / "sqlite-chain.json").write_text(json.dumps(manifest, indent=1))
    print(f"{counts}; {manifest['seed_seconds']} s; {manifest['database_bytes'] / 1e6:,.0f} MB")


if __name__ == "__main__":
    main()
