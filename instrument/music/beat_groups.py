"""Beat groups: the stretches of a bar an accompanist plays one chord over, as a meter divides it.

A guitar or bouzouki player vamps a bass note on each main beat and the chord after it, and
changes chord only where a group starts. How a meter groups its beats (quarter-note beats, from
the downbeat of each bar):

- 6/8 jig, 9/8 slip jig, 12/8 slide: a dotted quarter (two, three or four groups a bar);
- 4/4 reel and hornpipe: a half bar. The vamp still strikes every quarter (bass on 1 and 3, the
  chord on 2 and 4), but a reel's melody runs in eighths, and a chord per quarter would chase
  its passing notes: session players change chord at most twice a bar, and the bass-chord pair
  needs two quarters to be heard as one beat ("boom-chick");
- 2/4 polka: a quarter (bass on the beat, chord on its off-beat eighth);
- 3/4 waltz and mazurka: the bar (bass-chord-chord on its three quarters: the waltz vamp);
- 3/2 (triple hornpipe): a half note (bass-chord in quarters), three a bar.

Groups follow the bars as played (repeats unfolded): each bar that is not a pickup is divided
from its own downbeat, so a bar the network wrote too long or too short re-aligns the grid at the
next bar line, as a player does. A pickup has no group of its own: after the short last bar of a
repeated part it lies in that bar's last group (they make one bar between them); at the tune's
start the accompanist waits for the first downbeat.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Sequence

from instrument.model import vocab
from instrument.music.bars import Bar
from instrument.music.notes import Note, Score

GROUP_QUARTERS: dict[str, float] = {"2/4": 1.0, "3/4": 3.0, "4/4": 2.0, "6/8": 1.5, "9/8": 1.5, "12/8": 1.5, "3/2": 2.0}
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class BeatGroup:
    """One beat group as played: where it starts, how long it lasts and where it sits in its bar."""

    start: float  # quarter-note beats from the tune's start, as played
    length: float  # quarter-note beats (shorter than the meter's group where the next bar comes early)
    bar: int  # the written bar it starts in
    bar_offset: float  # quarter-note beats from that bar's downbeat (0: the group is on the downbeat)

    @property
    def end(self) -> float:
        return self.start + self.length

    @property
    def downbeat(self) -> bool:
        return self.bar_offset < _EPS


def group_quarters(meter: str) -> float:
    """Quarter-note beats of one beat group in ``meter``. Raises ValueError naming the meters."""
    try:
        return GROUP_QUARTERS[meter]
    except KeyError:
        raise ValueError(f"unknown meter {meter!r}; valid: {', '.join(vocab.METERS)}") from None


class GroupGrid:
    """The beat groups of a tune as its notes come: what a live accompanist can know.

    ``note`` takes each note once it is certain, in playing order; ``groups`` hands out, once
    each, the groups whose end the lead has reached (``horizon``: the as-played beat up to which
    every note is certain), so every note sounding in a group is known when it is handed out;
    given the tune's ``end``, all the rest. A bar's pickup flag and length are read from ``bars``
    (the written bars closed so far) when its groups are handed out: a pickup the lead has not
    finished by then is taken for a bar of its own. ``beat_groups`` is this grid fed a whole tune.
    """

    def __init__(self, meter: str) -> None:
        self.size = group_quarters(meter)
        self._bar_quarters = vocab.METER_EIGHTHS[meter] / 2
        self._played: list[tuple[float, int]] = []  # (downbeat as played, written bar), in order
        self._seen: set[tuple[int, float]] = set()
        self._i = 0  # the played bar whose groups are being handed out
        self._k = 0  # the next group in it
        self._until = -math.inf  # where the last group handed out ends

    def note(self, note: Note) -> None:
        downbeat = note.start - note.bar_offset
        key = (note.bar, round(downbeat, 6))
        if key not in self._seen:
            self._seen.add(key)
            bisect.insort(self._played, (downbeat, note.bar))  # (two bars may share a downbeat as played)

    def groups(self, horizon: float, bars: Sequence[Bar], end: float | None = None) -> list[BeatGroup]:
        """The groups not handed out yet that end at or before ``horizon`` (all up to ``end``
        when the tune is over), in order."""
        out: list[BeatGroup] = []
        played, size = self._played, self.size
        while self._i < len(played):
            downbeat, bar = played[self._i]
            if _pickup(bars, bar):
                self._i, self._k = self._i + 1, 0
                continue
            whole = max(bars[bar].length if bar < len(bars) else 0.0, self._bar_quarters)
            stop = end if end is not None else math.inf
            for start, b in played[self._i + 1:]:
                if not _pickup(bars, b) or start >= downbeat + whole - _EPS:  # a pickup after a bar already whole begins where it begins
                    stop = start
                    break
            # a bar's downbeat can lie before what was handed out: a repeat played out from inside a
            # bar (``c4 :| cG |``) is heard only when the lead gets there; its groups start then
            start = max(downbeat + self._k * size, self._until)
            if start >= stop - _EPS:
                if stop == end or stop == math.inf:
                    break
                self._i, self._k = self._i + 1, 0
                continue
            length = min(downbeat + (self._k + 1) * size, stop) - start
            if end is None and horizon < start + length - _EPS:
                break  # the lead has not reached its end: a later bar line may still shorten it
            self._k += 1
            if length < _EPS:
                continue
            out.append(BeatGroup(start, length, bar, (start - downbeat) % self._bar_quarters))
            self._until = start + length
        return out


def beat_groups(score: Score, meter: str) -> list[BeatGroup]:
    """The beat groups of a tune as played, in order, from its first downbeat to its last note's end.

    Each played bar (a written bar each time it sounds) is divided from its downbeat until the
    next bar that is not a pickup starts; a bar only as long as the meter asks stops where a pickup
    begins. A bar of rests has no notes to show it, so the grid of the bar before runs on over it.
    """
    grid = GroupGrid(meter)
    for note in sorted(score.notes, key=lambda n: n.start):
        grid.note(note)
    return grid.groups(math.inf, score.bars, end=score.end)


def _pickup(bars: Sequence[Bar], bar: int) -> bool:
    return bar < len(bars) and bars[bar].pickup
