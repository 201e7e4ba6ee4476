"""Run a command of ``run.py`` with tracemalloc on, writing what holds the memory that grew.

``bench/soak.py --tracemalloc S`` starts ``play`` through this file: every S seconds it takes a
snapshot and writes, to the file given, the Python allocations that grew most since the first
snapshot (taken once the performance has played a minute), grouped by where they were made (a
few frames of traceback), with the traced total and the process's RSS beside it. RSS that grows
while the traced total stays flat is memory Python does not allocate (torch, the C allocator).

    python bench/memory_trace.py --every 60 --out trace.txt -- run.py play ...
"""

from __future__ import annotations

import argparse
import runpy
import sys
import threading
import time
import tracemalloc
from pathlib import Path

FRAMES = 6  # frames of traceback kept per allocation: enough to see the owner past a library
TOP = 25


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _own(frame: tracemalloc.Frame) -> bool:
    return "tracemalloc" not in frame.filename and "memory_trace" not in frame.filename


def report(first: tracemalloc.Snapshot, now: tracemalloc.Snapshot, elapsed: float) -> str:
    """The allocations that grew most between the two snapshots, as text."""
    traced = sum(s.size for s in now.statistics("filename"))
    lines = [f"== {elapsed:.0f} s: traced {traced / 2**20:.1f} MB, RSS {rss_mb():.1f} MB"]
    for stat in now.compare_to(first, "traceback")[:TOP]:
        if stat.size_diff <= 0:
            break
        frames = [f for f in stat.traceback if _own(f)]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames[:FRAMES])
        lines.append(f"{stat.size_diff / 2**20:+8.2f} MB {stat.count_diff:+8d} blocks  {where}")
    return "\n".join(lines) + "\n"


def watch(every: float, out: Path, warmup: float) -> None:
    """The watcher thread: a first snapshot after ``warmup`` s, then a report every ``every`` s."""
    started = time.monotonic()
    time.sleep(warmup)
    first = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    while True:
        time.sleep(every)
        now = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        with out.open("a") as file:
            file.write(report(first, now, time.monotonic() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=float, default=60.0, help="seconds between reports (default 60)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the first snapshot (default 60)")
    parser.add_argument("--out", required=True, help="file the reports are appended to")
    parser.add_argument("script", help="the script to run (run.py)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    args = parser.parse_args()
    tracemalloc.start(FRAMES + 2)
    threading.Thread(target=watch, args=(args.every, Path(args.out), args.warmup), name="memory-trace",
                     daemon=True).start()
    sys.argv = [args.script, *args.args]
    runpy.run_path(args.script, run_name="__main__")


if __name__ == "__main__":
    main()
