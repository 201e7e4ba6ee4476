"""How a note on the beat timeline is played: when (tempo, swing) and how loud (accents).

Times come from a tempo map anchored at the note where the tempo last changed, never from
accumulated sleeps, so an hour of playing does not drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from instrument.model import vocab


@dataclass(frozen=True, slots=True)
class ScheduledNote:
    """One note as it will sound: what every output receives. Times in seconds on the
    performance's clock (the live scheduler's monotonic clock, or 0 at the start of a render)."""

    on: float
    off: float
    pitch: int  # MIDI number, transposition applied
    velocity: int  # 1..127
    channel: int  # 1..16
    tune: int  # number of the tune it belongs to (1 = first of the performance)
    voice: int = 1  # the ensemble's voice that plays it (1: the lead): its track, its instrument


# Beat of each meter in quarter notes: the dotted quarter in compound time, the half in 3/2.
QUARTERS_PER_BEAT = {"2/4": 1.0, "3/4": 1.0, "4/4": 1.0, "6/8": 1.5, "9/8": 1.5, "12/8": 1.5, "3/2": 2.0}


def seconds_per_quarter(bpm: float, meter: str) -> float:
    """Seconds per quarter note at ``bpm`` beats per minute, the beat following the meter."""
    return 60.0 / (bpm * QUARTERS_PER_BEAT[meter])


@dataclass(frozen=True)
class _Anchor:
    beat: float
    time: float
    spq: float


class TempoMap:
    """Quarter-note beats -> absolute seconds on the monotonic clock.

    The anchor is one immutable tuple, replaced in one assignment: the timing thread may read
    it (for MIDI clock) while the model thread moves it.
    """

    def __init__(self, start_time: float, spq: float):
        self._anchor = _Anchor(0.0, start_time, spq)

    @property
    def spq(self) -> float:
        return self._anchor.spq

    def time_at(self, beat: float) -> float:
        a = self._anchor
        return a.time + (beat - a.beat) * a.spq

    def beat_at(self, time: float) -> float:
        a = self._anchor
        return a.beat + (time - a.time) / a.spq

    def change(self, spq: float, at_beat: float) -> None:
        """New tempo from ``at_beat`` on; times before it stay where they were."""
        if spq != self._anchor.spq:
            self._anchor = _Anchor(at_beat, self.time_at(at_beat), spq)

    def follow(self, spq: float, beat: float, bar_offset: float, meter: str) -> None:
        """The lead places a note at ``beat`` (``bar_offset`` into its bar, in ``meter``) at the
        tempo ``spq``: the free map takes the tempo from there on; a map tied to a shared session
        (``instrument/live/link.py``) places the bar on the session's grid instead."""
        self.change(spq, beat)

    def start(self, at: float) -> None:
        """Beat 0 sounds at ``at`` (the performance starts; nothing was placed before)."""
        a = self._anchor
        self._anchor = _Anchor(0.0, at, a.spq)

    def restart(self, beat: float, at: float, spq: float | None = None) -> None:
        """``beat`` sounds at ``at`` (at ``spq``, else the tempo as it is): the music goes on
        after a pause (a shared session's Stop), or a map leaves the session it was tied to."""
        self._anchor = _Anchor(beat, at, self._anchor.spq if spq is None else spq)

    def shift(self, seconds: float) -> None:
        """Move everything later (a pause, or a restart after stop)."""
        a = self._anchor
        self._anchor = _Anchor(a.beat, a.time + seconds, a.spq)


def swing_shift(bar_offset: float, meter: str, swing: float) -> float:
    """How much later (in quarters) a note is played for ``swing`` 0..1.

    Eighth pairs in simple meters: the off-beat eighth moves from half way through the quarter
    towards two thirds (triplet swing at 1). Compound meters, already in threes, are left alone.
    """
    if swing <= 0 or meter in vocab.COMPOUND_METERS:
        return 0.0
    within = bar_offset % 1.0
    middle = 0.5 + swing / 6.0  # where the off-beat eighth lands
    if within <= 0.5:
        return within * (middle / 0.5) - within
    return middle + (within - 0.5) * ((1.0 - middle) / 0.5) - within


# Metric weight of positions in a bar (quarter-note offsets): 1 the downbeat, then the other
# strong beats, then the remaining beats; anything off the beat is weakest.
_STRONG = {
    "2/4": {0.0: 1.0, 1.0: 0.6},
    "3/4": {0.0: 1.0, 1.0: 0.55, 2.0: 0.55},
    "4/4": {0.0: 1.0, 2.0: 0.75, 1.0: 0.55, 3.0: 0.55},
    "6/8": {0.0: 1.0, 1.5: 0.7},
    "9/8": {0.0: 1.0, 1.5: 0.6, 3.0: 0.6},
    "12/8": {0.0: 1.0, 3.0: 0.75, 1.5: 0.55, 4.5: 0.55},
    "3/2": {0.0: 1.0, 2.0: 0.55, 4.0: 0.55},
}
OFF_BEAT = 0.35


def metric_weight(bar_offset: float, meter: str) -> float:
    """1.0 on the downbeat down to OFF_BEAT off the beat."""
    for position, weight in _STRONG[meter].items():
        if abs(bar_offset - position) < 1e-6:
            return weight
    return OFF_BEAT


def velocity(base: int, dynamics: float, accent: float, bar_offset: float, meter: str) -> int:
    """MIDI velocity: the base level scaled by dynamics, lowered off the strong beats by accent."""
    level = 1.0 - accent * (1.0 - metric_weight(bar_offset, meter))
    return max(1, min(127, int(round(base * dynamics * level))))


class Phrasing:
    """Places each composed note in time and gives it a velocity, from the live parameters.

    One instance follows a whole performance, live or rendered: it keeps the tempo map (so a
    tempo change applies from the next note on, without moving earlier ones) and counts bars
    (the lead's). Every voice is placed alike (tempo, swing, transpose), so onsets that are
    together stay together; each voice has its own channel (``channels``: voice -> MIDI channel;
    the lead's is the parameter ``channel``), velocity and dynamics (``voice.N.velocity``), and
    ``sustained`` voices (a drone) sound their whole length, articulation and accents aside.
    """

    def __init__(self, params, start_time: float = 0.0, channels: dict[int, int] | None = None,
                 sustained: frozenset[int] = frozenset(), tempo: TempoMap | None = None):
        self.params = params
        self.channels = dict(channels or {})
        self.sustained = sustained
        # ``tempo``: a map made by the caller (one that a Link session can tie, live/link.py)
        self.tempo = tempo or TempoMap(start_time, seconds_per_quarter(params.get("tempo"), "4/4"))
        self.bars = 0  # bars begun so far, the lead's, silent ones included (``bars_with``)
        self._bar_key: tuple[int, float] | None = None
        self._bar_start = 0.0  # beat where the last bar counted began
        self._bar_beats = 0.0  # and its length in the meter it was written in

    def spq(self, meter: str) -> float:
        """Seconds per quarter now: an external clock's tempo (``tempo.clock``) while one is
        followed, else the ``tempo`` parameter, its beat following the meter."""
        clock_qpm = self.params.get("tempo.clock")
        if clock_qpm:
            return 60.0 / clock_qpm
        return seconds_per_quarter(self.params.get("tempo"), meter)

    def bar_of(self, note) -> tuple[int, float]:
        return note.tune, round(note.beat - note.bar_offset, 6)

    def starts_bar(self, note) -> bool:
        """Whether ``note`` would begin a bar not yet begun."""
        return self.bar_of(note) != self._bar_key

    def bars_with(self, note) -> int:
        """The bars begun once the lead's ``note`` is placed. A bar the listener hears as silence
        counts as a bar played, and a written bar longer than its meter as the bars it lasts: the
        whole bars of the last bar's meter that fit between the last bar counted and the note's
        bar (a run of rests, a tune that wrote none, a bar without its bar line) are counted too,
        so ``--bars`` ends after as many bars as were heard, whatever the network wrote."""
        if not self.starts_bar(note):
            return self.bars
        start = note.beat - note.bar_offset
        if self._bar_key is None:  # the performance began with silence, or with this bar
            return 1 + int(start / (vocab.METER_EIGHTHS[note.meter] / 2) + 1e-9)
        return self.bars + max(1, int((start - self._bar_start) / self._bar_beats + 1e-9))

    def bars_by(self, beat: float, meter: str) -> int:
        """The bars begun before ``beat``, counting the silent ones after the last bar counted
        (in its meter; ``meter`` before any): what a take that ends at ``beat`` held."""
        length = self._bar_beats or vocab.METER_EIGHTHS[meter] / 2
        if self._bar_key is None:
            return max(0, math.ceil(beat / length - 1e-9))
        return self.bars + max(0, math.ceil((beat - self._bar_start) / length - 1e-9) - 1)

    def bar_end(self, bars: int, meter: str) -> float:
        """The beat where bar ``bars + 1`` begins if nothing but silence comes first: the end that
        ``--bars`` sets while rests are all that is known. Bars not yet begun are counted in
        the last bar's meter (``meter`` before any)."""
        length = self._bar_beats or vocab.METER_EIGHTHS[meter] / 2
        if self._bar_key is None:
            return bars * length
        return self._bar_start + (bars + 1 - self.bars) * length

    def place(self, note):
        """The ScheduledNote for a ComposedNote (times on the tempo map's clock)."""
        p = self.params
        voice = getattr(note, "voice", 1)
        if voice == 1:  # the lead moves the tempo map and counts the bars; the others follow it
            self.tempo.follow(self.spq(note.meter), note.beat, note.bar_offset, note.meter)
            if self.starts_bar(note):
                self.bars = self.bars_with(note)
                self._bar_key = self.bar_of(note)
                self._bar_start = note.beat - note.bar_offset
                self._bar_beats = vocab.METER_EIGHTHS[note.meter] / 2
        on = self.tempo.time_at(note.beat + swing_shift(note.bar_offset, note.meter, p.get("swing")))
        sustained = voice in self.sustained
        sounding = max(note.duration * (1.0 if sustained else p.get("articulation")), 0.02 / self.tempo.spq)
        off = on + sounding * self.tempo.spq
        pitch = max(0, min(127, note.pitch + int(p.get("transpose"))))
        if voice == 1:
            vel = velocity(p.get("velocity"), p.get("dynamics"), p.get("accent"), note.bar_offset, note.meter)
            channel = int(p.get("channel"))
        else:
            name = f"voice.{voice}."
            vel = velocity(p.get(name + "velocity"), p.get(name + "dynamics"), 0.0 if sustained else p.get("accent"),
                           note.bar_offset, note.meter)
            channel = self.channels[voice]
        return ScheduledNote(on, off, pitch, vel, channel, note.tune, voice)
