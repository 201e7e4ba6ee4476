"""Where a sound stream is on ``clock()``: the one mapping from times to stream positions that both
built-in sounds use (the numpy synth's samples, FluidSynth's sequencer ticks).

A stream advances at ``rate`` positions a second, and a reading says which position is being
rendered at a clock time and how long until it sounds (``lead``). Position 0 therefore sounds at
about ``origin = now + lead - position / rate``. A reading is late by whatever held its reader up
(a callback that woke late, a thread descheduled between reading the position and the clock),
never early, and that passes with the next reading: so the estimate is the earliest origin read
over the last ``window_s``. When the stream loses time (an underrun: the device played on while
we were late; a JACK dummy server on a loaded machine does this many times a second), its origin
moves later for good: the window forgets the old origin within ``window_s``, and with ``follow_s``
sooner, as soon as every reading of the last ``follow_s`` (two at least) is more than ``drop_s``
later than the estimate. Clock drift (some ppm) is followed as it goes.
"""

from __future__ import annotations

from collections import deque


class StreamClock:
    """Times on ``clock()`` to stream positions and back, from readings of the stream."""

    def __init__(self, rate: float, window_s: float, follow_s: float | None = None, drop_s: float = 0.004):
        self.rate = float(rate)
        self.window, self.follow, self.drop = window_s, follow_s, drop_s
        self._reads: deque[tuple[float, float]] = deque()  # (clock, origin), origin rising: the earliest first
        self._recent: deque[tuple[float, float]] = deque()  # every reading of the last follow_s
        self.origin: float | None = None
        self.losses = 0  # times the stream lost time (its origin moved later for good)
        self.lost_at = float("-inf")  # when it last did, on clock()

    def read(self, now: float, position: float, lead: float = 0.0, span_s: float = 0.0) -> None:
        """Stream ``position`` is being rendered at ``now`` and sounds ``lead`` seconds later.
        ``span_s``: remember readings over at least this long (two blocks of a stream whose blocks
        are longer than the window)."""
        reading = (now, now + lead - position / self.rate)
        if self.follow is not None:
            recent = self._recent
            recent.append(reading)
            while recent[0][0] < now - self.follow:
                recent.popleft()
            if self.origin is not None and len(recent) >= 2 and min(o for _, o in recent) > self.origin + self.drop:
                self._reads.clear()  # the stream lost time: only what was read since counts
                self.losses += 1
                self.lost_at = now
                for item in recent:
                    self._push(item)
            else:
                self._push(reading)
        else:
            self._push(reading)
        reads, window = self._reads, max(self.window, span_s)
        while len(reads) > 1 and reads[0][0] < now - window:
            reads.popleft()
        self.origin = reads[0][1]

    def _push(self, reading: tuple[float, float]) -> None:
        reads = self._reads
        while reads and reads[-1][1] >= reading[1]:  # a monotonic deque: the earliest origin is first
            reads.pop()
        reads.append(reading)

    def position(self, t: float) -> int:
        """The stream position that sounds at ``t`` (seconds on ``clock``)."""
        return int(round((t - self.origin) * self.rate))

    def time(self, position: float) -> float:
        """When stream position ``position`` sounds, on ``clock``."""
        return self.origin + position / self.rate
