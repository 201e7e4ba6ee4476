"""The vamp: what a guitar or bouzouki plays for a chord over one beat group.

A bass note on the group's first beat and the chord after it ("boom-chick"), in the rhythm of
the dance: a jig's bass on the first eighth of each dotted quarter and the chord on its third, a
reel's bass on 1 and 3 and the chord on 2 and 4, a polka's bass on the beat and the chord on its
off-beat eighth, a waltz's bass-chord-chord. The "boom" is the bass with the fifth above it (the
thumb and one more string: two notes), the "chick" the triad in close position; when the chord
goes on into the next group the bass alternates between its root and its fifth, as a player walks it.
Registers are a guitar's: the bass E2..D#3, the chord tones G3..F#4, so every hit sounds two to
four notes at once and never the same pitch twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from instrument.music.beat_groups import BeatGroup, group_quarters
from instrument.music.harmony import Chord, ChordChange
from instrument.music.notes import Note

BASS_LOW = 40  # E2, a guitar's low string
CHORD_LOW = 55  # G3: chord tones G3..F#4, where a strummed triad in first position sits
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Hit:
    """One stroke of the vamp inside a beat group."""

    offset: float  # quarter-note beats from the group's start
    length: float  # quarter-note beats
    bass: bool  # the "boom" (bass and fifth); else the "chick" (the triad)


_BOOM_CHICK_EIGHTHS = (Hit(0.0, 0.5, True), Hit(0.5, 0.5, False))
_BOOM_CHICK_QUARTERS = (Hit(0.0, 1.0, True), Hit(1.0, 1.0, False))
_JIG = (Hit(0.0, 1.0, True), Hit(1.0, 0.5, False))  # bass on the first eighth, the chord on the third
VAMP_HITS: dict[str, tuple[Hit, ...]] = {
    "6/8": _JIG, "9/8": _JIG, "12/8": _JIG,
    "4/4": _BOOM_CHICK_QUARTERS, "3/2": _BOOM_CHICK_QUARTERS,
    "2/4": _BOOM_CHICK_EIGHTHS,
    "3/4": (Hit(0.0, 1.0, True), Hit(1.0, 1.0, False), Hit(2.0, 1.0, False)),
}


def bass_pitch(pitch_class: int) -> int:
    """The pitch class in the bass register, E2..D#3."""
    return BASS_LOW + (pitch_class - BASS_LOW) % 12


def triad(chord: Chord) -> tuple[int, ...]:
    """The chord's tones in close position, each once in G3..F#4, from the lowest."""
    return tuple(sorted(CHORD_LOW + (pc - CHORD_LOW) % 12 for pc in chord.pitch_classes))


def boom(chord: Chord, alternate: bool = False) -> tuple[int, int]:
    """The bass stroke: the root with the fifth above it, or (``alternate``) the fifth with the root above it."""
    if alternate:
        low = bass_pitch(chord.fifth)
        return low, low + 5
    low = bass_pitch(chord.root)
    return low, low + 7


def vamp_notes(chord: Chord, group: BeatGroup, meter: str, alternate: bool = False) -> list[Note]:
    """The notes of the vamp over one beat group (the strokes that fit in it; a short group
    keeps only its first). ``alternate``: the bass walks to the fifth (the chord goes on)."""
    group_quarters(meter)  # names the meters on a wrong one
    notes = []
    for hit in VAMP_HITS[meter]:
        if hit.offset >= group.length - _EPS:
            break
        length = min(hit.length, group.length - hit.offset)
        pitches = boom(chord, alternate) if hit.bass else triad(chord)
        notes += [Note(p, group.start + hit.offset, length, group.bar, group.bar_offset + hit.offset, -1) for p in pitches]
    return notes


class Vamper:
    """The vamp chord by chord, as the chords come: the bass alternates root and fifth while a
    chord goes on (live and ``vamp_track`` alike)."""

    def __init__(self, meter: str) -> None:
        group_quarters(meter)  # names the meters on a wrong one
        self.meter = meter
        self._previous: Chord | None = None
        self._alternate = False

    def notes(self, change: ChordChange) -> list[Note]:
        self._alternate = change.chord == self._previous and not self._alternate
        self._previous = change.chord
        return vamp_notes(change.chord, change.group, self.meter, self._alternate)


def vamp_track(track: list[ChordChange], meter: str) -> list[Note]:
    """The vamp of a whole chord track: the bass alternates root and fifth while a chord goes on."""
    vamper = Vamper(meter)
    return [note for change in track for note in vamper.notes(change)]
