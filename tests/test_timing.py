"""The timing thread on time, judged against the machine's own jitter (tests/timing.py); and
proof that such a judgement fails a timing thread that is 5 ms late."""

from __future__ import annotations

import heapq
import time

import pytest

from instrument import timing as scheduler_module
from instrument.timing import Scheduler, clock
from tests.timing import machine_jitter, timing_problem

pytestmark = pytest.mark.realtime

MEDIAN_S, WORST_S = 0.0005, 0.003  # the timing thread's own budget: it sleeps the last ~2 ms in C, to the instant


def run_events(count: int = 60, spacing: float = 0.01) -> tuple[list[float], object]:
    """Schedule ``count`` events ``spacing`` apart; each notes how late it ran."""
    lags: list[float] = []
    s = Scheduler(realtime=False)
    with machine_jitter() as jitter:
        s.start()
        start = clock() + 0.05
        for i in range(count):
            s.at(start + i * spacing, lambda due: lags.append(clock() - due))
        deadline = time.monotonic() + count * spacing + 2
        while len(lags) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        s.stop()
    assert len(lags) == count
    return lags, jitter


def test_the_timing_thread_runs_events_on_time():
    lags, jitter = run_events()
    problem = timing_problem(lags, jitter, MEDIAN_S, WORST_S)
    assert problem is None, problem


class _LateHeap:
    """heapq for the timing thread, 5 ms late taking each due event off the heap."""

    heappush = staticmethod(heapq.heappush)

    @staticmethod
    def heappop(heap):
        time.sleep(0.005)
        return heapq.heappop(heap)


def test_a_timing_thread_5_ms_late_fails_the_check(monkeypatch):
    monkeypatch.setattr(scheduler_module, "heapq", _LateHeap)
    lags, jitter = run_events()
    problem = timing_problem(lags, jitter, MEDIAN_S, WORST_S)
    assert problem is not None and "median" in problem, (problem, jitter)
