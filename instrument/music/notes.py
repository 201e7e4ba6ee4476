"""How a token stream sounds: the token-to-note rules (docs/design.md §2), streaming and whole-tune.

One implementation serves both the live loop and offline tools: ``NoteStream`` takes body tokens one
by one and hands out each note as soon as its pitch and length are certain; ``tune_notes`` just feeds
it a whole tune. Time is kept exact in eighth notes (the unit length L = 1/8) with ``Fraction`` and
exposed in quarter-note beats as floats.

Choices where the spec is silent (tests/test_notes.py pins each one):

- A duration or broken-rhythm token only acts on the note, rest or chord right before it (durations in
  a row multiply); a stray one (after a bar line, at the start) is ignored, so a note once emitted
  never changes.
- A ``(p`` while a tuplet is still running is ignored (abc2midi: "nested tuples"); a tuplet runs on
  across bar lines.
- A ``[`` inside a chord and a ``]`` outside one are ignored (as abc2midi does); a bar token inside a
  chord first closes the chord, so no note spans a bar line; a rest inside a chord is a silent member.
- A chord is played as a hand plays it: at most ``vocab.MAX_CHORD_NOTES`` members (a pitch past them
  closes the chord and sounds after it, as if ``]`` came first), and a pitch already in the chord
  sounds once (the repeat and its inner duration are left out).
- Every note of a chord starts together; each keeps its own inner duration, the chord advances time
  by its first member's length, and what follows ``]`` multiplies all of them.
- Second endings: a ``|2`` right after the ``:|`` of a section with a ``|1`` plays after the repeat
  and lasts as many bars as the first ending did; the next section (for a later ``:|`` that no
  ``|:`` opened) starts after it.
- Only ``:|`` repeats: a second ``|:`` before any ``:|`` just starts the section afresh, and a ``:|``
  with nothing since the last one repeats nothing.

Bars are the written bars, counted the way abc2midi counts them (see ``instrument.music.bars``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

from instrument.model import vocab
from instrument.music.bars import Bar, BarTally, beats
from instrument.music.tunes import Tune
from instrument.model.vocab import TokenClass

__all__ = ["Bar", "Note", "NoteStream", "Score", "note_pitch", "tune_notes", "tuplet_ratio"]

_BROKEN = {">": (Fraction(3, 2), Fraction(1, 2)), "<": (Fraction(1, 2), Fraction(3, 2))}


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


@dataclass
class _Member:
    """One pitch (or silent rest) of an event, with its own multiplier from inner durations."""

    pitch: int | None
    token: int
    own: Fraction = Fraction(1)


@dataclass
class _Event:
    """A note, rest or chord whose length may still change."""

    start: Fraction  # written position, in eighths
    bar: int
    bar_offset: Fraction
    factor: Fraction  # tuplet and incoming broken-rhythm factors, known when it starts
    members: list[_Member] = field(default_factory=list)
    mult: Fraction = Fraction(1)  # durations (and outgoing broken rhythm) after it / after ``]``

    @property
    def length(self) -> Fraction:
        return self.members[0].own * self.factor * self.mult


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
        self._repeat_in_chord = False  # the last pitch was one the chord holds already
        self._next_factor = Fraction(1)  # broken rhythm owed to the next event
        self._tuplet_left = 0
        self._tuplet = Fraction(1)
        self._tally = BarTally(Fraction(vocab.METER_EIGHTHS[meter]))
        self._first_time: list[tuple[Note, Fraction]] = []  # notes as first played (exact start), for repeats
        self._section = _Section(Fraction(0), 0, 0, Fraction(0))
        self._in_ending = False  # between ``|1`` and ``:|``
        self._after_repeat: _Section | None = None  # a section with a first ending just repeated
        self._second_left = 0  # bars of the second ending still to come
        self._closed = False

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
        """Take the next body token; return the notes that became certain with it."""
        if self._closed:
            raise ValueError("the tune is closed; start a new NoteStream")
        if token not in vocab.INDEX:
            raise ValueError(f"unknown token {token!r}; nearest valid: {', '.join(vocab.nearest(token))}")
        self._index += 1
        cls = vocab.TOKEN_CLASS[vocab.INDEX[token]]
        out: list[Note] = []
        if cls is TokenClass.PITCH or cls is TokenClass.REST:
            pitch = note_pitch(token, self.mode, self._held) if cls is TokenClass.PITCH else None
            if self._in_chord:
                if self._chord is None:
                    self._chord = self._begin()
                members = self._chord.members
                self._repeat_in_chord = pitch is not None and any(m.pitch == pitch for m in members)
                if self._repeat_in_chord:
                    pass  # the same pitch again sounds once
                elif len(members) < vocab.MAX_CHORD_NOTES:
                    members.append(_Member(pitch, self._index))
                else:  # a hand holds no more: the chord closes here and this note follows it
                    self._end_chord()
                    self._settle(out)
                    self._event = self._begin()
                    self._event.members.append(_Member(pitch, self._index))
            else:
                self._settle(out)
                self._event = self._begin()
                self._event.members.append(_Member(pitch, self._index))
        elif cls is TokenClass.DURATION:
            value = vocab.duration_value(token)
            if self._in_chord:
                if self._chord is not None and not self._repeat_in_chord:
                    self._chord.members[-1].own *= value
            elif self._event is not None:
                self._event.mult *= value
        elif cls is TokenClass.BROKEN:
            if self._event is not None and not self._in_chord:
                mult, direction = vocab.broken_parts(token)
                before, after = _BROKEN[direction]
                self._event.mult *= (mult or 1) * before
                self._settle(out)
                self._next_factor = after
        elif cls is TokenClass.TUPLET:
            if not self._in_chord:
                self._settle(out)
                if self._tuplet_left == 0:
                    p = vocab.tuplet_size(token)
                    self._tuplet_left, self._tuplet = p, tuplet_ratio(p, self.meter)
        elif cls is TokenClass.CHORD_OPEN:
            if not self._in_chord:
                self._settle(out)
                self._in_chord = True
        elif cls is TokenClass.CHORD_CLOSE:
            self._end_chord()
        elif cls is TokenClass.BAR:
            self._end_chord()
            self._settle(out)
            self._bar_line(token, out)
        elif cls is TokenClass.END:
            out += self.close()
        # <s>, meter and mode tokens carry nothing to play inside a body
        return out

    def close(self) -> list[Note]:
        """Flush the last note at the end of the tune; the unfinished last bar is counted."""
        if self._closed:
            return []
        out: list[Note] = []
        self._end_chord()
        self._settle(out)
        self._tally.close(self._written, -1, closing=self._tally.current.length <= self._tally.eighths)
        self._closed = True
        return out

    # -- events ------------------------------------------------------------------------------
    def _begin(self) -> _Event:
        """Start an event at the current position; it takes the running tuplet and broken factors."""
        factor = self._next_factor
        self._next_factor = Fraction(1)
        self._after_repeat = None  # music after ``:|``: no second ending follows
        if self._tuplet_left:
            factor *= self._tuplet
            self._tuplet_left -= 1
        bar = self._tally.current
        return _Event(self._written, bar.index, self._written - bar.start, factor)

    def _end_chord(self) -> None:
        chord, self._chord, self._in_chord = self._chord, None, False
        if chord is not None:
            self._event = chord  # now waits for a duration or broken rhythm after ``]``

    def _settle(self, out: list[Note]) -> None:
        """The pending event's length is now certain: emit its notes and advance time."""
        event, self._event = self._event, None
        if event is None:
            return
        scale = event.factor * event.mult
        for member in event.members:
            if member.pitch is None:
                continue
            start = event.start + self._offset
            note = Note(
                member.pitch,
                beats(start),
                beats(member.own * scale),
                event.bar,
                beats(event.bar_offset),
                member.token,
            )
            self._first_time.append((note, start))
            out.append(note)
        self._written += event.length
        self._tally.current.length += event.length

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


def tune_notes(tune: Tune, repeats: bool = True) -> Score:
    """All notes and written bars of a tune (repeats played out unless ``repeats`` is False)."""
    stream = NoteStream(tune.meter, tune.mode, repeats)
    notes: list[Note] = []
    for token in tune.body:
        notes += stream.push(token)
    notes += stream.close()
    return Score(notes, list(stream.bars))
