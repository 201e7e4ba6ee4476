"""A MIDI input port read by a thread of ours, that survives bad messages and a JACK restart.

Used by every MIDI input (the controllers' knobs and keys, the clock follower). Messages are
taken from rtmidi's queue by polling rather than in rtmidi's callback: under JACK the callback
runs inside the server's process cycle and would wait there for the GIL, and a client late for
its cycle loses messages. The same thread:

- checks every message (``messages.problem``) before the handler sees it: a malformed one is
  counted, reported and dropped, so it can never poison what the handler keeps;
- watches the JACK server (``ports.ServerWatch``, a socket probe, no rtmidi call): when it stops,
  the input says so (``lost``, in its status line) and abandons its client, which must never be
  touched again; when a server runs again, it opens a new client and port (the virtual port, or
  the named port once it exists) and carries on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Sequence

import rtmidi

from instrument.midi.messages import problem
from instrument.midi.ports import ServerWatch, close_client, find_port, label, open_port, try_client

log = logging.getLogger(__name__)

POLL_S = 0.002  # queue read interval: the most a message waits before it is handled
WATCH_S = 1.0  # how often the server is checked

Handler = Callable[[Sequence[int], float], None]  # (message, seconds since the previous message)


class MidiInputPort:
    """Our input port: ``virtual`` (others connect to it) or connected to the output port whose name
    contains ``target``. ``on_message(message, delta)`` runs in the reading thread for every well
    formed message; ``on_bad(why)`` for every malformed one; ``on_reopen()`` after a reconnection
    (time deltas start afresh). ``timing``: let clock, start/stop and sysex through rtmidi's filter."""

    def __init__(self, target: str, api: str, port_name: str, on_message: Handler, *,
                 on_bad: Callable[[str], None] | None = None, on_reopen: Callable[[], None] | None = None,
                 timing: bool = False, flag: str = "--midi-in", api_flag: str = "--midi-in-api",
                 poll_s: float = POLL_S, watch_s: float = WATCH_S, name: str = "midi-in"):
        self.port_name = port_name
        self.on_message, self.on_bad, self.on_reopen = on_message, on_bad, on_reopen
        self.timing = timing
        self.poll_s, self.watch_s = poll_s, watch_s
        self._in, self.api, self.connected_to = open_port(rtmidi.MidiIn, target, api, port_name, flag=flag,
                                                          api_flag=api_flag, kind="output")
        self.target = None if self.connected_to is None else target
        self._filter(self._in)
        self.received = 0  # well formed messages handed on
        self.bad = 0  # malformed messages dropped
        self.lost: str | None = None  # why the port is gone, while it is
        self.reconnects = 0
        self._watch = ServerWatch(self.api)
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def port(self) -> str:
        """The name shown to the performer: the port we listen to, or our virtual port."""
        return self.connected_to or self.port_name

    def status(self) -> str:
        """``'NAME' (JACK)``, or why it is lost and what it waits for."""
        if self.lost:
            return f"'{self.port}' LOST ({self.lost}; waiting for it to come back, {label(self.api)})"
        return f"'{self.port}' ({label(self.api)})"

    def close(self) -> None:
        """Stop reading and close the port. Idempotent; never raises, never crashes on a client
        whose server has gone."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2.0)
        client, self._in = self._in, None
        if client is not None:
            close_client(client, server_gone=self._watch.gone)

    # -- the reading thread -----------------------------------------------------------------
    def _run(self) -> None:
        next_check = time.monotonic() + self.watch_s
        while not self._stop.is_set():
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.watch_s
                try:
                    self._check()
                except Exception:
                    log.exception("MIDI in: checking the server failed")
            client = self._in
            event = client.get_message() if client is not None else None
            if event is None:
                self._stop.wait(self.poll_s)
                continue
            message, delta = event
            why = problem(message)
            if why is not None:
                self.bad += 1
                self._call(self.on_bad, f"malformed MIDI message dropped: {why}")
                continue
            self.received += 1
            try:
                self.on_message(message, delta)
            except Exception as error:  # a bug in a handler must not stop the input
                self._call(self.on_bad, f"message {list(message)!r}: {type(error).__name__}: {error}")

    def _check(self) -> None:
        """Lose the port when its server goes; open it again when one runs."""
        server = self._watch.changed()
        if server is False:
            return
        if self._in is not None:
            client, self._in = self._in, None
            close_client(client, server_gone=True)
            self.lost = "the JACK server " + ("stopped" if server is None else "restarted")
            log.warning("MIDI in %s: %s; waiting for it to come back", self.port, self.lost)
        if server is not None and self._reopen():
            self._watch.follow(server)
            self.lost = None
            self.reconnects += 1
            log.warning("MIDI in %s: back (%s)", self.port, label(self.api))
            self._call(self.on_reopen)

    def _reopen(self) -> bool:
        client = try_client(rtmidi.MidiIn, self.api, self.port_name)
        if client is None:
            return False
        try:
            if self.target is None:
                client.open_virtual_port(self.port_name)
            else:
                ports = client.get_ports()
                index = find_port(ports, self.target, kind="output")
                client.open_port(index, self.port_name)
                self.connected_to = ports[index]
        except Exception as error:  # the named port is not back yet, or opening failed: next time
            log.debug("MIDI in %s: not reopened yet (%s)", self.port, error)
            close_client(client)
            return False
        self._filter(client)
        self._in = client
        return True

    def _filter(self, client: rtmidi.MidiIn) -> None:
        if self.timing:  # every type passes: the time deltas then cover every message received
            client.ignore_types(sysex=False, timing=False, active_sense=False)

    def _call(self, callback: Callable | None, *args: object) -> None:
        call_back(callback, *args)


def call_back(callback: Callable | None, *args: object) -> None:
    """Call a listener's callback from a reading thread: a failing one is logged, never raised."""
    if callback is not None:
        try:
            callback(*args)
        except Exception:
            log.exception("MIDI input callback %s failed", getattr(callback, "__qualname__", callback))
