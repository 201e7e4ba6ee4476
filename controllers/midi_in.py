"""MIDI input: knobs, pitch bend and mod wheel through the patch, MIDI learn, the keyboard's
held keys as stimulation, and program changes that switch patches.

The port, its reading thread, the check of every message and the reconnection after a JACK
restart are ``instrument.midi.input``'s; this module gives the messages their meaning. It only
calls ``Parameters.set``/``fire`` and asks the owner to switch patches: it never blocks on
anything the engine holds.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from controllers.control import BATCH_S, Latest, set_value
from controllers.mapping import MAPPABLE_KINDS, Mapping, default_range, source_label
from controllers.router import Router
from controllers.report import Reporter
from instrument.live.params import ParamError, Parameters
from instrument.midi.input import MidiInputPort
from instrument.midi.messages import ALL_NOTES_OFF, ALL_SOUND_OFF, BEND, CONTROL, NOTE_OFF, NOTE_ON, PROGRAM, kind
from instrument.midi.ports import PRODUCT

log = logging.getLogger(__name__)

DEFAULT_PORT = f"{PRODUCT} in"


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
        # a musician's notes go here first (pitch, velocity (0 ends the note), when it arrived on
        # clock()); True: taken (listen is on)
        self.hear: Callable[[int, int, float], bool] | None = None
        self._held: set[tuple[int, int]] = set()  # (channel, note) of the keys held now
        self.latest = Latest(self.reporter)  # a knob's latest value in a batch (what came within BATCH_S)
        self.input = MidiInputPort(port, api, port_name, lambda message, delta: self.handle(message),
                                   on_bad=self._bad, on_drained=self.latest.flush, flag=flag,
                                   api_flag=f"{flag}-api", poll_s=BATCH_S)
        self.api = self.input.api

    @property
    def port(self) -> str:
        return self.input.port

    @property
    def lost(self) -> str | None:
        """Why the port is gone (a JACK server that stopped), while it is."""
        return self.input.lost

    @property
    def held(self) -> tuple[int, ...]:
        return tuple(sorted({note for _, note in self._held}))

    def learn(self, name: str) -> str:
        """Arm MIDI learn: the next control change received is mapped to ``name`` (over its
        whole range). Returns a line saying so; ParamError for a parameter no knob can move."""
        spec = self.params.specs.get(self.params.canonical(name))
        if spec is None:
            raise ParamError(f"MIDI learn: unknown parameter {name!r}")
        name = spec.name
        if spec.kind not in MAPPABLE_KINDS:
            raise ParamError(f"MIDI learn: {name} is a {spec.kind} parameter; a knob moves numbers, on/off and choices")
        self.learning = name
        line = f"MIDI learn: move a knob for {name}"
        self.reporter.did(line)
        log.info(line)
        return line

    def status(self) -> str:
        learning = f", learning {self.learning}" if self.learning else ""
        return f"MIDI in {self.input.status()} {self.reporter.counts()}{learning}"

    def close(self) -> None:
        """Stop listening and close the port. Idempotent."""
        self.input.close()

    # -- the reading thread -----------------------------------------------------------------
    def _bad(self, why: str) -> None:
        self.reporter.got()
        self.reporter.ignore(why)

    def handle(self, message: Sequence[int]) -> None:
        """Take one well-formed MIDI message (the port has checked it: ``messages.problem``).
        System messages (clock, sysex) are not controls. A knob's value (a CC, pitch bend) that
        only mappings take is kept until the reading thread has read what arrived, and a later
        value of the same knob replaces it (``controllers.control.Latest``); everything else is
        applied in its place, after the values kept before it."""
        if message[0] >= 0xF0:
            return
        self.reporter.got()
        what, channel = kind(message[0]), (message[0] & 0x0F) + 1
        data = list(message[1:3]) + [0, 0]
        if what == CONTROL and self.learning is None and data[0] not in (ALL_NOTES_OFF, ALL_SOUND_OFF):
            key = ("cc", channel, data[0])
            if not self.router.momentary(key):
                self.latest.keep(key, source_label(key), lambda: self._control(channel, data[0], data[1]))
                return
        elif what == BEND and not self.router.momentary(("pitchbend", channel)):
            self.latest.keep(("pitchbend", channel), "pitch bend", lambda: self._apply(message))
            return
        self.latest.flush()
        self._apply(message)

    def _apply(self, message: Sequence[int]) -> None:
        what, channel = kind(message[0]), (message[0] & 0x0F) + 1
        data = list(message[1:3]) + [0, 0]
        if what == CONTROL:
            self._control(channel, data[0], data[1])
        elif what in (NOTE_OFF, NOTE_ON) and self.hear is not None and self.hear(data[0], data[1] if what == NOTE_ON else 0,
                                                                                 self.input.arrived):
            return  # a musician's note, heard by the instrument (listen): not a key that steers it
        elif what == NOTE_ON and data[1] > 0:
            self._note(channel, data[0], True)
        elif what in (NOTE_OFF, NOTE_ON):
            self._note(channel, data[0], False)
        elif what == BEND:
            self.router.route(("pitchbend", channel), ((data[1] << 7) | data[0]) / 16383.0, f"MIDI bend ch {channel}", self.reporter)
        elif what == PROGRAM:
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
