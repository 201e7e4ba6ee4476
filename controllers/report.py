"""Counting and reporting what a controller received, without letting bad input flood the log.

A performer's phone or a broken cable can send thousands of bad messages a second: each
controller counts them for the live view and logs at most a few lines per interval, then one
line saying how many were left out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable

from instrument.errors import excerpt
from instrument.live.logs import Burst

ACTIVITY_LENGTH = 50


def new_activity() -> deque:
    """The shared activity list of the live view: (time, source, description), newest last."""
    return deque(maxlen=ACTIVITY_LENGTH)


class Reporter:
    """Counts received and ignored messages of one controller; rate-limited warnings; activity."""

    def __init__(self, source: str, activity: deque | None = None, logger: logging.Logger | None = None,
                 burst: int = 5, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.source = source
        self.activity = activity if activity is not None else new_activity()
        self.log = logger or logging.getLogger(__name__)  # the message names the source
        self.received = 0
        self.ignored = 0
        self.superseded = 0  # values a later one from the same source replaced before they were applied
        self._limit = Burst(burst, interval_s, clock)
        self._lock = threading.Lock()
        self._last_entry: tuple | None = None
        self._last_key: object = None

    def got(self) -> None:
        """One message arrived (counted before it is judged)."""
        self.received += 1

    def ignore(self, why: str) -> None:
        """A message was ignored: logged unless too many came lately, and counted (once said: a
        count that moved means the line is in the log)."""
        self.warn(why)
        self.ignored += 1

    def warn(self, message: str) -> None:
        """A rate-limited warning: ``burst`` per ``interval_s``, then a count of those left out."""
        with self._lock:
            passes, held = self._limit.admit()
        if held:
            self.log.warning("%s: %d more warnings left out of the log", self.source, held)
        if passes:
            self.log.warning("%s: %s", self.source, excerpt(message, 300))

    def did(self, description: str, key: object = None) -> None:
        """Record an applied action for the live view. Entries with the same ``key`` (a fader
        moving) replace the newest one instead of pushing everything else out."""
        entry = (time.time(), self.source, description)
        activity = self.activity
        if key is not None and key == self._last_key and activity and activity[-1] is self._last_entry:
            try:
                activity.pop()
            except IndexError:
                pass
        activity.append(entry)
        self._last_entry, self._last_key = entry, key

    def counts(self) -> str:
        superseded = f", {self.superseded} superseded" if self.superseded else ""
        return f"{self.received} msgs, {self.ignored} ignored{superseded}"
