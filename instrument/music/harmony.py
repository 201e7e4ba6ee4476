"""Chords for a tune as a session accompanist picks them: the mode's usual chords, one per beat group.

Every tune is in C and its mode gives the key signature (docs/design.md §2), so the chords are
the same few for every tune of a mode, spelled from C:

- major: I IV V (C F G);
- minor: i iv v bVII bVI (Cm Fm Gm Bb Ab);
- dorian: i IV bVII bIII (Cm F Bb Eb);
- mixolydian: I bVII IV v (C Bb F Gm).

A guitarist listens to the melody of each beat group and plays the chord whose tones it dwells on:
a note counts by how long it sounds in the group and how strong the beat it sounds on is (the
downbeat most; see ``phrasing.metric_weight``), and the note on the group's first beat, where the
bass sounds, counts again when it is the chord's root. Ties are settled as a player settles them:
keep the chord already playing when it fits as well, come home to the tonic chord at the end of
a part and of the tune, and otherwise take the more usual chord (the order of the lists above).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from instrument.model import vocab
from instrument.music.beat_groups import BeatGroup
from instrument.music.notes import Note
from instrument.music.phrasing import metric_weight

_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
_EPS = 1e-6
ROOT_WEIGHT = 0.25  # extra weight of the group's first note when it is the chord's root (the bass doubles it)
AS_WELL = 0.3  # a chord "fits as well" as the best when its score is within this share of the group's weight


@dataclass(frozen=True, slots=True)
class Chord:
    """A triad by its degree in the mode (``"bVII"``), spelled in C."""

    degree: str  # roman numeral: upper case major, lower case minor, ``b`` a flattened degree
    root: int  # pitch class 0..11 (0 = C)
    minor: bool

    @property
    def pitch_classes(self) -> frozenset[int]:
        third = 3 if self.minor else 4
        return frozenset({self.root, (self.root + third) % 12, (self.root + 7) % 12})

    @property
    def fifth(self) -> int:
        return (self.root + 7) % 12

    @property
    def symbol(self) -> str:
        """As a chord chart writes it: ``C``, ``Bb``, ``Gm``."""
        return _NAMES[self.root] + ("m" if self.minor else "")


def _chord(degree: str, root: int) -> Chord:
    return Chord(degree, root, minor=degree.lstrip("b").islower())


MODE_CHORDS: dict[str, tuple[Chord, ...]] = {
    "maj": (_chord("I", 0), _chord("IV", 5), _chord("V", 7)),
    "min": (_chord("i", 0), _chord("iv", 5), _chord("v", 7), _chord("bVII", 10), _chord("bVI", 8)),
    "dor": (_chord("i", 0), _chord("IV", 5), _chord("bVII", 10), _chord("bIII", 3)),
    "mix": (_chord("I", 0), _chord("bVII", 10), _chord("IV", 5), _chord("v", 7)),
}


def mode_chords(mode: str) -> tuple[Chord, ...]:
    """The mode's usual chords, the tonic chord first, then in the order a player reaches for them."""
    try:
        return MODE_CHORDS[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(vocab.MODES)}") from None


def sounding(notes: Iterable[Note], start: float, end: float) -> list[Note]:
    """The notes that sound somewhere in [start, end)."""
    return [n for n in notes if n.start < end - _EPS and n.start + n.duration > start + _EPS]


def weight(note: Note, group: BeatGroup, meter: str) -> float:
    """How much a note of the melody counts in a beat group: the time it sounds inside the group
    times the metric weight of where it is heard first in the group (a note held over from
    before is heard again on the group's first beat)."""
    begin, finish = max(note.start, group.start), min(note.start + note.duration, group.end)
    if finish <= begin + _EPS:
        return 0.0
    heard = (group.bar_offset + begin - group.start) % (vocab.METER_EIGHTHS[meter] / 2)
    return (finish - begin) * metric_weight(round(heard, 6), meter)


def fit(chord: Chord, notes: Iterable[Note], group: BeatGroup, meter: str) -> float:
    """How well ``chord`` fits the melody of one beat group: the weight of the notes that are its
    tones, the note on the group's first beat counting ``ROOT_WEIGHT`` more when it is the root."""
    tones = chord.pitch_classes
    score = 0.0
    for n in notes:
        if n.pitch % 12 in tones:
            bonus = ROOT_WEIGHT if n.pitch % 12 == chord.root and n.start <= group.start + _EPS < n.start + n.duration else 0.0
            score += weight(n, group, meter) * (1.0 + bonus)
    return score


def choose_chord(notes: Sequence[Note], group: BeatGroup, meter: str, mode: str,
                 previous: Chord | None = None, cadence: bool = False) -> Chord:
    """The chord a session accompanist plays over one beat group of the melody.

    ``notes``: the lead's notes sounding in the group (others are ignored); ``previous``: the chord
    of the group before (kept when it fits as well); ``cadence``: the group ends a part or the tune
    (the tonic chord is taken when it fits as well). With no note to go by (a rest), the previous
    chord rings on, or the tonic chord at a cadence or the start.
    """
    chords = mode_chords(mode)
    tonic = chords[0]
    notes = sounding(notes, group.start, group.end)
    scores = [fit(c, notes, group, meter) for c in chords]
    best = max(scores)
    if best <= _EPS:
        return tonic if cadence or previous is None else previous
    total = sum(weight(n, group, meter) for n in notes)
    as_well = best - AS_WELL * total
    if cadence and scores[0] >= as_well:
        return tonic
    if previous is not None and previous in chords and scores[chords.index(previous)] >= as_well:
        return previous
    return chords[scores.index(best)]


@dataclass(frozen=True, slots=True)
class ChordChange:
    """The chord played over one beat group."""

    group: BeatGroup
    chord: Chord
