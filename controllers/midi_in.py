"""MIDI input: knobs, pitch bend and mod wheel through the patch, MIDI learn, the keyboard's
held keys as stimulation, and program changes that switch patches.

Messages are taken from rtmidi's queue by a thread of ours rather than in rtmidi's callback:
under JACK the callback runs inside the server's process cycle and would wait there for the
GIL, and a client late for its cycle loses messages (see ``midi_clock.py``). The thread only
calls ``Parameters.set``/``fire`` and asks the owner to switch patches: it never blocks on
anything the engine holds.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import rtmidi

from controllers.mapping import MAPPABLE_KINDS, Mapping, Router, default_range, set_value, source_label
from controllers.report import Reporter
from instrument.errors import UsageError
from instrument.midi.ports import PRODUCT, find_port, label, open_client
from instrument.live.params import ParamError, Parameters

log = logging.getLogger("controllers.midi_in")

DEFAULT_PORT = f"{PRODUCT} in"
POLL_S = 0.002  # queue read interval: the most a knob's move waits before it is applied
NOTE_OFF, NOTE_ON, CONTROL, PROGRAM, BEND = 0x80, 0x90, 0xB0, 0xC0, 0xE0
ALL_NOTES_OFF, ALL_SOUND_OFF = 123, 120


class MidiInput:
    """Our MIDI input port (virtual, or connected to another program's output port)."""

    def __init__(self, params: Parameters, router: Router, port: str = "virtual", api: str = "auto", *,
                 reporter: Reporter | None = None, on_program: Callable[[object], None] | None = None,
                 port_name: str = DEFAULT_PORT, flag: str = "--midi-in"):
        """``on_program(path)`` is called with the patch file the current patch's ``programs:``
        gives for a program change (from the listening thread: hand the loading on)."""
        self.params, self.router = params, router
        self.reporter = reporter or Reporter("MIDI in")
        self.on_program = on_program
        self.learning: str | None = None  # the parameter armed for MIDI learn
        self.learned: list[str] = []  # what learn mapped, as patch lines to paste
        self._held: set[tuple[int, int]] = set()  # (channel, note) of the keys held now
        self._in, self.api = open_client(rtmidi.MidiIn, api, port_name, flag=f"{flag}-api")
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
            raise UsageError(f"{flag} {port}: cannot open it with {label(self.api)} ({error}); try {flag} none") from None
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="midi-in", daemon=True)
        self._thread.start()

    @property
    def held(self) -> tuple[int, ...]:
        return tuple(sorted({note for _, note in self._held}))

    def learn(self, name: str) -> str:
        """Arm MIDI learn: the next control change received is mapped to ``name`` (over its
        whole range). Returns a line saying so; ParamError for a parameter no knob can move."""
        spec = self.params.specs.get(name)
        if spec is None:
            raise ParamError(f"MIDI learn: unknown parameter {name!r}")
        if spec.kind not in MAPPABLE_KINDS:
            raise ParamError(f"MIDI learn: {name} is a {spec.kind} parameter; a knob moves numbers, on/off and choices")
        self.learning = name
        line = f"MIDI learn: move a knob for {name}"
        self.reporter.did(line)
        log.info(line)
        return line

    def status(self) -> str:
        learning = f", learning {self.learning}" if self.learning else ""
        return f"MIDI in '{self.port}' ({label(self.api)}) {self.reporter.counts()}{learning}"

    def close(self) -> None:
        """Stop listening and close the port. Idempotent."""
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
            log.debug("closing the MIDI input: %s", error)

    # -- the listening thread ---------------------------------------------------------------
    def _listen(self) -> None:
        while not self._stop.is_set():
            event = self._in.get_message()
            if event is None:
                self._stop.wait(POLL_S)
                continue
            try:
                self.handle(event[0])
            except Exception as error:  # a bad message or a bug must not stop the input
                self.reporter.ignore(f"message {event[0]!r}: {type(error).__name__}: {error}")

    def handle(self, message: list[int]) -> None:
        """Apply one MIDI message (public so the owner can feed messages from elsewhere)."""
        if not message or message[0] < 0x80 or message[0] >= 0xF0:
            return  # system messages (clock, sysex) are not controls
        self.reporter.got()
        kind, channel = message[0] & 0xF0, (message[0] & 0x0F) + 1
        data = list(message[1:3]) + [0, 0]
        if kind == CONTROL:
            self._control(channel, data[0], data[1])
        elif kind == NOTE_ON and data[1] > 0:
            self._note(channel, data[0], True)
        elif kind in (NOTE_OFF, NOTE_ON):
            self._note(channel, data[0], False)
        elif kind == BEND:
            self.router.route(("pitchbend", channel), ((data[1] << 7) | data[0]) / 16383.0, f"MIDI bend ch {channel}", self.reporter)
        elif kind == PROGRAM:
            self._program(data[0])

    def _control(self, channel: int, number: int, value: int) -> None:
        key = ("cc", channel, number)
        name = self.learning
        if name is not None:
            self.learning = None
            lo, hi = default_range(self.params.specs[name])
            mapping = Mapping(key, name, lo, hi, where="MIDI learn")
            self.router.learn(mapping)
            line = f"- {{source: {{midi: {{cc: {number}, channel: {channel}}}}}, target: {name}}}"
            self.learned.append(line)
            self.reporter.did(f"learned {source_label(key)} -> {name}")
            log.warning("MIDI learn: %s -> %s (for a patch: %s)", source_label(key), name, line)
        if self.router.route(key, value / 127.0, f"MIDI CC {number} ch {channel}", self.reporter):
            return
        if number in (ALL_NOTES_OFF, ALL_SOUND_OFF):
            self._held.clear()
            self._keys_changed(True)

    def _note(self, channel: int, note: int, on: bool) -> None:
        if on:
            self.router.route(("note", channel, note), None, f"MIDI note {note}", self.reporter)
        was = bool(self._held)
        (self._held.add if on else self._held.discard)((channel, note))
        self._keys_changed(was)

    def _keys_changed(self, was_held: bool) -> None:
        keys = self.router.patch.keys
        if not keys.enabled:
            return
        held = self.held
        origin = "MIDI keys"
        if held and not was_held:
            if keys.source is not None:
                set_value(self.params, "stimulation.source", keys.source, origin, self.reporter)
            if keys.weight is not None:
                set_value(self.params, "stimulation.weight", keys.weight, origin, self.reporter)
        set_value(self.params, "stimulation.keys", held, origin, self.reporter)
        if was_held and not held and keys.weight is not None:
            set_value(self.params, "stimulation.weight", 0.0, origin, self.reporter)
        self.reporter.did(f"keys {' '.join(map(str, held)) or 'released'}", key="keys")

    def _program(self, number: int) -> None:
        path = self.router.patch.programs.get(number)
        if path is None:
            self.reporter.ignore(f"program change {number}: the patch has no programs: entry for it")
            return
        self.reporter.did(f"program {number}: {path.name}")
        if self.on_program is not None:
            self.on_program(path)
