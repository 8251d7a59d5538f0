"""Where the machine's cores went while wrk drove a page: the server under test (gunicorn's
master and workers), PostgreSQL (every process of a server on this machine), wrk itself, the
rest, and what the hypervisor took from this virtual machine (steal). Read from /proc (Linux),
each as a percentage of one core: a 2-core machine has 200 to give.

The app, PostgreSQL and the load client share the same cores here, so a page's requests/s is
bounded by what all three spend on one request; the split says which one to make cheaper (the
issue's PostgreSQL recording, bench/RESULTS.md, Stop 38).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")  # /proc's unit of CPU time, per second


def _machine() -> tuple[int, int]:
    """(ticks busy, ticks stolen) summed over the cores since boot (/proc/stat's first line:
    user nice system idle iowait irq softirq steal; guest time is counted in user)."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return user + nice + system + irq + softirq, steal


def _ticks(pid: int) -> int:
    """User and system CPU ticks of a process; 0 once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (the 14th and 15th fields)


def children(pid: int) -> list[int]:
    """The processes `pid` started (gunicorn's workers)."""
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in listed.split()]


def _postgres() -> list[int]:
    """Every process of a PostgreSQL server on this machine (postmaster, backends, writers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@dataclass(frozen=True)
class Snapshot:
    at: float
    busy: int
    steal: int
    server: int
    postgres: dict[int, int]
    children: float  # CPU seconds of this process's waited-for children (wrk, once it exits)


def snapshot(server_pid: int) -> Snapshot:
    busy, steal = _machine()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Snapshot(
        at=time.perf_counter(),
        busy=busy,
        steal=steal,
        server=sum(_ticks(pid) for pid in (server_pid, *children(server_pid))),
        postgres={pid: _ticks(pid) for pid in _postgres()},
        children=usage.ru_utime + usage.ru_stime,
    )


def core_use(before: Snapshot, after: Snapshot, requests: int) -> dict:
    """Percent of one core each part used between the snapshots, and the CPU milliseconds per
    request of the server, PostgreSQL and wrk. A PostgreSQL process that ended in between is
    not counted (backends are kept by the app's pool, so few do)."""
    seconds = after.at - before.at
    postgres = sum(ticks - before.postgres.get(pid, 0) for pid, ticks in after.postgres.items())
    server_s = (after.server - before.server) / TICKS
    postgres_s = postgres / TICKS
    wrk_s = after.children - before.children
    busy_s = (after.busy - before.busy) / TICKS

    def percent(cpu_seconds: float) -> float:
        return round(cpu_seconds / seconds * 100, 1)

    def per_request(cpu_seconds: float) -> float:
        return round(cpu_seconds * 1000 / max(requests, 1), 3)

    return {
        "cores": os.cpu_count(),
        "busy_pct": percent(busy_s),
        "steal_pct": percent((after.steal - before.steal) / TICKS),
        "server_pct": percent(server_s),
        "postgres_pct": percent(postgres_s),
        "wrk_pct": percent(wrk_s),
        "other_pct": percent(max(0.0, busy_s - server_s - postgres_s - wrk_s)),
        "server_ms_per_request": per_request(server_s),
        "postgres_ms_per_request": per_request(postgres_s),
        "wrk_ms_per_request": per_request(wrk_s),
    }
