"""How a token stream sounds: the token-to-note rules (docs/design.md §2), streaming and whole-tune.

One implementation serves both the live loop and offline tools: ``NoteStream`` takes body tokens one
by one and hands out each note as soon as its pitch and length are certain; ``tune_notes`` just feeds
it a whole tune. Time is kept exact in eighth notes (the unit length L = 1/8) with ``Fraction`` and
exposed in quarter-note beats as floats.

Choices where the spec is silent (tests/test_notes.py pins each one):

- A duration token acts only on the pitch, rest or ``]`` right before it: a duration after a duration
  is ignored, like a stray one after a bar line or at the start, so a note's length is one token and
  a note once emitted never changes. A broken-rhythm token right after a duration keeps its direction
  and leaves out its own length (``A /4 2<`` plays as ``A /4 <``).
- A note, chord or rest lasts at most two bars of the meter (``MAX_HELD_BARS``; docs/design.md §2),
  what a player would hold, so no run of tokens can silence the instrument: a longer one is cut to
  fit, and what follows starts where it ends.
- A ``(p`` while a tuplet is still running is ignored (abc2midi: "nested tuples"); a tuplet runs on
  across bar lines.
- A ``[`` inside a chord and a ``]`` outside one are ignored (as abc2midi does); a bar token inside a
  chord first closes the chord, so no note spans a bar line; a rest inside a chord is ignored, with its
  duration (ABC has no rest inside a chord), and an empty chord is nothing.
- A chord is played as a hand plays it: its notes start and end together, lasting as long as its
  first note (that note's duration inside the brackets times the one after ``]``; the durations of
  its other notes are ignored); at most ``vocab.MAX_CHORD_NOTES`` members (a pitch past them closes
  the chord and sounds after it, as if ``]`` came first), and a pitch already in the chord sounds once.
- Second endings: a ``|2`` right after the ``:|`` of a section with a ``|1`` plays after the repeat
  and lasts as many bars as the first ending did; the next section (for a later ``:|`` that no
  ``|:`` opened) starts after it.
- Only ``:|`` repeats: a second ``|:`` before any ``:|`` just starts the section afresh, and a ``:|``
  with nothing since the last one repeats nothing.

Bars are the written bars, counted the way abc2midi counts them (see ``instrument.music.bars``).

The stream also writes what it played as ABC, one piece per token (``spelled``), in the one form
that abc2midi, abcjs and music21 all read as played: each note, rest or chord with its written
length in full after it (``A3``, ``[CE]2``, ``z9/4``) and no broken-rhythm signs (``A 2>`` is
``A3`` and the next note halved: abc2midi breaks a rhythm only between notes of one written length,
music21 not across a bar line); nothing for a token the rules ignore; a tuplet as ``(p`` (``(p:q:p``
for 5, 7 and 9, whose q readers take differently). A piece is given once nothing can change it, so
the pieces of a note come when it is certain. ``instrument.music.tunes`` joins them into a tune's ABC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Protocol, Sequence

from instrument.model import vocab
from instrument.music.bars import Bar, BarTally, beats
from instrument.model.vocab import TokenClass

__all__ = ["Bar", "MAX_HELD_BARS", "Note", "NoteStream", "Score", "held_bound", "note_pitch", "tune_notes", "tuplet_ratio"]

_BROKEN = {">": (Fraction(3, 2), Fraction(1, 2)), "<": (Fraction(1, 2), Fraction(3, 2))}
MAX_HELD_BARS = 2  # the longest a note, chord or rest lasts, in bars of the meter
# How short an open rest may yet become, as a share of its length so far: untimed, the shortest
# duration token and then ``<`` (or ``/2<`` alone); timed, only an outgoing ``<`` can still halve it.
_SHORTEST_DURATION = min(vocab.duration_value(t) for i, t in enumerate(vocab.TOKENS)
                         if vocab.TOKEN_CLASS[i] is TokenClass.DURATION)
_HALVED = _BROKEN["<"][0]
_REST_LEAST_UNTIMED = min(_SHORTEST_DURATION * _HALVED,
                          *(vocab.broken_parts(t)[0] * _HALVED for i, t in enumerate(vocab.TOKENS)
                            if vocab.TOKEN_CLASS[i] is TokenClass.BROKEN and vocab.broken_parts(t)[0] is not None))
_REST_LEAST_TIMED = _HALVED
_LENGTH_TUPLETS = (2, 4)  # tuplets whose ratio (3/2, 3/4) ABC can write in a note's length
ABC_LENGTH = re.compile(r"\d+/\d+|/\d+|\d+")  # a note length as ABC writes it: 3, 3/2, /2, 9/4


@dataclass(frozen=True, slots=True)
class Note:
    """One sounding note, placed in time as played and in the written bar it comes from."""

    pitch: int  # MIDI number
    start: float  # quarter-note beats from the tune's start, as played (repeats unfolded)
    duration: float  # quarter-note beats
    bar: int  # index of the written bar it sits in (0 = first bar of the body)
    bar_offset: float  # quarter-note beats since the start of its bar (for accents on strong beats)
    token: int  # index in the body of the token that started it (its pitch token)


@dataclass
class Score:
    """A whole tune: its notes in playing order and its written bars."""

    notes: list[Note]
    bars: list[Bar]  # written bars (not unfolded)

    @property
    def end(self) -> float:
        """As-played beat where the last note ends (0 for a tune without notes)."""
        return max((n.start + n.duration for n in self.notes), default=0.0)


def tuplet_ratio(p: int, meter: str) -> Fraction:
    """Length factor q/p of the notes of a ``(p`` tuplet (ABC 2.1 section 4.13)."""
    if p in (2, 4):
        q = 3
    elif p in (3, 6):
        q = 2
    else:
        q = 3 if meter in vocab.COMPOUND_METERS else 2
    return Fraction(q, p)


def note_pitch(token: str, mode: str, held: dict[tuple[str, int], int]) -> int:
    """MIDI pitch of a pitch token under a mode's key signature and the accidentals held in the bar.

    An explicit accidental is recorded in ``held`` for its letter and octave (it holds for later
    notes of that letter in that octave until the next bar line).
    """
    accidental, letter, octave = vocab.parse_pitch(token)
    if accidental is not None:
        held[(letter, octave)] = accidental
    else:
        accidental = held.get((letter, octave), vocab.MODE_SIGNATURE[mode].get(letter, 0))
    return vocab.natural_midi(letter, octave) + accidental


def held_bound(meter: str) -> Fraction:
    """The longest a note, chord or rest lasts in ``meter``, in eighths: ``MAX_HELD_BARS`` bars."""
    return MAX_HELD_BARS * Fraction(vocab.METER_EIGHTHS[meter])


def abc_length(written: Fraction) -> str:
    """A length in eighths as ABC writes it after a note: ``""`` (one), ``3``, ``/2``, ``3/2``, ``9/4``."""
    if written == 1:
        return ""
    if written.denominator == 1:
        return str(written.numerator)
    return f"{written.numerator if written.numerator != 1 else ''}/{written.denominator}"


def is_abc_length(text: str) -> bool:
    """Whether ``text`` is a note length as ABC writes it, above 0 (``9/4``, ``/16``; not ``/0``)."""
    if not ABC_LENGTH.fullmatch(text):
        return False
    num, _, den = text.partition("/")
    return (int(num) if num else 1) > 0 and (int(den) if den else 1) > 0


def _kind(token: str) -> TokenClass:
    """A token's class; a note length that no token spells (``9/4``, which ABC we wrote may hold)
    is a duration."""
    index = vocab.INDEX.get(token)
    if index is not None:
        return vocab.TOKEN_CLASS[index]
    if is_abc_length(token):
        return TokenClass.DURATION
    raise ValueError(f"unknown token {token!r}; nearest valid: {', '.join(vocab.nearest(token))}")


@dataclass
class _Event:
    """A note, rest or chord whose length may still change."""

    start: Fraction  # written position, in eighths
    bar: int
    bar_offset: Fraction
    tuplet: Fraction  # the running tuplet's ratio (ABC writes it as ``(p``, not in the length)
    incoming: Fraction  # the broken rhythm owed by the event before (ABC writes it in the length)
    first: int  # body index of its first token (a chord's ``[``)
    pitches: list[tuple[int, int]] = field(default_factory=list)  # (MIDI pitch, body index); none: a rest
    chord: bool = False
    own: Fraction = Fraction(1)  # a chord's first note's duration inside the brackets
    own_timed: bool = False
    mult: Fraction = Fraction(1)  # the duration after it (after ``]``) and an outgoing broken rhythm
    timed: bool = False  # a duration token has set ``mult``
    last: int = -1  # body index of its last token: its written length is written there
    closing: str = ""  # ``]`` for a chord that closed without its ``]`` token

    def written(self, bound: Fraction) -> Fraction:
        """Its length as written in eighths (before the tuplet's ratio), cut to fit in ``bound``."""
        return min(self.own * self.incoming * self.mult, bound / self.tuplet)

    def length(self, bound: Fraction) -> Fraction:
        """Its length as played, in eighths."""
        return self.written(bound) * self.tuplet


@dataclass
class _Section:
    """Where the section that the next ``:|`` repeats starts, and its first ending if any."""

    start: Fraction  # written position, in eighths
    first_note: int  # index into the first-time notes
    head_bar: int  # the bar the section starts in
    head_offset: Fraction  # how far into that bar it starts
    ending: Fraction | None = None  # written position of its ``|1``
    ending_note: int = 0
    ending_bars: int = 0  # bars the first ending spans


class NoteStream:
    """Turns body tokens into notes one token at a time, for the live loop.

    ``push`` returns the notes that became certain with that token: a note comes out once the next
    token shows nothing more can change its length; the notes a repeat plays again come out when
    its ``:|`` arrives, with their as-played start times. ``close`` flushes the last note (call it at
    ``</s>`` or when the tune is cut off; pushing ``</s>`` does the same).
    """

    def __init__(self, meter: str, mode: str, repeats: bool = True) -> None:
        if meter not in vocab.METER_EIGHTHS:
            raise ValueError(f"unknown meter {meter!r}; valid: {', '.join(vocab.METERS)}")
        if mode not in vocab.MODE_SIGNATURE:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(vocab.MODES)}")
        self.meter, self.mode, self.repeats = meter, mode, repeats
        self._index = -1  # body index of the last token pushed
        self._written = Fraction(0)  # written position of the end of the last certain event
        self._offset = Fraction(0)  # as-played minus written position (grows at each repeat)
        self._held: dict[tuple[str, int], int] = {}  # accidentals held until the next bar line
        self._event: _Event | None = None  # waiting for its length
        self._in_chord = False  # between ``[`` and ``]``
        self._chord: _Event | None = None  # the chord being written, once it has a member
        self._next_factor = Fraction(1)  # broken rhythm owed to the next event
        self._tuplet_left = 0
        self._tuplet = Fraction(1)
        self._tuplet_p = 0
        self._tally = BarTally(Fraction(vocab.METER_EIGHTHS[meter]))
        self._first_time: list[tuple[Note, Fraction]] = []  # notes as first played (exact start), for repeats
        self._section = _Section(Fraction(0), 0, 0, Fraction(0))
        self._in_ending = False  # between ``|1`` and ``:|``
        self._after_repeat: _Section | None = None  # a section with a first ending just repeated
        self._second_left = 0  # bars of the second ending still to come
        self._closed = False
        self.bound = held_bound(meter)  # eighths a note, chord or rest lasts at most
        self._timing: str | None = None  # what a duration token right now acts on: "own", "mult" or nothing
        self._chord_open = -1  # body index of the ``[`` of the chord being written
        self._tuplet_at = -1  # body index of the running tuplet's token (its ABC waits for its notes)
        self._tuplet_parts: list[list[int]] = []  # [body index of its first note, notes] per bar it spans
        self._texts: list[str] = []  # each token's ABC so far, by body index
        self._given = 0  # tokens whose ABC was handed out in ``spelled``
        self.spelled: list[str] = []  # the ABC of the tokens that became certain with the last push, in order

    # -- read-only state for the live loop ---------------------------------------------------
    @property
    def position(self) -> float:
        """Written quarter-note beats of everything certain so far (repeats not unfolded)."""
        return beats(self._written)

    @property
    def played(self) -> float:
        """As-played quarter-note beats up to the end of everything certain so far."""
        return beats(self._written + self._offset)

    @property
    def bar_index(self) -> int:
        """Index of the written bar now being filled."""
        return self._tally.current.index

    @property
    def bar_position(self) -> float:
        """Quarter-note beats certain so far in the bar now being filled."""
        return beats(self._tally.current.length)

    @property
    def bars(self) -> tuple[Bar, ...]:
        """The written bars closed so far (a section's first bar may be re-judged at its ``:|``)."""
        return tuple(self._tally.done)

    @property
    def horizon(self) -> float:
        """As-played beats up to which the music is known: the end of everything certain, and past
        it a rest still open as far as its length is certain. A rest sounds nothing, so the live
        loop waits out what is known of it before the network says whether it goes on (a run of
        rests holds the model back as notes do). Certain is the shortest the rest can still become:
        ``z`` alone may yet turn into ``z /8 <`` (a sixteenth of it), and a note after it sounds
        there; counting its length as written so far made that note late by the difference."""
        event = self._event
        if event is not None and not self._in_chord and not event.pitches:
            least = _REST_LEAST_TIMED if event.timed else _REST_LEAST_UNTIMED
            return beats(self._written + self._offset + event.length(self.bound) * least)
        return self.played

    @property
    def in_chord(self) -> bool:
        return self._in_chord

    @property
    def pending(self) -> bool:
        """True while a note, rest or chord waits for the token that settles its length."""
        return self._event is not None or self._in_chord

    @property
    def tuplet_left(self) -> int:
        """Notes still to come in the running tuplet."""
        return self._tuplet_left

    # -- feeding ------------------------------------------------------------------------------
    def push(self, token: str) -> list[Note]:
        """Take the next body token; return the notes that became certain with it. ``spelled`` then
        holds the ABC of the tokens that became certain (see the module docstring)."""
        if self._closed:
            raise ValueError("the tune is closed; start a new NoteStream")
        cls = _kind(token)
        self._index += 1
        self._texts.append("")
        out: list[Note] = []
        timing, self._timing = self._timing, None  # a duration acts only right after what it times
        text = ""
        if cls is TokenClass.PITCH or cls is TokenClass.REST:
            pitch = note_pitch(token, self.mode, self._held) if cls is TokenClass.PITCH else None
            if self._in_chord:
                chord = self._chord
                if pitch is None or (chord is not None and any(p == pitch for p, _ in chord.pitches)):
                    pass  # a rest in a chord, or the same pitch again: left out, with its duration
                elif chord is None or len(chord.pitches) < vocab.MAX_CHORD_NOTES:
                    if chord is None:  # its first note starts it (and takes a tuplet's place)
                        chord = self._chord = self._begin(self._chord_open, chord=True)
                        self._timing, text = "own", "["  # the first note's duration is the chord's
                    chord.pitches.append((pitch, self._index))
                    chord.last = self._index
                    text += token
                else:  # a hand holds no more: the chord closes here and this note follows it
                    self._end_chord(closing="]")
                    self._settle(out)
                    self._event = self._begin(self._index)
                    self._event.pitches.append((pitch, self._index))
                    self._timing, text = "mult", token
            else:
                self._settle(out)
                self._event = self._begin(self._index)
                if pitch is not None:
                    self._event.pitches.append((pitch, self._index))
                self._timing, text = "mult", token
        elif cls is TokenClass.DURATION:
            self._time(timing, vocab.duration_value(token))
        elif cls is TokenClass.BROKEN:
            if self._event is not None and not self._in_chord:
                mult, direction = vocab.broken_parts(token)
                if mult is not None and timing == "mult":  # ``2>`` right after its note: its 2 counts
                    self._time(timing, mult)
                before, after = _BROKEN[direction]
                self._event.mult *= before
                self._event.last = self._index
                self._next_factor = after  # written into the next note's length
                self._settle(out)
        elif cls is TokenClass.TUPLET:
            if not self._in_chord:
                self._settle(out)
                if self._tuplet_left == 0:
                    p = vocab.tuplet_size(token)
                    self._tuplet_left, self._tuplet, self._tuplet_p = p, tuplet_ratio(p, self.meter), p
                    self._tuplet_at = self._index
                    self._tuplet_parts = [[-1, 0]]
        elif cls is TokenClass.CHORD_OPEN:
            if not self._in_chord:  # written with its first pitch: an empty chord is nothing
                self._settle(out)
                self._in_chord, self._chord_open = True, self._index
        elif cls is TokenClass.CHORD_CLOSE:
            if self._in_chord and self._chord is not None:
                self._chord.last, text = self._index, "]"
                self._timing = "mult"
            self._end_chord()
        elif cls is TokenClass.BAR:
            self._end_chord(closing="]")
            self._settle(out)
            self._bar_line(token, out)
            text = token
            if self._tuplet_at >= 0 and self._tuplet_left and self._tuplet_parts[-1][1]:  # it runs on past the bar
                self._tuplet_parts.append([-1, 0])
        elif cls is TokenClass.END:
            out += self.close()
        # <s>, meter and mode tokens carry nothing to play inside a body
        if not self._closed:
            self._texts[self._index] = text + self._texts[self._index]
            self._hand_out()
        return out

    def _time(self, timing: str | None, value: Fraction) -> None:
        """A duration on what it times: the chord's first note inside the brackets (``own``) or the
        note, rest or chord it follows (``mult``); ignored when it follows nothing it can time."""
        if timing == "own" and self._chord is not None and not self._chord.own_timed:
            self._chord.own, self._chord.own_timed, self._chord.last = value, True, self._index
        elif timing == "mult" and self._event is not None and not self._event.timed:
            self._event.mult, self._event.timed, self._event.last = value, True, self._index

    def _hand_out(self) -> None:
        """Put in ``spelled`` the ABC of every token before the note, rest or chord still open, and
        before a tuplet whose notes are not all there (how many it holds is written with it)."""
        if self._tuplet_at >= 0 and (self._tuplet_left == 0 or self._closed):
            self._write_tuplet()
            self._tuplet_at = -1
        if self._closed:
            limit = len(self._texts)
        elif self._in_chord:
            limit = self._chord_open
        elif self._event is not None:
            limit = self._event.first
        else:
            limit = len(self._texts)
        if self._tuplet_at >= 0:
            limit = min(limit, self._tuplet_at)
        self.spelled = self._texts[self._given:limit]
        self._given = max(self._given, limit)

    def _write_tuplet(self) -> None:
        """The tuplet, its notes all there or the tune over, as ABC: ``(p``; ``(p:q:p`` for 5, 7
        and 9, whose q readers take differently (abc2midi: 3 in 3/4); nothing for 2 and 4, whose
        ratio is written in the notes' lengths (``(2AB`` as ``A3/2B3/2``: abcjs times a tuplet of
        unequal notes wrongly). One the tune ended inside is ``(p:q:r``, r its notes, written again
        after each bar line it spans (abc2midi would run it on into the next tune; abcjs ends an
        explicit r at a bar line). Each is written before its first note, not where its token
        stood: abcjs drops a tuplet that a bar line follows."""
        p = self._tuplet_p
        q = self._tuplet * p
        if p in _LENGTH_TUPLETS:
            parts = []
        elif self._tuplet_left == 0:
            parts = [[self._tuplet_parts[0][0], p]]  # its first part has a note: it is complete
        else:
            parts = self._tuplet_parts
        for at, r in parts:  # written before its first note (abcjs drops a tuplet a bar line follows)
            if r:
                self._texts[at] = (f"({p}" if r == p and p not in (5, 7, 9) else f"({p}:{q}:{r}") + self._texts[at]
        self._tuplet_parts = []

    def close(self) -> list[Note]:
        """Flush the last note at the end of the tune; the unfinished last bar is counted."""
        if self._closed:
            return []
        out: list[Note] = []
        self._end_chord(closing="]")
        self._settle(out)
        self._tally.close(self._written, -1, closing=self._tally.current.length <= self._tally.eighths)
        self._closed = True
        self._hand_out()
        return out

    # -- events ------------------------------------------------------------------------------
    def _begin(self, first: int, chord: bool = False) -> _Event:
        """Start an event at the current position; it takes the running tuplet and broken factors."""
        incoming, self._next_factor = self._next_factor, Fraction(1)
        self._after_repeat = None  # music after ``:|``: no second ending follows
        tuplet = Fraction(1)
        if self._tuplet_left:
            self._tuplet_left -= 1
            if self._tuplet_parts:
                part = self._tuplet_parts[-1]
                part[0] = first if part[1] == 0 else part[0]
                part[1] += 1
            if self._tuplet_p in _LENGTH_TUPLETS:  # written into its length (see _write_tuplet)
                incoming *= self._tuplet
            else:
                tuplet = self._tuplet
        bar = self._tally.current
        return _Event(self._written, bar.index, self._written - bar.start, tuplet, incoming, first, chord=chord,
                      last=self._index)

    def _end_chord(self, closing: str = "") -> None:
        """The chord being written is closed (``closing``: the ``]`` to write, when no ``]`` token closed it)."""
        chord, self._chord, self._in_chord = self._chord, None, False
        if chord is not None:
            chord.closing = closing
            self._event = chord  # now waits for a duration or broken rhythm after ``]``

    def _settle(self, out: list[Note]) -> None:
        """The pending event's length is now certain: emit its notes and advance time."""
        event, self._event = self._event, None
        if event is None:
            return
        written = event.written(self.bound)
        length = written * event.tuplet
        start = event.start + self._offset
        for pitch, token in event.pitches:
            note = Note(pitch, beats(start), beats(length), event.bar, beats(event.bar_offset), token)
            self._first_time.append((note, start))
            out.append(note)
        self._texts[event.last] += event.closing + abc_length(written)
        if not event.pitches and written == 8 and self._tally.eighths != 8:
            # abcjs takes a whole note's rest (z8) for a whole bar's, in any meter: two halves then
            self._texts[event.last] = self._texts[event.last][:-1] + "4z4"
        self._written += length
        self._tally.current.length += length

    # -- bar lines and repeats ---------------------------------------------------------------
    def _bar_line(self, token: str, out: list[Note]) -> None:
        self._held.clear()
        tally = self._tally
        length = tally.current.length
        full = length >= tally.eighths or tally.current.index == 0
        if token == ":|":
            self._repeat(length, full, out)
            return
        if token == "|:":
            if full:
                tally.close(self._written, self._index)
            self._start_section(explicit=True)
            return
        if tally.close(self._written, self._index):
            if self._in_ending:
                self._section.ending_bars += 1
            if self._second_left:
                self._second_left -= 1
                if self._second_left == 0:  # the second ending is over: the next section starts
                    self._start_section(explicit=False)
        if token == "|1" and not self._in_ending and self._section.ending is None:
            self._section.ending = self._written
            self._section.ending_note = len(self._first_time)
            self._in_ending = True
            self._second_left = 0
        elif token == "|2" and self._after_repeat is not None:
            self._second_left = max(self._after_repeat.ending_bars, 1)
        self._after_repeat = None

    def _repeat(self, length: Fraction, full: bool, out: list[Note]) -> None:
        """``:|``: check the round trip, play the section again, and start the next one here."""
        section, tally = self._section, self._tally
        if section.start == self._written:  # nothing to play again (``:| :|``)
            self._start_section(explicit=False)
            return
        with_ending = section.ending is not None
        head = tally.length_of(section.head_bar) - section.head_offset
        # a section that lies inside one bar fills that bar when played twice
        fills = section.head_bar == tally.current.index and length + head >= tally.eighths
        if full:
            tail = Fraction(0) if tally.close(self._written, self._index) else length
        elif with_ending or fills:
            tally.close(self._written, self._index, closing=True)  # short, but the repeat completes it
            tail = length
        else:
            tail = length  # the bar runs on past the repeat sign
        if with_ending and length:
            section.ending_bars += 1
        tally.add_check(section.head_bar, tail + head)
        body_end = section.ending if with_ending else self._written
        if self.repeats:
            shift = self._written - section.start  # the section again, right after this sign
            for note, start in self._first_time[section.first_note : section.ending_note if with_ending else None]:
                out.append(replace(note, start=beats(start + shift)))
            self._offset += body_end - section.start
        self._in_ending = False
        self._second_left = 0
        self._start_section(explicit=False)
        self._after_repeat = section if with_ending else None

    def _start_section(self, explicit: bool) -> None:
        current = self._tally.current
        self._section = _Section(self._written, len(self._first_time), current.index, current.length)
        self._in_ending = False
        self._second_left = 0
        self._after_repeat = None
        if explicit and current.length == 0:
            current.head = True


class TuneLike(Protocol):
    """What the note rules read of a tune (``instrument.music.tunes.Tune``, which imports this
    module to write ABC, so it is not imported back)."""

    meter: str
    mode: str
    body: Sequence[str]


def tune_notes(tune: TuneLike, repeats: bool = True) -> Score:
    """All notes and written bars of a tune (repeats played out unless ``repeats`` is False)."""
    stream = NoteStream(tune.meter, tune.mode, repeats)
    notes: list[Note] = []
    for token in tune.body:
        notes += stream.push(token)
    notes += stream.close()
    return Score(notes, list(stream.bars))
