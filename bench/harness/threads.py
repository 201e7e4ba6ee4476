"""Where a process's time goes, thread by thread, read from outside (Linux /proc): CPU, scheduling
policy, and how often each thread blocked (voluntary context switches), for bench/audio.py and the
storm test.

A JACK client's process thread blocks once per cycle, waiting for the next one; a thread that
blocks more often than that waited for something else too (a mutex another thread held, memory,
the disk). So ``blocks_per_cycle`` of an audio thread above 1 is a finding: its thread waited
inside its cycle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

POLICIES = {0: "normal", 1: "FIFO", 2: "RR", 3: "batch", 5: "idle", 6: "deadline"}
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ThreadTimes:
    """One thread at one moment: its kernel name, CPU seconds so far, policy, switches so far."""

    tid: int
    name: str
    cpu_s: float
    policy: str
    priority: int
    voluntary: int
    involuntary: int


def sample(pid: int) -> dict[int, ThreadTimes]:
    """Every thread of ``pid`` now (a thread that ends while it is read is left out)."""
    out: dict[int, ThreadTimes] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        base = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{base}/stat") as f:
                stat = f.read()
            with open(f"{base}/status") as f:
                status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()  # fields[0] is the state (field 3 of proc(5))
        out[int(tid)] = ThreadTimes(
            int(tid), name, (int(fields[11]) + int(fields[12])) / TICK, POLICIES.get(int(fields[38]), fields[38]),
            int(fields[37]), int(status["voluntary_ctxt_switches"]), int(status["nonvoluntary_ctxt_switches"]))
    return out


@dataclass(frozen=True)
class ThreadUse:
    """A thread over a stretch of wall time."""

    name: str
    tid: int
    cpu_percent: float  # of one core
    policy: str
    blocks_per_s: float  # voluntary context switches a second
    preempted_per_s: float  # involuntary ones

    def blocks_per_cycle(self, cycles_per_s: float) -> float:
        return self.blocks_per_s / cycles_per_s


def usage(before: dict[int, ThreadTimes], after: dict[int, ThreadTimes], wall_s: float) -> list[ThreadUse]:
    """Each thread alive at the end, over ``wall_s`` (a thread born since counts from zero),
    busiest first."""
    rows = []
    for tid, end in after.items():
        start = before.get(tid)
        cpu0, vol0, inv0 = (start.cpu_s, start.voluntary, start.involuntary) if start else (0.0, 0, 0)
        rows.append(ThreadUse(end.name, tid, 100 * (end.cpu_s - cpu0) / wall_s,
                              end.policy + (f" {end.priority}" if end.priority else ""),
                              (end.voluntary - vol0) / wall_s, (end.involuntary - inv0) / wall_s))
    return sorted(rows, key=lambda r: (-r.cpu_percent, r.name))


def by_name(rows: list[ThreadUse]) -> dict[str, float]:
    """CPU percent per thread name (threads of one name summed: torch's workers, a JACK client's two)."""
    out: dict[str, float] = {}
    for r in rows:
        out[r.name] = round(out.get(r.name, 0.0) + r.cpu_percent, 1)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
