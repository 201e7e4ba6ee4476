"""A MIDI output connection that outlives its port: the DAW may quit, the JACK server restart.

The timing thread only calls ``send``, which never raises and never waits: all checking is
done by the port's slow watchdog thread (``instrument.midi.base``, shared with MIDI in), which
notices a lost port or server, says so once, and reconnects when it comes back, while the clock
and the notes go on being scheduled.

Hazards of python-rtmidi on JACK shape this (all seen here):
- it never releases the GIL, so a slow rtmidi call in any thread stalls the timing thread:
  the watchdog asks the JACK server whether it is alive with a socket probe, not rtmidi;
- a client whose server died cannot be closed (``ports.close_client``): it is abandoned, never
  touched again (``BasePort``);
- its JACK output spins while its 16 KiB ring buffer is full, which happens once the server is
  gone: ``send`` keeps each watchdog round under the ring's size. Only note-ons are ever shed to
  stay under it (past ``NOTE_ON_BUDGET``, counted and logged): note-offs, All Notes Off, clock and
  program changes always go, up to a ceiling that only a dead server reaches, so no rate limit
  can leave a note hanging.
"""

from __future__ import annotations

import logging
import time

import rtmidi

from instrument.midi.base import BasePort
from instrument.midi.ports import JACK, PRODUCT, label

log = logging.getLogger(__name__)

NOTE_ON_BUDGET = 4096  # bytes of note-ons per watchdog round (585 notes a second); past it they are shed
JACK_SEND_CEILING = 15 * 1024  # bytes per round of everything: under rtmidi's 16 KiB JACK ring buffer
CLOSE_LINGER_S = 0.1  # before closing: JACK delivers the last messages (All Notes Off, Stop) at
# its next cycle, read by the receiver from our port's buffer; do not pull the port from under it


class MidiOutputPort(BasePort):
    """Our virtual output port, or our port connected to another program's input port."""

    client_class = rtmidi.MidiOut
    other_kind = "input"
    what = "MIDI"

    def __init__(self, target: str, api: str = "auto", port_name: str = PRODUCT, watch_interval: float = 1.0):
        """``--midi-out virtual|NAME`` on ``--midi-api``; UsageError (one line) if that fails.
        ``watch_interval``: how often the watchdog checks, and the window of the send budget."""
        self._budget: int | None = None
        self._note_on_budget = NOTE_ON_BUDGET
        self.shed = 0  # note-ons not sent to keep within the budget (0 in any real performance)
        self._shed_round = 0
        self._send_error: str | None = None
        super().__init__(target, api, port_name, client_name=PRODUCT, flag="--midi-out", api_flag="--midi-api",
                         watch_s=watch_interval, thread_name="midi-watchdog")
        self._budget = JACK_SEND_CEILING if self.api == JACK else None

    # -- the timing thread ------------------------------------------------------------------
    def send(self, message: list[int]) -> bool:
        """Send now; False if the message was not sent (the port is lost, or a note-on past the
        budget). Never raises, never waits."""
        with self._lock:
            out = self._live
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
    def _on_check(self) -> None:
        if self._send_error:
            log.warning("MIDI: sending failed (%s); the performance goes on", self._send_error)
            self._send_error = None
        if self._budget is not None:
            if self._shed_round:
                log.warning("MIDI: %d note-ons shed (over %d bytes of note-ons in %g s); every note-off was sent",
                            self._shed_round, NOTE_ON_BUDGET, self.watch_s)
            elif self._budget < 0:
                log.warning("MIDI: over %d bytes sent since the last check; the rest were dropped", JACK_SEND_CEILING)
            self._shed_round = 0
            self._budget, self._note_on_budget = JACK_SEND_CEILING, NOTE_ON_BUDGET  # the ring drained since

    def _before_close(self, server_gone: bool) -> None:
        if not server_gone:
            time.sleep(CLOSE_LINGER_S)

    # -- any thread -------------------------------------------------------------------------
    def status(self) -> str:
        api = label(self.api)
        if self._closed:
            return f"MIDI: closed ({api})"
        if self.lost:
            what = "the JACK server" if self.waiting_for_server else f"'{self.port}'"
            return f"MIDI: port lost, waiting for {what} ({api})"
        if self.target is None:
            return f"MIDI: virtual port '{self.port_name}' ({api})"
        return f"MIDI: connected to '{self.connected_to}' ({api})"
