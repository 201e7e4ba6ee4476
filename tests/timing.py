"""The machine's own timing jitter, measured in the same test as the timing it bounds.

A wall-clock test on a shared VM cannot use fixed bounds: a stall of the whole machine makes any
number late. ``machine_jitter()`` runs a bare sleep-until loop (sleep to a target time, note how
late it woke) in a thread of its own for as long as the test's timed part runs; a timing
assertion then allows its own budget plus what that loop suffered around the same moment. A
stall moves both; a regression of ours (a timing thread 5 ms late) moves only the test's figures,
and fails it (tests/test_timing.py shows it does).

Each event is judged against the stalls near it (``Jitter.near``), not against the run's worst:
one stall of 70 ms in a minute excuses the notes it delayed, not every other note of the run.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from instrument.timing import clock  # the clock every part of the instrument reads


@dataclass
class Jitter:
    """How late a bare sleep-until loop woke, in seconds, over the measured stretch."""

    late: list[float] = field(default_factory=list)
    due: list[float] = field(default_factory=list)  # when each wake-up was due, on ``clock``

    def near(self, start: float, end: float | None = None) -> float:
        """The machine's worst stall around ``start``..``end`` (on ``clock``; ``end`` default
        ``start``): the lateness of each wake-up whose stall (from when it was due until it woke)
        overlaps that stretch; 0.0 when none did."""
        end = start if end is None else end
        n = min(len(self.due), len(self.late))  # the loop may be adding one meanwhile (a module's running Jitter)
        due = np.asarray(self.due[:n])
        late = np.asarray(self.late[:n])
        overlaps = (due <= end) & (due + late >= start)
        return float(late[overlaps].max()) if overlaps.any() else 0.0

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
                time.sleep(left)  # the measurement itself: how late a bare sleep-until wakes
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


def timing_problem(lags: Sequence[float], jitter: Jitter, median_s: float, worst_s: float, due: Sequence[float],
                   early_s: float = 0.0005, before_s: float = 0.05, spare: float = 0.0,
                   near: Sequence[float] | None = None) -> str | None:
    """Why ``lags`` (arrival minus due, seconds) are not on time, or None: never earlier than
    ``early_s``; the median within ``median_s`` plus the loop's median; each within ``worst_s`` plus
    the machine's worst stall near it (``Jitter.near``: from ``before_s`` before it was due, on
    ``clock``, until it arrived; or each lag's own share in ``near``). ``spare``: the share of
    events, the furthest beyond their bound, left unjudged (where a measurement misplaces a few).
    The budgets are ours; the machine's share is measured, event by event."""
    if not lags:
        return None
    assert len(due) == len(lags), (len(due), len(lags))
    ordered = sorted(lags)
    shown = f"lags (ms) {' '.join(f'{x * 1e3:.2f}' for x in lags[:40])}; {jitter}"
    if ordered[0] < -early_s:
        return f"early by {-ordered[0] * 1e3:.2f} ms: {shown}"
    median = ordered[len(ordered) // 2]
    if median > median_s + jitter.median:
        return f"median {median * 1e3:.2f} ms > {median_s * 1e3:.2f} ms + the machine's {jitter.median * 1e3:.2f}: {shown}"
    if near is None:
        near = [jitter.near(d - before_s, d + max(0.0, lag)) for d, lag in zip(due, lags)]
    over = sorted(((lag - worst_s - stall, i) for i, (lag, stall) in enumerate(zip(lags, near))), reverse=True)
    over = [(x, i) for x, i in over[int(spare * len(lags)):] if x > 0]
    if over:
        worst = over[0][1]
        return (f"{len(over)} late: the worst, event {worst + 1}, {lags[worst] * 1e3:.2f} ms > {worst_s * 1e3:.2f} ms + the "
                f"machine's {near[worst] * 1e3:.2f} near it: {shown}")
    return None
