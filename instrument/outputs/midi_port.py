"""MIDI out to a DAW or synth (``--midi-out virtual|NAME|none``, ``--midi-api auto|alsa|jack``).

Notes reach the port from the timing thread at their scheduled instants: ``schedule`` only
hands them to the ``Scheduler``. Everything that sends runs in that one thread (notes, clock,
panic), so messages never interleave and the note bookkeeping needs no lock; only ``close``
sends from its caller, once the timing thread has stopped.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from typing import Sequence

from instrument.outputs import VoiceSound, pan_cc
from instrument.music.timbres import GM_TIMBRES
from instrument.timing import Scheduler, clock
from instrument.midi.messages import ALL_NOTES_OFF, CLOCK_TICK, CLOCKS_PER_QUARTER, CONTROL, NOTE_OFF, NOTE_ON, PROGRAM, START, STOP

PAN = 10  # MIDI CC 10
from instrument.midi.ports import PRODUCT, midi_available
from instrument.music.phrasing import ScheduledNote, TempoMap
from instrument.music.tunes import Tune
from instrument.midi.output import MidiOutputPort

log = logging.getLogger(__name__)

CLOCK_LATE_S = 0.0005  # a tick whose time moved later than this (slower tempo, pause) waits

__all__ = ["MidiPort", "open_midi_port", "midi_available"]


PERCUSSION_CHANNEL = 10  # General MIDI's drums
CLICK_DOWNBEAT, CLICK_BEAT = 76, 77  # GM's high and low wood block
CLICK_S = 0.05  # how long a click's note is held


class MidiPort:
    """An ``Output`` to a MIDI port, with optional MIDI clock following the engine's tempo map."""

    name = "midi"

    def __init__(self, link: MidiOutputPort, scheduler: Scheduler, *, program: int = -1, channel: int = 1,
                 send_clock: bool = False, tempo: TempoMap | None = None, voices: Sequence[VoiceSound] = ()):
        """``tempo``: the performance's tempo map (made before the outputs, moved by the model
        thread, read here by the timing thread); needed only with ``send_clock``. ``voices``: an
        ensemble's voices, each on its own channel with its program and pan sent at the start
        (without: one voice on ``channel`` with ``program``)."""
        if send_clock and tempo is None:
            raise ValueError("send_clock needs the tempo map")
        self.link = link
        self.scheduler = scheduler
        self.voices = tuple(voices) or (VoiceSound(1, "lead", channel, GM_TIMBRES["harp"], program),)
        self.program = self.voices[0].program
        self.channel = self.voices[0].channel
        self.send_clock = send_clock
        self.tempo = tempo
        self._sounding: dict[tuple[int, int], ScheduledNote] = {}  # timing thread only
        # channels used: every voice's of an ensemble (panic silences them all, even before their first note)
        self._channels: set[int] = {v.channel for v in self.voices if v.program >= 0 or len(self.voices) > 1}
        self._handed = itertools.count()  # notes handed over, in order (a release drops those before it)
        self._released: dict[int, tuple[int, float]] = {}  # voice -> (notes handed before the release, its time)
        self._clock_running = False  # ticking (from start until close)
        self._clock_started = False  # Start was scheduled: Stop is owed at close
        self._clock_beat0 = 0.0
        self._next_tick = 0
        self._closed = False
        self._close_lock = threading.Lock()

    # -- the engine's thread ----------------------------------------------------------------
    def start(self, at: float) -> None:
        self.scheduler.at(at, self._send_programs)
        if self.send_clock:
            self._clock_beat0 = self.tempo.beat_at(at)
            self._next_tick = 0
            self._clock_running = self._clock_started = True
            self.scheduler.at(at, lambda due: self.link.send([START]))
            self.scheduler.at(at, self._tick)

    def set_program(self, voice: int, program: int) -> None:
        """A voice's instrument changed live (its ``timbre``, or the lead's ``program``): the DAW
        hears the program change on that voice's channel now, from the timing thread, in order
        with the notes (any thread may call this)."""
        channel = next((v.channel for v in self.voices if v.voice == voice), None)
        if channel is None or not 0 <= program <= 127:
            return
        self.scheduler.at(clock(), lambda due: self._closed or self.link.send([PROGRAM | (channel - 1), program]))

    def schedule(self, note: ScheduledNote) -> None:
        self._channels.add(note.channel)
        self.scheduler.at(note.on, functools.partial(self._note_on, note, next(self._handed)))
        self.scheduler.at(max(note.off, note.on), functools.partial(self._note_off, note))

    def click(self, at: float, downbeat: bool, velocity: int = 100) -> None:
        """A metronome's click at ``at`` on General MIDI's percussion channel (10): the high wood
        block on a bar's first beat, the low one on the others (GM 76, 77); a short note, with its
        note-off, silenced by a panic like every note."""
        self.schedule(ScheduledNote(at, at + CLICK_S, CLICK_DOWNBEAT if downbeat else CLICK_BEAT, velocity,
                                    PERCUSSION_CHANNEL, 0, voice=0))

    def release(self, voice: int, at: float, pitch: int | None = None) -> None:
        """The voice's notes end at ``at``: those sounding get their note-off then (in the timing
        thread), those handed over before now that would start at or after it never sound. With
        ``pitch``: only its note of that pitch sounding then."""
        if self._closed:
            return
        if pitch is None:
            self._released[voice] = (next(self._handed), at)
        self.scheduler.at(at, functools.partial(self._release_now, voice, pitch))

    def set_pan(self, voice: int, pan: float) -> None:
        """A voice's pan (the live parameter ``voice.N.pan``): CC 10 on its channel, now."""
        for v in self.voices:
            if v.voice == voice and not self._closed:
                self.scheduler.at(clock(), lambda due, channel=v.channel: self.link.send([CONTROL | (channel - 1), PAN, pan_cc(pan)]))

    def tune(self, number: int, tune: Tune) -> None:
        pass  # a port plays notes; tunes are for recordings and views

    def panic(self, at: float) -> None:
        """Drop what is pending and silence, in the timing thread (or here if it is not running)."""
        if self._closed:
            return
        if self.scheduler.alive:
            self.scheduler.clear(then=self._panic_now)
        else:
            self._silence()

    def close(self, at: float) -> None:
        """Silence, stop the clock and close the port. Idempotent; never raises."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._clock_running = False
        try:
            if self.scheduler.alive:  # normally the engine has stopped it already
                done = threading.Event()
                self.scheduler.clear(then=lambda now: (self._silence(), done.set()))
                if not done.wait(1.0):
                    log.warning("MIDI: the timing thread did not answer; silencing from here")
                    self._silence()
            else:
                self._silence()
            if self._clock_started:
                self.link.send([STOP])
        except Exception:
            log.exception("MIDI: silencing at close failed")
        self.link.close()

    def status(self) -> str:
        shed = self.link.shed
        return self.link.status() + (f"; {shed} note-ons shed over the send budget" if shed else "")

    # -- the timing thread ------------------------------------------------------------------
    def _send_programs(self, due: float) -> None:
        for v in self.voices:
            if v.program >= 0:
                self.link.send([PROGRAM | (v.channel - 1), v.program & 0x7F])
            if len(self.voices) > 1 or v.pan:
                self.link.send([CONTROL | (v.channel - 1), PAN, pan_cc(v.pan)])

    def _note_on(self, note: ScheduledNote, handed: int, due: float) -> None:
        if self._closed:
            return
        cut = self._released.get(note.voice)
        if cut is not None and handed < cut[0] and note.on >= cut[1] - 1e-6:
            return  # released before it began
        key = (note.channel, note.pitch)
        if key in self._sounding:  # the same pitch again: end the first, never overlap
            del self._sounding[key]
            self.link.send([NOTE_OFF | (note.channel - 1), note.pitch, 0])
        if self.link.send([NOTE_ON | (note.channel - 1), note.pitch, note.velocity]):
            self._sounding[key] = note  # a note-on not sent (shed, port lost) owes no note-off

    def _note_off(self, note: ScheduledNote, due: float) -> None:
        key = (note.channel, note.pitch)
        if self._sounding.get(key) is note:  # not if a later note took the pitch over
            del self._sounding[key]
            self.link.send([NOTE_OFF | (note.channel - 1), note.pitch, 0])

    def _release_now(self, voice: int, pitch: int | None, due: float) -> None:
        for key, note in list(self._sounding.items()):
            if note.voice == voice and (pitch is None or note.pitch == pitch):
                del self._sounding[key]
                self.link.send([NOTE_OFF | (note.channel - 1), note.pitch, 0])

    def _silence(self) -> None:
        """Note-off for every sounding note, then All Notes Off on every channel used."""
        for channel, pitch in list(self._sounding):
            self.link.send([NOTE_OFF | (channel - 1), pitch, 0])
        self._sounding.clear()
        for channel in sorted(tuple(self._channels)):
            self.link.send([CONTROL | (channel - 1), ALL_NOTES_OFF, 0])

    def _panic_now(self, now: float) -> None:
        self._silence()
        if self._clock_running:  # the clear dropped the next tick: the DAW stays in time
            self._arm_tick()

    def _tick_time(self, tick: int) -> float:
        return self.tempo.time_at(self._clock_beat0 + tick / CLOCKS_PER_QUARTER)

    def _arm_tick(self) -> None:
        self.scheduler.at(self._tick_time(self._next_tick), self._tick)

    def _tick(self, due: float) -> None:
        """One clock tick; the next is timed from the tempo map as it is now."""
        if not self._clock_running:
            return
        if self._tick_time(self._next_tick) > due + CLOCK_LATE_S:  # slowed down since armed
            self._arm_tick()
            return
        self.link.send([CLOCK_TICK])
        self._next_tick += 1
        self._arm_tick()


def open_midi_port(midi_out: str, midi_api: str, scheduler: Scheduler, *, program: int = -1, channel: int = 1,
                   send_clock: bool = False, tempo: TempoMap | None = None, voices: Sequence[VoiceSound] = (),
                   port_name: str = PRODUCT, watch_interval: float = 1.0) -> MidiPort | None:
    """The MIDI output for ``--midi-out`` and ``--midi-api``; None for ``--midi-out none``.
    Raises ``UsageError`` with one line naming what is wrong and how to fix it."""
    if midi_out.strip().lower() == "none":
        return None
    link = MidiOutputPort(midi_out, midi_api, port_name=port_name, watch_interval=watch_interval)
    return MidiPort(link, scheduler, program=program, channel=channel, send_clock=send_clock, tempo=tempo, voices=voices)
