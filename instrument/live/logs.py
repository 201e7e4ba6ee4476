"""Logging that never makes a real-time thread wait on a terminal or a file.

Every record goes into a queue (``QueueHandler``: a non-blocking append) and one background
thread formats and writes it: to stderr, or, while the live view owns the screen, into the
view's list of recent warnings. A flood of identical warnings (a controller sending garbage
2,000 times a second) is rate-limited per message so it cannot fill the screen or the disk.
"""

from __future__ import annotations

import logging
import logging.handlers
import math
import queue
import sys
import threading
import time
from collections import deque
from typing import Callable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Burst:
    """At most ``burst`` events per ``period`` seconds: the one rate limit of the log (per message,
    ``RateLimit``) and of each controller's warnings (``controllers.report.Reporter``). A window
    opens with the first event after the last one closed; what was held back in a window is
    said once, with the first event of the next."""

    def __init__(self, burst: int, period: float, clock: Callable[[], float] = time.monotonic):
        self.burst, self.period, self._clock = burst, period, clock
        self._start = -math.inf
        self._count = 0
        self._held = 0

    def admit(self) -> tuple[bool, int]:
        """(whether this event passes, how many the previous window held back: nonzero once)."""
        now = self._clock()
        held = 0
        if now - self._start >= self.period:
            held, self._held = self._held, 0
            self._start, self._count = now, 0
        if self._count >= self.burst:
            self._held += 1
            return False, held
        self._count += 1
        return True, held


class RateLimit(logging.Filter):
    """Passes a given message at most ``burst`` times per ``period`` seconds, then says how many it dropped."""

    def __init__(self, period: float = 5.0, burst: int = 3):
        super().__init__()
        self.period, self.burst = period, burst
        self._seen: dict[tuple[str, str], Burst] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        limit = self._seen.get(key)
        if limit is None:
            if len(self._seen) >= 10_000:
                self._seen.clear()
            limit = self._seen[key] = Burst(self.burst, self.period)
        passes, dropped = limit.admit()
        if dropped:
            record.msg = f"{record.msg} ({dropped} more like it dropped)"
        return passes


class LogPipe:
    """The queue between the instrument's threads and whatever shows the log."""

    def __init__(self, level: int = logging.INFO):
        self.queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self.recent: deque[str] = deque(maxlen=8)  # warnings and errors, for the live view
        self.sink: Callable[[str], None] | None = None  # None: stderr
        self._formatter = logging.Formatter(FORMAT, "%H:%M:%S")
        self._handler = logging.handlers.QueueHandler(self.queue)
        self._handler.addFilter(RateLimit())
        self._root = logging.getLogger()
        self._saved = (self._root.level, list(self._root.handlers))
        self._root.handlers = [self._handler]
        self._root.setLevel(level)
        self._stop = object()
        self._thread = threading.Thread(target=self._drain, name="log-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            record = self.queue.get()
            if record is self._stop:
                return
            try:
                line = self._formatter.format(record)
                if record.levelno >= logging.WARNING:
                    self.recent.append(f"{record.levelname.lower()}: {record.getMessage()}")
                sink = self.sink
                if sink is not None:
                    sink(line)
                else:
                    print(line, file=sys.stderr, flush=True)
            except Exception:  # a broken sink must not end logging
                pass

    def close(self) -> None:
        """Write what is queued and give the root logger back."""
        self.queue.put(self._stop)  # type: ignore[arg-type]
        self._thread.join(2.0)
        self._root.handlers = self._saved[1]
        self._root.setLevel(self._saved[0])


def start_logging(verbose: bool = False) -> LogPipe:
    """Route all logging through a queue (call once, from the main thread)."""
    return LogPipe(logging.DEBUG if verbose else logging.INFO)
