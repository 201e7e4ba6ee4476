"""The machine's own timing jitter, measured in the same test as the timing it bounds.

A wall-clock test on a shared VM cannot use fixed bounds: a stall of the whole machine makes any
number late. ``machine_jitter()`` runs a bare sleep-until loop (sleep to a target time, note how
late it woke) in a thread of its own for as long as the test's timed part runs; a timing
assertion then allows its own budget plus what that loop suffered over the same seconds. A stall
moves both; a regression of ours (a timing thread 5 ms late) moves only the test's figures, and
fails it (tests/test_timing.py shows it does).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

clock = time.perf_counter


@dataclass
class Jitter:
    """How late a bare sleep-until loop woke, in seconds, over the measured stretch."""

    late: list[float] = field(default_factory=list)
    due: list[float] = field(default_factory=list)  # when each wake-up was due, on ``clock``

    def stalls(self, longer_than: float) -> list[float]:
        """When the loop woke more than ``longer_than`` late (due times on ``clock``): the machine stalled."""
        return [due for due, late in zip(self.due, self.late) if late > longer_than]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.late) or [0.0]
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def median(self) -> float:
        return self.quantile(0.5)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    @property
    def max(self) -> float:
        return max(self.late, default=0.0)

    @property
    def stalled(self) -> float:
        """Seconds the loop woke late in all: the time the machine kept from a thread that was
        ready to run (a test that counts events per second counts them over the time left)."""
        return sum(self.late)

    def __str__(self) -> str:
        return (f"bare sleep-until loop: median {self.median * 1e3:.2f} ms, p99 {self.p99 * 1e3:.2f} ms, "
                f"max {self.max * 1e3:.2f} ms over {len(self.late)} wake-ups")


@contextmanager
def machine_jitter(period: float = 0.002) -> Iterator[Jitter]:
    """Measure the machine's wake-up lateness while the block runs (a wake-up every ``period``)."""
    jitter = Jitter()
    stop = threading.Event()

    def loop() -> None:
        target = clock() + period
        while not stop.is_set():
            left = target - clock()
            if left > 0:
                time.sleep(left)
            jitter.late.append(max(0.0, clock() - target))
            jitter.due.append(target)
            target = max(target + period, clock())

    thread = threading.Thread(target=loop, name="jitter", daemon=True)
    thread.start()
    try:
        yield jitter
    finally:
        stop.set()
        thread.join(2)


def timing_problem(lags: Sequence[float], jitter: Jitter, median_s: float, worst_s: float, early_s: float = 0.0005) -> str | None:
    """Why ``lags`` (arrival minus due, seconds) are not on time, or None: never earlier than
    ``early_s``; the median within ``median_s`` plus the loop's median; the worst within ``worst_s``
    plus the loop's worst. The budgets are ours; the machine's share is measured."""
    if not lags:
        return None
    ordered = sorted(lags)
    shown = f"lags (ms) {' '.join(f'{x * 1e3:.2f}' for x in lags[:40])}; {jitter}"
    if ordered[0] < -early_s:
        return f"early by {-ordered[0] * 1e3:.2f} ms: {shown}"
    median = ordered[len(ordered) // 2]
    if median > median_s + jitter.median:
        return f"median {median * 1e3:.2f} ms > {median_s * 1e3:.2f} ms + the machine's {jitter.median * 1e3:.2f}: {shown}"
    if ordered[-1] > worst_s + jitter.max:
        return f"worst {ordered[-1] * 1e3:.2f} ms > {worst_s * 1e3:.2f} ms + the machine's {jitter.max * 1e3:.2f}: {shown}"
    return None
