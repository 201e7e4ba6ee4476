"""Listening: a musician's played notes turned into the tokens a folk-rnn tune would write.

The instrument keeps the clock and the musician plays to it: the ``Transcriber`` is told the meter,
the tempo and the time of a bar line (the grid's origin) and is fed note-ons and note-offs as they
come. It hands out each token once nothing the musician can still play would change it, so a live
loop can feed them to the network as if it had written them (docs/design.md §2 says what each
token means; played back through ``NoteStream`` they give the notes heard).

How it hears, in stages (a method each):

1. **Events** (``_group``). Onsets within ``CLUSTER_S`` of the first of a group are one event: a
   chord, or a grace note and its note. A member sounding shorter than ``ORNAMENT_S`` is an
   ornament and is dropped; of the others the highest is kept, the melody. Chords are never written
   as ``[ ]``: folk-rnn's tunes seldom hold them and a listener follows the tune on top. A lone note
   shorter than a third of a sixteenth is dropped too.
2. **The grid** (``_place``). Each onset goes to the eighth whose sixteenths it is nearest. An
   eighth is fitted, as a whole, to each rhythm it can hold (a note on it, on its second sixteenth,
   both, or none), and in simple meters two eighths together to a triplet of eighths (``(3``, also
   one that starts off the beat). A fit costs the squared distance of each onset from its slot, in
   player's timing spreads, plus how rare the rhythm is (sixteenths and triplets cost more than
   eighths); an onset a rhythm leaves out costs more still. The cheapest cut of the eighths into
   single eighths and triplets wins (a dynamic programme over them), so three notes that share a
   quarter are heard as a triplet even when jitter puts each nearer a sixteenth. An eighth is
   decided once no onset can still come nearer its grid, and in simple meters once the next has
   been heard too (it may start a triplet with it).
3. **Lengths** (``_end``). A note lasts to the next onset: a player holds a note ``HOLD_LOW`` ..
   ``HOLD_HIGH`` of its length and that is still its length. A note released clearly earlier lasts
   as long as its sound on the grid (of the lengths it could have been held that long, the one
   ending at the strongest place in the bar) and a rest ``z`` fills the gap to the next. No note
   lasts longer than two bars (the note rules' bound). A rest is written only when the next note
   comes (the music may have ended); the last note's length is its sound's.
4. **The key** (``_decide_key``). Given, or found from the first ``listen_bars`` bars
   (``keys.find_key``); the transposition into C (``keys.transposition``) and the mode token
   ``K:C<mode>`` are fixed then. Until then nothing is handed out.
5. **Writing** (``spelling.TokenWriter``): ``M:`` and ``K:``, then bar lines ``|`` counted from the
   origin, pitches against the mode's key signature, lengths, ``A > B`` and ``(3 A B c``.

Notes played before the origin are a pickup: the written tune starts at its first note, and the
first bar line falls at the origin. Nothing a musician plays (notes never released, overlapping,
out of range, hundreds a second, a clock run backwards) makes it raise, and every token it hands
out is in the vocabulary.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

from instrument.model import vocab
from instrument.music.keys import find_key, transposition
from instrument.music.notes import MAX_HELD_BARS
from instrument.music.phrasing import seconds_per_quarter
from instrument.music.spelling import Placed, TokenWriter, length_tokens
from instrument.music.tunes import Tune

__all__ = ["HeardNote", "Transcriber"]

CLUSTER_S = 0.035  # onsets this close to the first of a group are one event (a chord, a grace note)
ORNAMENT_S = 0.045  # a member of a group sounding shorter than this is an ornament
TIMING_S = 0.015  # a player's onset spread around the grid: the least the fit allows
HOLD_LOW, HOLD_HIGH = 0.7, 0.95  # the share of a note's length a player holds before the next
_HOLD = math.sqrt(HOLD_LOW * HOLD_HIGH)  # the middle of that, on a log scale
HELD_FULL = 0.65  # held this share of the time to the next onset (HOLD_LOW less a margin): no rest
_LEFT_OUT = 9.0  # the cost of an onset that no slot of a rhythm takes (three timing spreads)
# How rare each rhythm is, in the fit's units (squared timing spreads): a note on the beat costs
# nothing, on another eighth a little, on a sixteenth between eighths more; a triplet of eighths
# about what two sixteenths do, and more when it starts off the beat.
_EIGHTH_COST = 0.4
_SIXTEENTH_COST = 1.5
_TRIPLET = (Fraction(0), Fraction(1, 3), Fraction(2, 3))  # its notes, in quarter notes from its start
_TRIPLET_COST = 2.5
_OFFBEAT_TRIPLET = 1.0
_EIGHTH = Fraction(1, 2)  # quarter notes
_SIXTEENTH = Fraction(1, 4)


@dataclass
class HeardNote:
    """A note as the musician played it, times in seconds (``off`` None while it sounds)."""

    on: float
    pitch: int
    velocity: int
    off: float | None = None


@dataclass
class _OnGrid:
    """An event's note placed on the grid."""

    pos: Fraction  # quarter notes from the origin
    note: HeardNote  # the member kept (its off may still come)
    triplet: int = 0  # 1..3: its place in a triplet; 0: none


# -- the transcriber -------------------------------------------------------------------------------
class Transcriber:
    """A musician's notes in, folk-rnn's tokens out, as they become certain (see the module docstring).

    ``meter`` as in the vocabulary (``"6/8"``); ``bpm`` in the meter's beat (a dotted quarter in
    6/8, 9/8 and 12/8, a half in 3/2, else a quarter); ``origin_s`` the time of a bar line on the
    caller's clock; ``key`` a (tonic pitch class 0..11, mode) pair, or None to find it from the
    first ``listen_bars`` bars; ``shift`` with ``key``: the tune's transposition already known (a tune
    going on), so tokens come from the first note. Each call returns the tokens it made certain; ``tokens`` holds them
    all: ``M:<meter>``, ``K:C<mode>`` and then the body.
    """

    def __init__(self, meter: str, bpm: float, origin_s: float, key: tuple[int, str] | None = None,
                 listen_bars: float = 4.0, shift: int | None = None) -> None:
        if meter not in vocab.METER_EIGHTHS:
            raise ValueError(f"unknown meter {meter!r}; valid: {', '.join(vocab.METERS)}")
        if not bpm > 0:
            raise ValueError(f"tempo must be above 0 BPM, not {bpm}")
        if key is not None and (key[1] not in vocab.MODE_SIGNATURE or not 0 <= key[0] < 12):
            raise ValueError(f"a key is (tonic 0..11, mode one of {', '.join(vocab.MODES)}), not {key!r}")
        self.meter, self.bpm, self.origin = meter, float(bpm), float(origin_s)
        self.spq = seconds_per_quarter(bpm, meter)  # seconds per quarter note
        self.bar = Fraction(vocab.METER_EIGHTHS[meter], 2)
        self.bound = MAX_HELD_BARS * self.bar
        compound = meter in vocab.COMPOUND_METERS
        self._eighths_per_beat = 3 if compound else 2  # eighths to a dotted quarter or a quarter
        self._triplets = not compound
        self._lag = 1 if self._triplets else 0  # eighths that wait for the next (it may start a triplet)
        self._spread = max(TIMING_S, self.spq / 16)  # timing spread the fit allows, seconds
        self._given_key = key
        self._given_shift = shift if key is not None else None  # a tune going on: its key and octave are known
        self._key: tuple[int, str] | None = None
        self._shift: int | None = None
        self.listen = Fraction(0) if self._given_shift is not None else Fraction(listen_bars).limit_denominator(8) * self.bar
        self._now = -math.inf
        self._heard: list[HeardNote] = []
        self._sounding: dict[int, deque[HeardNote]] = {}
        self._grouped = 0  # heard notes already put in groups
        self._kept: list[HeardNote] = []  # the note kept of each group, in order (the melody as played)
        self._onsets: list[HeardNote] = []  # events not yet on the grid
        self._cell_next: int | None = None  # the first eighth (from the origin) not yet decided
        self._last: _OnGrid | None = None  # the note whose length is still open
        self._rest_from: Fraction | None = None  # where a rest after the last note started
        self._events: list[Placed] = []  # certain, waiting for the key
        self._first: Fraction | None = None  # where the music started
        self._writer: TokenWriter | None = None
        self._tokens: list[str] = []
        self._finished = False

    # -- public ----------------------------------------------------------------------------------
    @property
    def tokens(self) -> list[str]:
        """Every token handed out so far: ``M:``, ``K:``, then the body."""
        return list(self._tokens)

    @property
    def start(self) -> Fraction | None:
        """Where the written tune starts (its first note), in quarter notes from the origin:
        negative when it starts with a pickup."""
        return self._first

    @property
    def heard(self) -> tuple[HeardNote, ...]:
        """Every note played, as played (ornaments and chord members included)."""
        return tuple(self._heard)

    def melody(self, since: int = 0) -> list[HeardNote]:
        """The note kept of each event from the ``since``-th on, in order, as soon as its event is
        known (``CLUSTER_S`` and ``ORNAMENT_S`` after its onset): what a follower plays along with,
        long before its place on the grid is certain. Its ``off`` fills in when it is released."""
        return self._kept[since:]

    @property
    def key(self) -> tuple[int, str] | None:
        """(tonic pitch class, mode) heard or given, once fixed."""
        return self._key

    @property
    def shift(self) -> int | None:
        """Semitones added to every pitch to write it in C, once fixed."""
        return self._shift

    def tune(self) -> Tune:
        """The transcription so far as a ``Tune`` (meter, mode, body)."""
        mode = self._key[1] if self._key else (self._given_key[1] if self._given_key else "maj")
        body = [t for t in self._tokens if not t.startswith(("M:", "K:"))]
        return Tune(self.meter, mode, body, ended=self._finished)

    def note_on(self, time_s: float, pitch: int, velocity: int = 64) -> list[str]:
        """A note starts (velocity 0 is a note-off, as in MIDI)."""
        if velocity <= 0:
            return self.note_off(time_s, pitch)
        out = self.advance(time_s)
        if self._finished:
            return out
        note = HeardNote(max(time_s, self._now), int(pitch), int(velocity))
        self._heard.append(note)
        self._sounding.setdefault(note.pitch, deque()).append(note)
        return out

    def note_off(self, time_s: float, pitch: int) -> list[str]:
        """A note ends: the one of that pitch that started first among those sounding."""
        out = self.advance(time_s)
        held = self._sounding.get(int(pitch))
        if held:
            note = held.popleft()
            note.off = max(self._now, note.on)
        return out

    def advance(self, time_s: float) -> list[str]:
        """The clock moved to ``time_s``: hand out what is now certain."""
        if self._finished:
            return []
        self._now = max(self._now, float(time_s))
        return self._run(final=False)

    def finish(self, time_s: float | None = None) -> list[str]:
        """The musician stopped: everything heard is written (notes still held end at ``time_s``)."""
        if self._finished:
            return []
        if time_s is not None:
            self._now = max(self._now, float(time_s))
        for queue in self._sounding.values():
            for note in queue:
                note.off = max(self._now, note.on)
        self._sounding.clear()
        out = self._run(final=True)
        self._finished = True
        return out

    # -- stages ------------------------------------------------------------------------------------
    def _run(self, final: bool) -> list[str]:
        self._group(final)
        self._place(final)
        self._lengths(final)
        return self._write(final)

    def _group(self, final: bool) -> None:
        """Heard notes into events: a group's ornaments dropped, its highest other member kept."""
        heard = self._heard
        while self._grouped < len(heard):
            first = heard[self._grouped]
            end = self._grouped
            while end < len(heard) and heard[end].on - first.on <= CLUSTER_S:
                end += 1
            members = heard[self._grouped:end]
            if not final and (self._now <= first.on + CLUSTER_S or self._now < members[-1].on + ORNAMENT_S):
                return  # more members may come, or a member's length is not known yet
            self._grouped = end

            def sounded(note: HeardNote) -> float:
                return (note.off if note.off is not None else self._now) - note.on

            lasting = [n for n in members if sounded(n) >= ORNAMENT_S]
            if lasting:
                kept = max(lasting, key=lambda n: (n.pitch, -n.on))
            elif len(members) == 1 and sounded(members[0]) < self.spq / 12:
                continue  # a lone note shorter than a third of a sixteenth
            else:
                kept = max(members, key=sounded)
            self._onsets.append(kept)
            self._kept.append(kept)

    def _position(self, time_s: float) -> float:
        return (time_s - self.origin) / self.spq

    def _cell_of(self, time_s: float) -> int:
        """The eighth whose sixteenth grid is nearest (boundaries half a sixteenth before each)."""
        return math.floor((self._position(time_s) + _SIXTEENTH / 2) / _EIGHTH)

    def _closed(self) -> int:
        """The last eighth that no onset can still join: its last onset could come half a
        sixteenth before the next eighth, and an event is known a while after its onset."""
        wait = CLUSTER_S + ORNAMENT_S
        closed = math.floor(((self._now - wait - self.origin) / self.spq + _SIXTEENTH / 2) / _EIGHTH) - 1
        if self._grouped < len(self._heard):  # a group still forming (a clock run backwards)
            closed = min(closed, self._cell_of(self._heard[self._grouped].on) - 1)
        return closed

    def _place(self, final: bool) -> None:
        """Decide the rhythm of every eighth that is closed, in segments (an eighth, or two as a
        triplet), and put the onsets they keep on the grid. Where an eighth may yet start a
        triplet with the next one, it and the eighth before wait for it."""
        onsets = self._onsets
        if final:
            if not onsets:
                return
            last = max(self._cell_of(o.on) for o in onsets)
        else:
            last = self._closed()
        if self._cell_next is None:
            if not onsets:
                return
            self._cell_next = self._cell_of(onsets[0].on)
        if not onsets or self._cell_of(onsets[0].on) > last:
            self._cell_next = max(self._cell_next, last + 1 - self._lag)  # empty eighths, decided
            return
        first = max(self._cell_next, min(self._cell_of(onsets[0].on), last + 1 - self._lag))
        if final:
            last = max(last, first)
        buckets: dict[int, list[HeardNote]] = {}
        for onset in onsets:
            cell = max(first, self._cell_of(onset.on))  # one heard after its eighth closed: the next open one
            if cell > last:
                break
            buckets.setdefault(cell, []).append(onset)
        segments = self._segments(first, last, buckets)
        if not final:  # the last eighth may still start a triplet with the next: it and what joins it wait
            segments = [(start, size) for start, size in segments if start + size - 1 <= last - self._lag]
        done = first
        for start, size in segments:
            members = [o for c in range(start, start + size) for o in buckets.get(c, [])]
            for placed in self._fit(start, size, members)[1]:
                self._take(placed)
            done = start + size
        used = sum(len(buckets.get(c, [])) for c in range(first, done))
        del onsets[:used]
        self._cell_next = done

    def _segments(self, first: int, last: int, buckets: dict[int, list[HeardNote]]) -> list[tuple[int, int]]:
        """The cheapest cut of eighths ``first``..``last`` into single eighths and triplets (two
        eighths, simple meters only): (first eighth, eighths) of each segment, in order."""
        size = last - first + 1
        cost = [0.0] * (size + 1)
        step = [1] * (size + 1)
        for i in range(1, size + 1):
            c = first + i - 1
            cost[i] = cost[i - 1] + self._fit(c, 1, buckets.get(c, []))[0]
            if self._triplets and i >= 2:
                members = buckets.get(c - 1, []) + buckets.get(c, [])
                if len(members) >= 3:
                    pair = cost[i - 2] + self._fit(c - 1, 2, members)[0]
                    if pair < cost[i]:
                        cost[i], step[i] = pair, 2
        out = []
        i = size
        while i > 0:
            out.append((first + i - step[i], step[i]))
            i -= step[i]
        return out[::-1]

    def _fit(self, cell: int, size: int, onsets: list[HeardNote]) -> tuple[float, list[_OnGrid]]:
        """The rhythm that fits ``onsets`` best in eighth ``cell`` (any of its two sixteenths) or,
        ``size`` 2, the triplet on it and the next: its cost and the onsets it keeps, placed."""
        if not onsets:
            return 0.0, []
        start = cell * _EIGHTH
        times = [o.on for o in onsets]
        if size == 2:
            rarity = _TRIPLET_COST + (0.0 if cell % 2 == 0 else _OFFBEAT_TRIPLET)
            rhythms = [(tuple(start + s for s in _TRIPLET), rarity)]
        else:
            on_beat = cell % self._eighths_per_beat == 0
            first = 0.0 if on_beat else _EIGHTH_COST
            second = start + _SIXTEENTH
            rhythms = [((), 0.0), ((start,), first), ((second,), _SIXTEENTH_COST),
                       ((start, second), first + _SIXTEENTH_COST)]
        best: tuple[float, tuple[Fraction, ...], list[int]] | None = None
        for slots, rarity in rhythms:
            if len(slots) > len(onsets):
                continue
            cost, chosen = self._match(times, [self.origin + float(s) * self.spq for s in slots])
            cost += rarity
            if best is None or cost < best[0]:
                best = (cost, slots, chosen)
        if best is None:
            return math.inf, []
        cost, slots, chosen = best
        return cost, [_OnGrid(slot, onsets[i], triplet=(j + 1 if size == 2 else 0))
                      for j, (slot, i) in enumerate(zip(slots, chosen))]

    def _match(self, times: list[float], slots: list[float]) -> tuple[float, list[int]]:
        """The cheapest order-keeping match of every slot to an onset (onsets left out cost
        ``_LEFT_OUT``): (cost, the onset each slot takes)."""
        n, m = len(times), len(slots)
        inf = math.inf
        cost = [[inf] * (m + 1) for _ in range(n + 1)]
        cost[0][0] = 0.0
        for i in range(1, n + 1):
            cost[i][0] = i * _LEFT_OUT
            for j in range(1, min(i, m) + 1):
                miss = ((times[i - 1] - slots[j - 1]) / self._spread) ** 2
                cost[i][j] = min(cost[i - 1][j] + _LEFT_OUT, cost[i - 1][j - 1] + miss)
        chosen = []
        i, j = n, m
        while j > 0:
            miss = ((times[i - 1] - slots[j - 1]) / self._spread) ** 2
            if cost[i][j] == cost[i - 1][j - 1] + miss:
                chosen.append(i - 1)
                j -= 1
            i -= 1
        return cost[n][m], chosen[::-1]

    def _take(self, placed: _OnGrid) -> None:
        """A new onset on the grid: the open note before it now has its length."""
        if self._first is None:
            self._first = placed.pos
        last = self._last
        if last is not None:
            end = self._end(last, placed.pos)
            self._events.append(Placed(last.pos, end - last.pos, last.note.pitch, last.triplet))
            self._rest_from = end
        if self._rest_from is not None and self._rest_from < placed.pos:
            self._events.append(Placed(self._rest_from, placed.pos - self._rest_from, None))
        self._rest_from = None
        self._last = placed

    def _end(self, placed: _OnGrid, following: Fraction | None) -> Fraction:
        """Where a note's length ends, the next onset at ``following`` (None: none comes): there,
        unless it was released clearly before (then where its sound ends on the grid)."""
        full = self.bound if following is None else min(following - placed.pos, self.bound)
        note = placed.note
        if 0 < placed.triplet < 3:  # inside a triplet: to the next note (the music ended in it: a third)
            return placed.pos + (full if following is not None else Fraction(1, 3))
        if note.off is None:  # still sounding: to the next onset
            return placed.pos + full
        held = max(note.off - note.on, 1e-3) / self.spq  # quarter notes
        if following is not None and held >= HELD_FULL * float(full):
            return placed.pos + full  # held as long as a player holds a note: no rest
        # a rest follows (or nothing): the note is as long as its sound on the grid, the strongest
        # place in the bar among the lengths a player could have held that long, else the nearest
        best: tuple[int, float, Fraction] | None = None
        step = _SIXTEENTH
        end = math.floor(placed.pos / step) * step + step
        while end - placed.pos < full or (following is None and end - placed.pos == full):
            length = end - placed.pos
            if not placed.triplet or length_tokens(length * 3) is not None:
                misfit = abs(math.log(held / (float(length) * _HOLD)))
                plausible = HOLD_LOW * 0.9 <= held / float(length) <= 1.0
                strength = self._strength(end) if plausible else -1
                if best is None or (-strength, misfit) < (-best[0], best[1]):
                    best = (strength, misfit, length)
            end += step
        return placed.pos + (best[2] if best is not None else full)

    def _strength(self, pos: Fraction) -> int:
        """How strong a place in the bar is: 3 a bar line, 2 a beat, 1 an eighth, 0 a sixteenth."""
        if pos % self.bar == 0:
            return 3
        if pos % (_EIGHTH * self._eighths_per_beat) == 0:
            return 2
        return 1 if pos % _EIGHTH == 0 else 0

    def _lengths(self, final: bool) -> None:
        """The open note's length once it is certain: released and past it, or held to the bound."""
        last = self._last
        if last is None or self._cell_next is None:
            return
        if final:
            end = self._end(last, None)
        else:
            frontier = self._cell_next * _EIGHTH  # no onset can still come before this
            end = self._end(last, frontier)
            if end >= frontier and end - last.pos < self.bound:
                return  # the next onset may still be its end
        self._events.append(Placed(last.pos, end - last.pos, last.note.pitch, last.triplet))
        self._last = None
        self._rest_from = end

    def _decide_key(self, final: bool) -> bool:
        """Fix the key, the transposition and the header once ``listen`` has been heard (or at the
        end); whether they are fixed."""
        if self._writer is not None:
            return True
        if self._first is None:
            return False
        heard_to = self._cell_next * _EIGHTH if self._cell_next is not None else self._first
        if not final and heard_to - self._first < self.listen:
            return False
        notes = [(e.pitch, float(e.length)) for e in self._events if e.pitch is not None]
        if self._last is not None:
            notes.append((self._last.note.pitch, float(max(heard_to - self._last.pos, _SIXTEENTH))))
        self._key = self._given_key or find_key(notes)
        self._shift = self._given_shift if self._given_shift is not None else transposition(self._key[0], notes)
        self._writer = TokenWriter(self.meter, self._key[1])
        self._tokens += [vocab.meter_token(self.meter), vocab.mode_token(self._key[1])]
        return True

    def _write(self, final: bool) -> list[str]:
        """Write the events now certain (once the key is fixed); the tokens that made."""
        start = len(self._tokens)
        if not self._decide_key(final):
            return []
        writer = self._writer
        assert writer is not None and self._shift is not None
        for event in self._events:
            pitch = None if event.pitch is None else event.pitch + self._shift
            self._tokens += writer.push(Placed(event.pos, event.length, pitch, event.triplet))
        self._events.clear()
        if final:
            self._tokens += writer.flush()
        return self._tokens[start:]

