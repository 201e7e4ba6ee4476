"""One MIDI port that outlives what it is connected to: the other program's port, the JACK server.

MIDI in and MIDI out both extend ``BasePort`` (as mido's backends fill its ``BasePort``): it opens
our port (``virtual``, for others to connect to, or connected to the other program's port whose
name contains the target), and one thread of the port's own checks, every ``watch_s``:

- the JACK server (``ports.ServerWatch``, a socket probe, no rtmidi call): when it stops, the port
  says so (``lost``, in its status line) and abandons its client, which must never be touched
  again (docs/design.md §7: closing it crashes python-rtmidi once a new server runs); when a
  server runs again, a new client opens the port again;
- a named port: when the other program's port goes, the port says so and reconnects when a port
  of that name comes back (ALSA numbers clients as they come, so it is found by name).

A named port whose other end is not back yet is a client with no port open, never a virtual
stand-in: python-rtmidi cannot close a virtual port (only delete its client), so a client that
opened one refuses ``open_port`` ever after ("already opened virtual output port").

Subclasses fill the hooks: ``_opened(client)`` (a client was opened), ``_serve(until)`` (the
thread's work between checks: read messages, or wait), ``_on_check()`` (once per check),
``_on_back()`` (the port is connected again), ``_before_close(server_gone)``.
"""

from __future__ import annotations

import logging
import threading
import time

import rtmidi

from instrument.errors import UsageError
from instrument.midi.ports import ServerWatch, close_client, find_port, label, open_port, try_client

log = logging.getLogger(__name__)

WATCH_S = 1.0  # how often the server and the named port are checked
# A new server is left alone this long before a client opens on it: its socket answers while it
# still starts its driver, and a client opened then crashed the process in libjack (seen once in CI).
SERVER_SETTLE_S = 0.5


class BasePort:
    """Our MIDI port for ``target`` (``virtual`` or part of another program's port name) on ``api``.

    ``client_class``: rtmidi.MidiIn or rtmidi.MidiOut; ``other_kind``: what the other program's
    port is ("input" for our output); ``what``: how log lines name the port ("MIDI", "MIDI in").
    ``lost`` says why the port is gone while it is; ``reconnects`` counts its returns, ``checks``
    the checks made (what a test waits for to know a check has seen something).
    """

    client_class: type = rtmidi.MidiOut
    other_kind = "input"
    what = "MIDI"

    def __init__(self, target: str, api: str, port_name: str, *, client_name: str | None = None,
                 flag: str = "--midi-out", api_flag: str = "--midi-api", watch_s: float = WATCH_S,
                 thread_name: str = "midi-watchdog"):
        self.port_name = port_name
        self.client_name = client_name or port_name
        self.watch_s = watch_s
        client, self.api, self.connected_to = open_port(self.client_class, target, api, port_name,
                                                        client_name=self.client_name, flag=flag,
                                                        api_flag=api_flag, kind=self.other_kind)
        self.target = None if self.connected_to is None else target  # None: our virtual port
        self.lost: str | None = None
        self.reconnects = 0
        self.checks = 0
        self._client: rtmidi.MidiIn | rtmidi.MidiOut | None = client  # None once abandoned
        self._live = client  # the client while its port is open (what is sent to or read from), else None
        self._lock = threading.Lock()  # held only to swap the clients (and by a subclass around one use)
        self._server = ServerWatch(self.api)
        self._new_server: tuple[int, float] | None = None  # a server seen running since (clock)
        self._closed = False
        self._stop = threading.Event()
        self._opened(client)
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    @property
    def port(self) -> str:
        """The name shown to the performer: the port we are connected to, or our virtual port."""
        return self.connected_to or self.port_name

    @property
    def waiting_for_server(self) -> bool:
        """Lost with the server: no client until a server runs again."""
        return self._client is None and self._server.tracking

    # -- hooks --------------------------------------------------------------------------------
    def _opened(self, client) -> None:
        """A client was opened (at the start, or after a server restart)."""

    def _serve(self, until: float) -> None:
        """The thread's work until ``until`` (time.monotonic), or until the port is closed."""
        self._stop.wait(max(0.0, until - time.monotonic()))

    def _on_check(self) -> None:
        """Once per check, in the port's thread."""

    def _on_back(self) -> None:
        """The port is connected again (after a server restart or the other port's return)."""

    def _before_close(self, server_gone: bool) -> None:
        """Just before the client is closed (or abandoned, when ``server_gone``)."""

    # -- the port's thread --------------------------------------------------------------------
    def _run(self) -> None:
        next_check = time.monotonic() + self.watch_s
        while not self._stop.is_set():
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.watch_s
                try:
                    self._check()
                except Exception:
                    log.exception("%s: checking the port failed", self.what)
                self.checks += 1
            self._serve(next_check)

    def _check(self) -> None:
        self._on_check()
        server = self._server.changed()
        if server is not False:
            if self._client is not None:
                self._abandon("the JACK server " + ("stopped" if server is None else "restarted"))
            if server is None or not self._settled(server) or not self._reopen():
                return
            self._server.follow(server)
        if self.target is not None and self._client is not None:
            self._follow_named_port()

    def _settled(self, server: int) -> bool:
        """Whether ``server`` has been running for SERVER_SETTLE_S (first seen at an earlier check)."""
        now = time.monotonic()
        if self._new_server is None or self._new_server[0] != server:
            self._new_server = (server, now)
        return now - self._new_server[1] >= SERVER_SETTLE_S

    def _abandon(self, reason: str) -> None:
        """The server went: the client is dropped and never touched again."""
        with self._lock:
            client, self._client, self._live = self._client, None, None
        if client is not None:
            close_client(client, server_gone=True)
        self._lose(reason)

    def _lose(self, reason: str) -> None:
        self.lost = reason
        log.warning("%s %s: %s; waiting for it to come back (the performance goes on)", self.what, self.port, reason)

    def _reopen(self) -> bool:
        """A new client once a server runs again: our virtual port again, or, for a named port, a
        client without a port until the other program's port is back (``_follow_named_port``)."""
        client = try_client(self.client_class, self.api, self.client_name)
        if client is None:
            return False
        index, ports = None, []
        try:
            if self.target is None:
                client.open_virtual_port(self.port_name)
            else:
                ports = client.get_ports()
                index = self._find(ports)
                if index is not None:
                    client.open_port(index, self.port_name)
        except Exception as error:
            log.warning("%s %s: reopening the port failed (%s); trying again", self.what, self.port, error)
            close_client(client)
            return False
        self._opened(client)
        connected = self.target is None or index is not None
        with self._lock:
            self._client, self._live = client, client if connected else None
        if connected:
            if index is not None:
                self.connected_to = ports[index]
            self._back()
        else:
            self.lost = f"port '{self.connected_to}' is gone"
        return True

    def _find(self, ports: list[str]) -> int | None:
        """The port we were connected to, else the one whose name matches the target; None if none."""
        if self.connected_to in ports:
            return ports.index(self.connected_to)
        try:
            return find_port(ports, self.target, kind=self.other_kind)
        except UsageError:
            return None

    def _follow_named_port(self) -> None:
        ports = self._client.get_ports()
        if self._live is not None and self.connected_to in ports:
            if self.lost:  # it went and came back under the same name: connect to it again
                self._connect(ports.index(self.connected_to), self.connected_to)
            return
        if self._live is not None and not self.lost:
            self._lose(f"port '{self.connected_to}' is gone")
        index = self._find(ports)
        if index is not None:
            self._connect(index, ports[index])

    def _connect(self, index: int, name: str) -> None:
        """Our port, connected to ``name`` (same client: the port pauses for a moment)."""
        with self._lock:
            client, was_open, self._live = self._client, self._live is not None, None
        try:
            if was_open:
                client.close_port()
            client.open_port(index, self.port_name)
        except Exception as error:
            log.warning("%s: reconnecting to '%s' failed (%s); trying again", self.what, name, error)
            return
        with self._lock:
            self._live = client
        self.connected_to = name
        self._back()

    def _back(self) -> None:
        self.lost = None
        self.reconnects += 1
        log.warning("%s %s: port back (%s)", self.what, self.port, label(self.api))
        self._on_back()

    # -- any thread -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the port's thread and close the port. Idempotent; never raises, never crashes on a
        client whose server has gone (it is abandoned instead)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5.0)
        with self._lock:
            client, self._client, self._live = self._client, None, None
        if client is not None:
            gone = self._server.gone  # its server went since the last check
            self._before_close(gone)
            close_client(client, server_gone=gone)
