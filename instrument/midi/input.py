"""A MIDI input port read by a thread of ours, that survives bad messages and a JACK restart.

Used by every MIDI input (the controllers' knobs and keys, the clock follower). Messages are
taken from rtmidi's queue by polling rather than in rtmidi's callback: under JACK the callback
runs inside the server's process cycle and would wait there for the GIL, and a client late for
its cycle loses messages. The same thread (``instrument.midi.base``, shared with MIDI out):

- checks every message (``messages.problem``) before the handler sees it: a malformed one is
  counted, reported and dropped, so it can never poison what the handler keeps;
- watches the JACK server and the named port: when either goes, the input says so (``lost``, in
  its status line); when it is back, the input opens its port again and carries on;
- knows when each message arrived (``arrived``), to well under a millisecond, though it reads them
  up to ``poll_s`` later: rtmidi's timestamps (the time since the message before, from the
  driver's clock) summed, and placed on ``clock()`` by the poll that came soonest after its
  message over the last ``ARRIVAL_WINDOW_S`` (a poll is never before what it reads). A musician's
  notes are heard at their times, not the poll's.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable, Sequence

import rtmidi

from instrument.midi.base import WATCH_S, BasePort
from instrument.midi.messages import problem
from instrument.midi.ports import label
from instrument.timing import clock

log = logging.getLogger(__name__)

POLL_S = 0.002  # queue read interval: the most a message waits before it is handled
ARRIVAL_WINDOW_S = 2.0  # the polls that place rtmidi's timestamps on our clock: the soonest of these

Handler = Callable[[Sequence[int], float], None]  # (message, seconds since the previous message)


class MidiInputPort(BasePort):
    """Our input port: ``virtual`` (others connect to it) or connected to the output port whose name
    contains ``target``. ``on_message(message, delta)`` runs in the reading thread for every well
    formed message; ``on_bad(why)`` for every malformed one; ``on_reopen()`` after a reconnection
    (time deltas start afresh). ``timing``: let clock, start/stop and sysex through rtmidi's filter."""

    client_class = rtmidi.MidiIn
    other_kind = "output"
    what = "MIDI in"

    def __init__(self, target: str, api: str, port_name: str, on_message: Handler, *,
                 on_bad: Callable[[str], None] | None = None, on_reopen: Callable[[], None] | None = None,
                 on_drained: Callable[[], None] | None = None,
                 timing: bool = False, flag: str = "--midi-in", api_flag: str = "--midi-in-api",
                 poll_s: float = POLL_S, watch_s: float = WATCH_S, name: str = "midi-in"):
        """``on_drained()`` runs in the reading thread once the messages that had arrived are all
        handed on (a batch: what came within ``poll_s``), before it waits for more."""
        self.on_message, self.on_bad, self.on_reopen, self.on_drained = on_message, on_bad, on_reopen, on_drained
        self.timing = timing
        self.poll_s = poll_s
        self.received = 0  # well formed messages handed on
        self.bad = 0  # malformed messages dropped
        self.arrived = 0.0  # when the message being handed on arrived, on clock() (see the module docstring)
        self._stamp = 0.0  # rtmidi's time of the last message read: its deltas summed since the port opened
        self._offsets: deque[tuple[float, float]] = deque()  # (poll time, poll time - stamp), rising offsets
        super().__init__(target, api, port_name, flag=flag, api_flag=api_flag, watch_s=watch_s, thread_name=name)

    def status(self) -> str:
        """``'NAME' (JACK)``, or why it is lost and what it waits for."""
        if self.lost:
            return f"'{self.port}' LOST ({self.lost}; waiting for it to come back, {label(self.api)})"
        return f"'{self.port}' ({label(self.api)})"

    # -- the reading thread -----------------------------------------------------------------
    def _serve(self, until: float) -> None:
        """Read and hand on messages until the next check."""
        batch = 0
        while not self._stop.is_set() and time.monotonic() < until:
            client = self._live
            event = client.get_message() if client is not None else None
            if event is None:
                if batch:
                    batch = 0
                    call_back(self.on_drained)
                self._stop.wait(self.poll_s)
                continue
            batch += 1
            message, delta = event
            self.arrived = self._arrival(delta)
            why = problem(message)
            if why is not None:
                self.bad += 1
                call_back(self.on_bad, f"malformed MIDI message dropped: {why}")
                continue
            self.received += 1
            try:
                self.on_message(message, delta)
            except Exception as error:  # a bug in a handler must not stop the input
                call_back(self.on_bad, f"message {list(message)!r}: {type(error).__name__}: {error}")
        if batch:
            call_back(self.on_drained)

    def _arrival(self, delta: float) -> float:
        """The time on ``clock()`` the message read now arrived: its timestamp, placed by the
        poll that came soonest after its message over the window (a running minimum)."""
        now = clock()
        self._stamp += delta
        offset = now - self._stamp
        window = self._offsets
        while window and window[-1][1] >= offset:
            window.pop()
        window.append((now, offset))
        while window[0][0] < now - ARRIVAL_WINDOW_S:
            window.popleft()
        return min(now, self._stamp + window[0][1])

    def _opened(self, client: rtmidi.MidiIn) -> None:
        self._stamp = 0.0  # a new client: its timestamps start afresh
        self._offsets.clear()
        if self.timing:  # every type passes: the time deltas then cover every message received
            client.ignore_types(sysex=False, timing=False, active_sense=False)

    def _on_back(self) -> None:
        call_back(self.on_reopen)


def call_back(callback: Callable | None, *args: object) -> None:
    """Call a listener's callback from a reading thread: a failing one is logged, never raised."""
    if callback is not None:
        try:
            callback(*args)
        except Exception:
            log.exception("MIDI input callback %s failed", getattr(callback, "__qualname__", callback))
