"""Follow an incoming MIDI clock (``--sync midi-clock``): the tempo, and Start/Continue/Stop.

A clock sends 24 Timing Clock messages (0xF8) per quarter note. Single intervals jitter (the
sender's timer, JACK's period, the OS), so the tempo is the least-squares slope of tick time
against tick number over the last ``window`` ticks: the newest tick 5 ms late moves a 48-tick
mean interval by 0.6 %, the slope by under 0.1 %; ticks far off the line (a stall) are left out. Tick times are rtmidi's own timestamps,
taken as the message arrives, so a busy interpreter does not bend the estimate. The port and its
reading thread are ``instrument.midi.input``'s (messages checked, JACK restarts survived). Knows
nothing of the engine: it calls back.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable, Sequence

from instrument.midi.input import MidiInputPort, call_back
from instrument.midi.messages import CLOCK_TICK, CLOCKS_PER_QUARTER, CONTINUE, START, STOP
from instrument.midi.ports import PRODUCT, label

log = logging.getLogger(__name__)

OUTLIER_S = 0.002  # a tick this far (or 4 median residuals) off the fitted line is left out
GAP_S = 0.5  # a pause this long between ticks (a clock stopped without Stop) starts afresh
DEFAULT_PORT = f"{PRODUCT} clock in"


class MidiClockFollower:
    """Listens on a MIDI input port; calls ``on_tempo(qpm)`` as the estimate updates (every
    ``report_every`` ticks once ``min_ticks`` have come), and ``on_start``, ``on_continue``,
    ``on_stop``. Callbacks run in its listening thread: keep them short."""

    def __init__(self, port: str = "virtual", api: str = "auto", *,
                 on_tempo: Callable[[float], None] | None = None, on_start: Callable[[], None] | None = None,
                 on_continue: Callable[[], None] | None = None, on_stop: Callable[[], None] | None = None,
                 window: int = 48, min_ticks: int = 12, report_every: int = 6, port_name: str = DEFAULT_PORT,
                 flag: str = "--midi-clock-in"):
        """``port``: 'virtual' (our input port ``port_name``, for the clock source to connect to)
        or part of the name of an existing output port to listen to."""
        self.on_tempo, self.on_start, self.on_continue, self.on_stop = on_tempo, on_start, on_continue, on_stop
        self.min_ticks = max(3, min_ticks)
        self.report_every = max(1, report_every)
        self.qpm: float | None = None  # the latest estimate
        self.running = False  # between Start/Continue and Stop
        self.ticks = 0  # since Start (or since listening began)
        self._times: deque[float] = deque(maxlen=window + 1)
        self._now = 0.0  # seconds, from rtmidi's time deltas
        self.input = MidiInputPort(port, api, port_name, self._on_message, timing=True, on_reopen=self._times.clear,
                                   on_bad=lambda why: log.warning("MIDI clock in: %s", why), flag=flag,
                                   api_flag="--midi-api", name="midi-clock-in")
        self.api = self.input.api

    @property
    def port(self) -> str:
        return self.input.port

    @property
    def beats(self) -> float:
        """Quarter notes counted since Start."""
        return self.ticks / CLOCKS_PER_QUARTER

    def status(self) -> str:
        if self.input.lost:
            return f"MIDI clock: in {self.input.status()}"
        tempo = f"{self.qpm:.1f} qpm" if self.qpm else "no clock yet"
        return f"MIDI clock: {tempo}{'' if self.running else ' (stopped)'} on '{self.port}' ({label(self.api)})"

    def close(self) -> None:
        """Stop listening. Idempotent."""
        self.input.close()

    # -- the reading thread -----------------------------------------------------------------
    def _on_message(self, message: Sequence[int], delta: float) -> None:
        self._now += delta
        status = message[0]
        if status == CLOCK_TICK:
            self._tick(self._now)
        elif status in (START, CONTINUE):
            self._times.clear()
            if status == START:
                self.ticks = 0
            self.running = True
            call_back(self.on_start if status == START else self.on_continue)
        elif status == STOP:
            self.running = False
            call_back(self.on_stop)

    def _tick(self, now: float) -> None:
        times = self._times
        if times and now - times[-1] > GAP_S:
            times.clear()
        times.append(now)
        self.ticks += 1
        if len(times) >= self.min_ticks and self.ticks % self.report_every == 0:
            qpm = tempo_from_ticks(list(times))
            if qpm:
                self.qpm = qpm
                call_back(self.on_tempo, qpm)


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares line t = a + b * i through (i, t) points: (a, b)."""
    n = len(points)
    mi = sum(i for i, _ in points) / n
    mt = sum(t for _, t in points) / n
    b = sum((i - mi) * (t - mt) for i, t in points) / sum((i - mi) ** 2 for i, _ in points)
    return mt - b * mi, b


def tempo_from_ticks(times: list[float]) -> float | None:
    """Quarter notes per minute from consecutive clock tick times: the least-squares slope, fitted
    again without the ticks that sit far off the line (a sender or a machine that stalled for a
    moment sends a tick late; one such tick would otherwise bend a short window's tempo)."""
    n = len(times)
    if n < 3:
        return None
    points = list(enumerate(times))
    kept = points
    a, b = _fit(points)
    for _ in range(3):  # each pass fits the line closer to the steady ticks, and finds more strays
        residuals = [abs(t - (a + b * i)) for i, t in points]
        limit = max(OUTLIER_S, 4.0 * sorted(residuals)[n // 2])
        now_kept = [p for p, r in zip(points, residuals) if r <= limit]
        if len(now_kept) < max(3, n // 2) or now_kept == kept:
            break
        kept = now_kept
        a, b = _fit(kept)
    return 60.0 / (CLOCKS_PER_QUARTER * b) if b > 0 else None
