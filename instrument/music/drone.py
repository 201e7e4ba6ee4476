"""The drone: the tune's tonic and fifth, low and sustained, struck again where each part begins.

Every tune is in C (docs/design.md §2), so the drone is C and G whatever the mode. A piper's
drones hold the tonic under the whole tune; here the drone is struck again at the first note of
each part each time it is played (``form.part_openings``), so it marks the tune's form and, being
made of notes that end, falls silent between tunes. The default register is C3 and G3: the
baritone drone's octave, which small speakers still play (C2, the bass drone's, is 65 Hz).
"""

from __future__ import annotations

from typing import Sequence

from instrument.music.form import part_openings
from instrument.music.notes import Note, Score
from instrument.music.tunes import Tune

TONIC, FIFTH = 0, 7  # pitch classes of every tune's tonic and fifth (tunes are in C)
DRONE_PITCHES: tuple[int, ...] = (48, 55)  # C3, G3


def drone_notes(tune: Tune, score: Score, pitches: Sequence[int] = DRONE_PITCHES) -> list[Note]:
    """The drone of a tune as played (``score`` is ``tune_notes(tune)``): ``pitches`` held from each
    part's first note to the next part's, the last until the tune's last note ends."""
    for p in pitches:
        if p % 12 not in (TONIC, FIFTH):
            raise ValueError(f"a drone sounds the tonic or the fifth (C or G), not MIDI {p}")
    openings = part_openings(tune, score)
    ends = [o.start for o in openings[1:]] + [score.end]
    return [Note(p, o.start, end - o.start, o.bar, o.bar_offset, -1)
            for o, end in zip(openings, ends) if end > o.start for p in pitches]
