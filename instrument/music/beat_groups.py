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

from dataclasses import dataclass

from instrument.model import vocab
from instrument.music.notes import Score

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


def beat_groups(score: Score, meter: str) -> list[BeatGroup]:
    """The beat groups of a tune as played, in order, from its first downbeat to its last note's end.

    Each played bar (a written bar each time it sounds) is divided from its downbeat until the
    next bar that is not a pickup starts; a bar only as long as the meter asks stops where a pickup
    begins. A bar of rests has no notes to show it, so the grid of the bar before runs on over it.
    """
    size = group_quarters(meter)
    bar_quarters = vocab.METER_EIGHTHS[meter] / 2
    played: dict[tuple[int, float], float] = {}  # (written bar, downbeat as played) -> downbeat
    for note in score.notes:
        downbeat = note.start - note.bar_offset
        played.setdefault((note.bar, round(downbeat, 6)), downbeat)
    bars = sorted(((downbeat, bar) for (bar, _), downbeat in played.items()))
    end = score.end
    groups: list[BeatGroup] = []
    for i, (downbeat, bar) in enumerate(bars):
        if _pickup(score, bar):
            continue
        later = [(start, b) for start, b in bars[i + 1:]]
        stop = next((start for start, b in later if not _pickup(score, b)), end)
        whole = max(score.bars[bar].length if bar < len(score.bars) else 0.0, bar_quarters)
        for start, b in later:  # a pickup after a bar already whole begins where it begins
            if start >= stop - _EPS:
                break
            if _pickup(score, b) and start >= downbeat + whole - _EPS:
                stop = start
                break
        k = 0
        while downbeat + k * size < stop - _EPS:
            start = downbeat + k * size
            groups.append(BeatGroup(start, min(size, stop - start), bar, (k * size) % bar_quarters))
            k += 1
    return groups


def _pickup(score: Score, bar: int) -> bool:
    return bar < len(score.bars) and score.bars[bar].pickup
