"""A simulated musician: plays a tune's notes as a person would, for tests of the instrument's ears.

From a tune's tokens (its notes as the note rules play them, repeats unfolded) and a tempo it makes
note-ons and note-offs in seconds: each onset off the grid by up to ``jitter_s`` either way, each
note held 70-95 % of its length, now and then a grace note just before a note, a chord's notes a
few milliseconds apart, everything transposed if asked. Seeded, so a failure can be replayed.

A test feeds the events to a ``Transcriber`` (``play_into``); a live test can send the same events
as MIDI. The grid's origin handed to the listener is the time of the tune's first full bar line:
a pickup is played before it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from instrument.music.notes import Note, tune_notes
from instrument.music.phrasing import seconds_per_quarter
from instrument.music.tunes import Tune

# a plain reel in C, for a simulated musician to play (in D, say) to the instrument's ears
REEL = Tune("4/4", "maj", ("G | c 2 e c g e c e | d 2 f d a f d f | e 2 g e c' g e g | f e d c B c d B | "
                           "c 2 e c g e c e | d 2 f d a f d f | e g c' g f d B d | c 2 c 2 c 2 |").split())


@dataclass(frozen=True)
class Played:
    """One note as played: seconds on the musician's clock."""

    on: float
    off: float
    pitch: int
    velocity: int
    grace: bool = False


@dataclass
class Performance:
    """A tune played: the notes, the clock the musician followed and what the tune holds."""

    tune: Tune
    bpm: float
    notes: list[Played]  # grace notes and a chord's every note included, by onset
    origin_s: float  # the time of the tune's first full bar line
    spq: float  # seconds per quarter note
    pickup: float  # quarter notes played before the origin
    melody: list[Note]  # the tune's notes as played (repeats unfolded), the highest of each chord
    transpose: int  # semitones the musician played it away from the tune

    def events(self) -> list[tuple[float, str, int, int]]:
        """(time, "on" or "off", pitch, velocity), in time order; at one time offs first."""
        out = []
        for n in self.notes:
            out.append((n.on, "on", n.pitch, n.velocity))
            out.append((n.off, "off", n.pitch, 0))
        return sorted(out, key=lambda e: (e[0], e[1] == "on"))

    def position(self, note: Note) -> float:
        """Where a note of the tune is, in quarter notes from the origin."""
        return note.start - self.pickup


def melody(notes: list[Note]) -> list[Note]:
    """The highest note at each start (a chord's top, what a listener takes for the tune)."""
    top: dict[float, Note] = {}
    for note in notes:
        if note.start not in top or note.pitch > top[note.start].pitch:
            top[note.start] = note
    return [top[s] for s in sorted(top)]


def perform(tune: Tune, bpm: float, seed: int = 0, jitter_s: float = 0.025, hold: tuple[float, float] = (0.7, 0.95),
            grace: float = 0.05, grace_s: float = 0.03, transpose: int = 0, start_s: float = 1.0,
            chord_spread_s: float = 0.01) -> Performance:
    """Play ``tune`` at ``bpm`` (the meter's beat), the first note at about ``start_s``."""
    rng = random.Random(seed)
    score = tune_notes(tune)
    spq = seconds_per_quarter(bpm, tune.meter)
    pickup = score.bars[0].length if score.bars and score.bars[0].pickup else 0.0
    origin = start_s + pickup * spq
    played: list[Played] = []
    before = None  # the pitch played last: a grace note never repeats it (its key is still down)
    by_start: dict[float, list[Note]] = {}
    for note in score.notes:
        by_start.setdefault(note.start, []).append(note)
    for start, chord in sorted(by_start.items()):
        on = origin + (start - pickup) * spq + rng.uniform(-jitter_s, jitter_s)
        velocity = rng.randint(60, 100)
        for note in chord:
            spread = rng.uniform(-chord_spread_s, chord_spread_s) if len(chord) > 1 else 0.0
            length = note.duration * spq * rng.uniform(*hold)
            played.append(Played(on + spread, on + spread + length, note.pitch + transpose, velocity))
        top = max(note.pitch for note in chord) + transpose
        if len(chord) == 1 and rng.random() < grace:
            pitch = top + rng.choice((1, 2))
            if pitch != before:
                played.append(Played(on - grace_s, on - grace_s * rng.uniform(0.05, 0.2), pitch, velocity, grace=True))
        before = top
    played.sort(key=lambda n: n.on)
    played = _released_before_struck(played)
    return Performance(tune, bpm, played, origin, spq, pickup, melody(score.notes), transpose)


def _released_before_struck(notes: list[Played]) -> list[Played]:
    """A key is let go before it is struck again (a MIDI keyboard cannot do otherwise)."""
    out: list[Played] = []
    for i, note in enumerate(notes):
        again = next((n.on for n in notes[i + 1:] if n.pitch == note.pitch), None)
        if again is not None and note.off >= again:
            note = Played(note.on, max(note.on + 0.001, again - 0.002), note.pitch, note.velocity, note.grace)
        out.append(note)
    return out


class Listener(Protocol):
    def note_on(self, time_s: float, pitch: int, velocity: int = 64) -> list[str]: ...
    def note_off(self, time_s: float, pitch: int) -> list[str]: ...
    def advance(self, time_s: float) -> list[str]: ...
    def finish(self, time_s: float | None = None) -> list[str]: ...


def play_into(listener: Listener, events: list[tuple[float, str, int, int]], tick_s: float = 0.05,
              tail_s: float = 0.5) -> list[str]:
    """Feed timed events to a listener as a clock would, with ``advance`` every ``tick_s`` between
    them, then ``finish`` ``tail_s`` after the last; returns everything it handed out, in order."""
    out: list[str] = []
    clock = events[0][0] if events else 0.0
    for time, kind, pitch, velocity in events:
        while clock + tick_s < time:
            clock += tick_s
            out += listener.advance(clock)
        clock = max(clock, time)
        out += listener.note_on(time, pitch, velocity) if kind == "on" else listener.note_off(time, pitch)
    out += listener.finish(clock + tail_s)
    return out


@dataclass
class Heard:
    """How much of a performance a transcription got back: notes of the tune whose pitch and
    length (MIDI numbers, quarter notes) a written note at the same place matches."""

    matched: int
    total: int
    misses: list[str]  # "position: pitch/length played -> pitch/length written", the first few

    @property
    def share(self) -> float:
        return self.matched / self.total if self.total else 1.0


def heard_back(performance: Performance, written: Tune, start: float) -> Heard:
    """Compare ``written`` (a transcription starting ``start`` quarter notes from the origin, in
    the tune's own key) with the tune's melody as played."""
    got = {round(n.start + start, 6): n for n in tune_notes(written).notes}
    matched, misses = 0, []
    for note in performance.melody:
        at = performance.position(note)
        other = got.get(round(at, 6))
        if other is not None and other.pitch == note.pitch and abs(other.duration - note.duration) < 1e-6:
            matched += 1
        elif len(misses) < 5:
            wrote = f"{other.pitch}/{other.duration:.3g}" if other is not None else "nothing"
            misses.append(f"{at:g}: {note.pitch}/{note.duration:.3g} -> {wrote}")
    return Heard(matched, len(performance.melody), misses)


class MidiMusician:
    """The musician at a JACK MIDI output port of their own (``client:out``), playing events at
    their times on ``clock()``: what a keyboard or a MIDI fiddle sends the instrument."""

    def __init__(self, client: str = "musician"):
        import rtmidi

        from instrument.midi.ports import realtime_jack_threads

        with realtime_jack_threads():
            self._out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=client)
        self._out.open_virtual_port("out")
        # (time, "on"/"off", pitch) of each message sent: the clock just before the send, and how long
        # after that the send had certainly happened (this process's other threads share its GIL)
        self.sent: list[tuple[float, str, int]] = []
        self.sent_within: list[float] = []

    def play(self, events: list[tuple[float, str, int, int]], channel: int = 1) -> None:
        """Send each event at its time (seconds on ``clock()``), sleeping between them."""
        import time

        from instrument.timing import clock

        for t, kind, pitch, velocity in events:
            left = t - clock()
            if left > 0:
                time.sleep(left)  # the musician's own timing: the events' times are the test's stimulus
            status = (0x90 if kind == "on" else 0x80) | (channel - 1)
            before = clock()
            self._out.send_message([status, pitch & 0x7F, velocity & 0x7F if kind == "on" else 0])
            self.sent.append((before, kind, pitch))
            self.sent_within.append(clock() - before)

    def control(self, number: int, value: int, channel: int = 1) -> None:
        self._out.send_message([0xB0 | (channel - 1), number & 0x7F, value & 0x7F])

    def bend(self, value: int, channel: int = 1) -> None:
        self._out.send_message([0xE0 | (channel - 1), value & 0x7F, (value >> 7) & 0x7F])

    def close(self) -> None:
        from instrument.midi.ports import close_client

        close_client(self._out)
