"""A MIDI output connection that outlives its port: the DAW may quit, the JACK server restart.

The timing thread only calls ``send``, which never raises and never waits: all checking is
done by a slow watchdog thread, which notices a lost port or server, says so once, and
reconnects when it comes back, while the clock and the notes go on being scheduled.

Hazards of python-rtmidi on JACK shape this (all seen here):
- it never releases the GIL, so a slow rtmidi call in any thread stalls the timing thread:
  the watchdog asks the JACK server whether it is alive with a socket probe, not rtmidi;
- a client whose server died cannot be closed (``ports.close_client``): it is abandoned, never
  touched again;
- its JACK output spins while its 16 KiB ring buffer is full, which happens once the server is
  gone: ``send`` keeps each watchdog round under the ring's size. Only note-ons are ever shed to
  stay under it (past ``NOTE_ON_BUDGET``, counted and logged): note-offs, All Notes Off, clock and
  program changes always go, up to a ceiling that only a dead server reaches, so no rate limit
  can leave a note hanging.
"""

from __future__ import annotations

import logging
import threading
import time

import rtmidi

from instrument.errors import UsageError
from instrument.midi.ports import JACK, PRODUCT, ServerWatch, close_client, find_port, label, open_port, try_client

log = logging.getLogger(__name__)

NOTE_ON_BUDGET = 4096  # bytes of note-ons per watchdog round (585 notes a second); past it they are shed
JACK_SEND_CEILING = 15 * 1024  # bytes per round of everything: under rtmidi's 16 KiB JACK ring buffer
CLOSE_LINGER_S = 0.1  # before closing: JACK delivers the last messages (All Notes Off, Stop) at
# its next cycle, read by the receiver from our port's buffer; do not pull the port from under it


class MidiLink:
    """Our virtual output port, or our port connected to another program's input port."""

    def __init__(self, out: rtmidi.MidiOut, api: int, target: str | None, connected_to: str | None,
                 port_name: str = PRODUCT, watch_interval: float = 1.0):
        self.api = api
        self.target = target  # None: our virtual port; else the name pattern the user gave
        self.connected_to = connected_to  # full name of the port we feed (named mode)
        self.port_name = port_name
        self.watch_interval = watch_interval
        self.lost: str | None = None  # why the port is lost, while it is
        self.reconnects = 0
        self._out: rtmidi.MidiOut | None = out
        self._lock = threading.Lock()  # held only to swap ``_out`` and around one send
        self._budget: int | None = JACK_SEND_CEILING if api == JACK else None
        self._note_on_budget = NOTE_ON_BUDGET
        self.shed = 0  # note-ons not sent to keep within the budget (0 in any real performance)
        self._shed_round = 0
        self._send_error: str | None = None
        self._closed = False
        self._server = ServerWatch(api)
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="midi-watchdog", daemon=True)
        self._watchdog.start()

    # -- the timing thread ------------------------------------------------------------------
    def send(self, message: list[int]) -> bool:
        """Send now; False if the message was not sent (the port is lost, or a note-on past the
        budget). Never raises, never waits."""
        with self._lock:
            out = self._out
            if out is None:
                return False
            if self._budget is not None:
                size = len(message) + 4  # rtmidi stores a length before each message
                if message[0] & 0xF0 == 0x90 and message[2] > 0:
                    if self._note_on_budget < size or self._budget < size:
                        self.shed += 1
                        self._shed_round += 1
                        return False
                    self._note_on_budget -= size
                self._budget -= size
                if self._budget < 0:  # only a server that stopped draining the ring gets here
                    return False
            try:
                out.send_message(message)
            except Exception as error:  # reported by the watchdog, off the real-time path
                self._send_error = self._send_error or f"{type(error).__name__}: {error}"
                return False
            return True

    # -- the watchdog thread ----------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self.watch_interval):
            try:
                self._check()
            except Exception:
                log.exception("MIDI watchdog check failed")

    def _check(self) -> None:
        if self._send_error:
            log.warning("MIDI: sending failed (%s); the performance goes on", self._send_error)
            self._send_error = None
        server = self._server.changed()
        if server is not False:
            if self._out is not None:
                self._lose("the JACK server " + ("stopped" if server is None else "restarted"), dead=True)
            if server is None or not self._reopen():
                return
            self._server.follow(server)
        if self._budget is not None:
            if self._shed_round:
                log.warning("MIDI: %d note-ons shed (over %d bytes of note-ons in %g s); every note-off was sent",
                            self._shed_round, NOTE_ON_BUDGET, self.watch_interval)
            elif self._budget < 0:
                log.warning("MIDI: over %d bytes sent since the last check; the rest were dropped", JACK_SEND_CEILING)
            self._shed_round = 0
            self._budget, self._note_on_budget = JACK_SEND_CEILING, NOTE_ON_BUDGET  # the server is alive: it drains the ring
        if self.target is not None and self._out is not None:
            self._follow_named_port()

    def _follow_named_port(self) -> None:
        ports = self._out.get_ports()
        if self.connected_to in ports:
            if self.lost:
                self._reconnect(ports.index(self.connected_to))
            return
        if not self.lost:
            self._lose(f"port '{self.connected_to}' is gone", dead=False)
        try:  # the same port under a new number (ALSA numbers clients as they come)
            index = find_port(ports, self.target)
        except UsageError:
            return
        self._reconnect(index, ports[index])

    def _lose(self, reason: str, dead: bool) -> None:
        if dead:
            with self._lock:
                out, self._out = self._out, None
            if out is not None:
                close_client(out, server_gone=True)
        self.lost = reason
        log.warning("MIDI: %s; waiting for it to come back (the performance goes on)", reason)

    def _reconnect(self, index: int, name: str | None = None) -> None:
        """Our port, connected again to the named port (same client, so sends pause briefly)."""
        with self._lock:
            out, self._out = self._out, None
        try:
            out.close_port()
            out.open_port(index, self.port_name)
        except Exception as error:
            log.warning("MIDI: reconnecting to '%s' failed (%s); trying again", name or self.connected_to, error)
            return
        finally:
            with self._lock:
                self._out = out
        self.connected_to = name or self.connected_to
        self._back()

    def _reopen(self) -> bool:
        """A new client after the server came back: our virtual port again, or our port ready to
        be connected to the named one (done by ``_follow_named_port``)."""
        client = try_client(rtmidi.MidiOut, self.api, PRODUCT)
        if client is None:
            return False
        ports: list[str] = []
        try:
            if self.target is None:
                client.open_virtual_port(self.port_name)
            else:
                ports = client.get_ports()
                if self.connected_to in ports:
                    client.open_port(ports.index(self.connected_to), self.port_name)
                else:
                    client.open_virtual_port(self.port_name)  # unconnected until it is back
                    self.lost = f"port '{self.connected_to}' is gone"
        except Exception as error:
            log.warning("MIDI: reopening the port failed (%s); trying again", error)
            close_client(client)
            return False
        with self._lock:
            self._out = client
        if self.target is None or self.connected_to in ports:
            self._back()
        return True

    def _back(self) -> None:
        self.lost = None
        self.reconnects += 1
        log.warning("MIDI: port back: %s", self.status().removeprefix("MIDI: "))

    # -- any thread -------------------------------------------------------------------------
    def status(self) -> str:
        api = label(self.api)
        if self._closed:
            return f"MIDI: closed ({api})"
        if self.lost:
            what = "the JACK server" if self._out is None and self._server.tracking else f"'{self.connected_to or self.port_name}'"
            return f"MIDI: port lost, waiting for {what} ({api})"
        if self.target is None:
            return f"MIDI: virtual port '{self.port_name}' ({api})"
        return f"MIDI: connected to '{self.connected_to}' ({api})"

    def close(self) -> None:
        """Stop watching and close the port (what was sent is delivered first). Idempotent;
        never raises, even on a port whose server has gone."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._watchdog.is_alive() and threading.current_thread() is not self._watchdog:
            self._watchdog.join(5.0)
        with self._lock:
            out, self._out = self._out, None
        if out is not None:
            gone = self._server.gone  # its server went since the last check
            if not gone:
                time.sleep(CLOSE_LINGER_S)
            close_client(out, server_gone=gone)


def open_link(target: str, api: str = "auto", port_name: str = PRODUCT, watch_interval: float = 1.0) -> MidiLink:
    """Open ``--midi-out virtual|NAME`` on ``--midi-api``; UsageError (one line) if that fails."""
    out, api_id, connected_to = open_port(rtmidi.MidiOut, target, api, port_name, client_name=PRODUCT,
                                          flag="--midi-out", kind="input")
    return MidiLink(out, api_id, None if connected_to is None else target, connected_to, port_name, watch_interval)
