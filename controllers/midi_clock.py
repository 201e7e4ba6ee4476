"""Follow an incoming MIDI clock (``--sync midi-clock``): the tempo, and Start/Continue/Stop.

A clock sends 24 Timing Clock messages (0xF8) per quarter note. Single intervals jitter (the
sender's timer, JACK's period, the OS), so the tempo is the least-squares slope of tick time
against tick number over the last ``window`` ticks: the newest tick 5 ms late moves a 48-tick
mean interval by 0.6 %, the slope by under 0.1 %; ticks far off the line (a stall) are left out. Tick times are rtmidi's own timestamps,
taken as the message arrives, so a busy interpreter does not bend the estimate. Messages are
polled from rtmidi's queue by a thread of ours rather than taken in a callback: a callback
runs inside JACK's process cycle and would wait there for the GIL, and a client late for its
cycle loses messages. Knows nothing of the engine: it calls back.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable

import rtmidi

from instrument.errors import UsageError
from instrument.midi.ports import PRODUCT, find_port, label, open_client

log = logging.getLogger("controllers.midi_clock")

TICK, START, CONTINUE, STOP = 0xF8, 0xFA, 0xFB, 0xFC
TICKS_PER_QUARTER = 24
OUTLIER_S = 0.002  # a tick this far (or 4 median residuals) off the fitted line is left out
GAP_S = 0.5  # a pause this long between ticks (a clock stopped without Stop) starts afresh
POLL_S = 0.002  # how often the queue is read: Start and Stop are reported this late at most
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
        self._in, self.api = open_client(rtmidi.MidiIn, api, port_name)
        try:
            if port.strip().lower() == "virtual":
                self._in.open_virtual_port(port_name)
                self.port = port_name
            else:
                ports = self._in.get_ports()
                index = find_port(ports, port, flag=flag, kind="output")
                self._in.open_port(index, port_name)
                self.port = ports[index]
        except UsageError:
            self._in.delete()
            raise
        except Exception as error:
            self._in.delete()
            raise UsageError(f"{flag} {port}: cannot open it with {label(self.api)} ({error})") from None
        # Every type passes rtmidi's filter: its time deltas then cover every message received.
        self._in.ignore_types(sysex=False, timing=False, active_sense=False)
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="midi-clock-in", daemon=True)
        self._thread.start()

    @property
    def beats(self) -> float:
        """Quarter notes counted since Start."""
        return self.ticks / TICKS_PER_QUARTER

    def status(self) -> str:
        tempo = f"{self.qpm:.1f} qpm" if self.qpm else "no clock yet"
        return f"MIDI clock: {tempo}{'' if self.running else ' (stopped)'} on '{self.port}' ({label(self.api)})"

    def close(self) -> None:
        """Stop listening. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(1.0)
        try:
            self._in.close_port()
            self._in.delete()
        except Exception as error:
            log.debug("closing the clock input: %s", error)

    # -- the listening thread ---------------------------------------------------------------
    def _listen(self) -> None:
        while not self._stop.is_set():
            event = self._in.get_message()
            if event is None:
                self._stop.wait(POLL_S)
            else:
                self._on_message(*event)

    def _on_message(self, message: list[int], delta: float) -> None:
        self._now += delta
        if not message:
            return
        status = message[0]
        if status == TICK:
            self._tick(self._now)
        elif status in (START, CONTINUE):
            self._times.clear()
            if status == START:
                self.ticks = 0
            self.running = True
            self._call(self.on_start if status == START else self.on_continue)
        elif status == STOP:
            self.running = False
            self._call(self.on_stop)

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
                self._call(self.on_tempo, qpm)

    def _call(self, callback: Callable | None, *args: object) -> None:
        if callback is not None:
            try:
                callback(*args)
            except Exception:
                log.exception("MIDI clock callback failed")


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
    return 60.0 / (TICKS_PER_QUARTER * b) if b > 0 else None
