"""Waiting for a condition, never for a fixed time: the one poll loop of the tests and the benchmarks.

A fixed sleep stands in for a condition ("the message was handled by now") that a loaded machine
may not have met yet, and wastes its length on an idle one. ``wait_for`` polls the condition
itself and fails, saying what it waited for, only when the timeout (a bound for a stalled machine,
not the expected time) passes.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, what: str | Callable[[], str] = "the condition",
             step: float = 0.02) -> T:
    """Poll ``condition()`` every ``step`` seconds until it returns something true, and return that.

    After ``timeout`` seconds it is asked once more; if it is still false, AssertionError says
    ``what`` was waited for (a callable is asked only then, so it can show the state at that moment)
    and the last value.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            value = condition()
            if value:
                return value
            said = what() if callable(what) else what
            raise AssertionError(f"waited {timeout:g} s for {said}; last {value!r}")
        time.sleep(step)  # the poll's own pace
