"""The drone: the tune's tonic and fifth, low and sustained, struck again where each part begins.

Every tune is in C (docs/design.md §2), so the drone is C and G whatever the mode. A piper's
drones hold the tonic under the whole tune; here the drone is struck again at the first note of
each part each time it is played (``form.PartOpenings``; ``accompany.drone_notes``), so it marks the tune's form and, being
made of notes that end, falls silent between tunes. The default register is C3 and G3: the
baritone drone's octave, which small speakers still play (C2, the bass drone's, is 65 Hz).
"""

from __future__ import annotations

from typing import Sequence

from instrument.music.notes import Note

TONIC, FIFTH = 0, 7  # pitch classes of every tune's tonic and fifth (tunes are in C)
DRONE_PITCHES: tuple[int, ...] = (48, 55)  # C3, G3


def check_pitches(pitches: Sequence[int]) -> None:
    for p in pitches:
        if p % 12 not in (TONIC, FIFTH):
            raise ValueError(f"a drone sounds the tonic or the fifth (C or G), not MIDI {p}")


def strike(opening: Note, pitches: Sequence[int], duration: float) -> list[Note]:
    """The drone struck at a part's first note, held ``duration`` quarter-note beats."""
    return [Note(p, opening.start, duration, opening.bar, opening.bar_offset, -1) for p in pitches]
