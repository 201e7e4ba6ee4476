"""A tune as a band plays it, written as one ABC score: the lead's tune and a ``V:`` for each voice.

A follower's part is its own tokens (one per lead token, so its bars and repeat signs are the
lead's). The chords and the drone are notes (``music.accompany``); they are written on the
lead's written bars, each bar as it sounded the first time it was played, with the lead's bar
lines and repeat signs between them, so the voices line up bar for bar in a score (abcjs) and
abc2midi plays every voice the same length. Chords are written as ``[...]`` with the chord's
name above (``"Gm"``, as a chord chart writes it); a note held over a bar line is tied.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from instrument.model import vocab
from instrument.music.harmony import ChordChange
from instrument.music.notes import Note, NoteStream
from instrument.music.tunes import ABC_ACCIDENTALS, BAR_TOKENS, Tune, abc_body

_LETTERS = (("C", 0), ("D", 2), ("E", 4), ("F", 5), ("G", 7), ("A", 9), ("B", 11))
_CLEF = {"chords": "bass", "drone": "bass"}


@dataclass(frozen=True)
class VoiceLine:
    """One voice of a tune besides the lead: a follower's tokens, or an accompanist's notes."""

    voice: int
    name: str  # as tracks name it: "follow", "chords", "follow 3"
    role: str
    body: tuple[str, ...] = ()  # a follower's tokens
    notes: tuple[Note, ...] = ()  # chords or drone, in tune time as played
    chords: tuple[ChordChange, ...] = ()  # the chord of each beat group (chords)


@dataclass(frozen=True)
class BandTune:
    """The lead's ``tune`` with its other ``voices``: where a recording takes a ``Tune``."""

    tune: Tune
    voices: tuple[VoiceLine, ...]
    programs: tuple[tuple[int, int], ...] = ()  # (voice, General MIDI program 0..127) for abc2midi

    meter = property(lambda self: self.tune.meter)
    mode = property(lambda self: self.tune.mode)
    body = property(lambda self: self.tune.body)
    ended = property(lambda self: self.tune.ended)

    def to_abc(self, number: int = 1, title: str | None = None) -> str:
        """Playable ABC with one ``V:`` per voice, the lead first."""
        tune = self.tune
        lines = [f"X:{number}"]
        if title:
            lines.append(f"T:{title}")
        lines += [ABC_ACCIDENTALS, f"M:{tune.meter}", "L:1/8", f"K:C{tune.mode}"]
        programs = dict(self.programs)
        lines += voice_header(1, "lead", "lead", programs.get(1))
        lines.append(abc_body(tune.body))
        for line in self.voices:
            lines += voice_header(line.voice, line.name, line.role, programs.get(line.voice))
            lines.append(voice_abc(tune, line))
        return "\n".join(lines) + "\n"


def voice_header(voice: int, name: str, role: str, program: int | None) -> list[str]:
    """A voice's ``V:`` line (with its clef) and abc2midi's instrument for it."""
    clef = _CLEF.get(role)
    out = [f'V:{voice} name="{name}"' + (f" clef={clef}" if clef else "")]
    if program is not None:
        out.append(f"%%MIDI program {program}")
    if role == "chords":
        out.append("%%MIDI gchordoff")  # the chord names are for the reader: the voice plays its own chords
    return out


def voice_abc(tune: Tune, line: VoiceLine) -> str:
    """One voice's ABC body: a follower's tokens, or the accompaniment's notes on the lead's bars."""
    if line.role == "follow" or line.body:
        return abc_body(list(line.body))
    return accompaniment_abc(tune, line.notes, line.chords)


def accompaniment_abc(tune: Tune, notes: Sequence[Note], chords: Sequence[ChordChange] = ()) -> str:
    """Accompaniment notes written on the lead's written bars (see the module docstring)."""
    stream = NoteStream(tune.meter, tune.mode, repeats=False)
    for token in tune.body:
        stream.push(token)
    stream.close()
    bars = stream.bars
    leading = []  # bar tokens before the first bar (a ``|:`` that opens the tune)
    for token in tune.body:
        if token not in BAR_TOKENS:
            break
        leading.append(token)
    notes = _held(notes)
    first_play: dict[int, float] = {}  # written bar -> its first downbeat as played
    for n in sorted(notes, key=lambda n: n.start):
        first_play.setdefault(n.bar, n.start - n.bar_offset)
    symbols: dict[tuple[int, Fraction], str] = {}
    previous = None
    for change in chords:
        downbeat = change.group.start - change.group.bar_offset
        if abs(first_play.get(change.group.bar, downbeat) - downbeat) < 1e-6 and change.chord != previous:
            symbols[(change.group.bar, _eighths(change.group.bar_offset))] = change.chord.symbol
        previous = change.chord
    out = [f"{t} " for t in leading]
    carry: list[tuple[frozenset[int], Fraction]] = []  # what sounds on from the bar before: (pitches, eighths left)
    for index, bar in enumerate(bars):
        length = _eighths(bar.length)
        downbeat = first_play.get(index)
        events: list[tuple[Fraction, frozenset[int], Fraction]] = []  # (offset, pitches, length) in eighths
        for pitches, left in carry:
            events.append((Fraction(0), pitches, left))
        if downbeat is not None:
            by_onset: dict[Fraction, tuple[set[int], Fraction]] = {}
            for n in notes:
                if n.bar == index and abs(n.start - n.bar_offset - downbeat) < 1e-6:
                    at = _eighths(n.bar_offset)
                    group = by_onset.setdefault(at, (set(), _eighths(n.duration)))
                    group[0].add(n.pitch)
            events += [(at, frozenset(p), d) for at, (p, d) in sorted(by_onset.items())]
        text, carry = _bar(events, length, tune.mode, index, symbols)
        out.append(text)
        end = bar.end_token
        if 0 <= end < len(tune.body):  # the lead's bar line, and any that follow it (``:| |:``)
            while end < len(tune.body) and tune.body[end] in BAR_TOKENS:
                out.append(f" {tune.body[end]} ")
                end += 1
        else:
            out.append(" |]" if index == len(bars) - 1 else " | ")
    return "".join(out).strip()


def _held(notes: Sequence[Note]) -> list[Note]:
    """Notes cut where the same pitch is struck again (a drone's strike ends the one before, as
    the outputs play it)."""
    out = []
    by_pitch: dict[int, list[Note]] = {}
    for n in sorted(notes, key=lambda n: n.start):
        by_pitch.setdefault(n.pitch, []).append(n)
    for same in by_pitch.values():
        for n, after in zip(same, same[1:] + [None]):
            if after is not None and after.start < n.start + n.duration:
                n = Note(n.pitch, n.start, after.start - n.start, n.bar, n.bar_offset, n.token)
            if n.duration > 1e-9:
                out.append(n)
    return out


def _bar(events, length: Fraction, mode: str, index: int, symbols) -> tuple[str, list]:
    """One bar's text from its (offset, pitches, length) events, rests between; what is held on
    over its end is tied and carried into the next bar."""
    held: dict[tuple[str, int], int] = {}
    text, at, carry = [], Fraction(0), []
    merged: dict[Fraction, tuple[frozenset[int], Fraction]] = {}
    for offset, pitches, size in events:
        if offset >= length:
            continue
        if offset in merged:  # a note carried in and a new strike at the downbeat: the strike wins
            merged[offset] = (merged[offset][0] | pitches, max(size, merged[offset][1]))
        else:
            merged[offset] = (pitches, size)
    onsets = sorted(merged)
    for i, offset in enumerate(onsets):
        pitches, size = merged[offset]
        if offset > at:
            text.append("z" + _length(offset - at))
        stop = onsets[i + 1] if i + 1 < len(onsets) else length
        sounding = min(size, stop - offset)
        tie = offset + size > length and stop == length
        if tie:
            carry.append((pitches, offset + size - length))
        symbol = symbols.get((index, offset))
        chord = "".join(_spell(p, mode, held) for p in sorted(pitches))
        text.append((f'"{symbol}"' if symbol else "") + (f"[{chord}]" if len(pitches) > 1 else chord)
                    + _length(sounding) + ("-" if tie else ""))
        at = offset + sounding
    if at < length:
        text.append("z" + _length(length - at))
    return " ".join(text) or "z" + _length(length), carry


def _eighths(beats: float) -> Fraction:
    return Fraction(beats * 2).limit_denominator(48)


def _length(eighths: Fraction) -> str:
    """A length in eighths as ABC writes it under L:1/8: ``""``, ``3``, ``3/2``, ``/2``."""
    if eighths == 1:
        return ""
    if eighths.denominator == 1:
        return str(eighths.numerator)
    return (str(eighths.numerator) if eighths.numerator != 1 else "") + f"/{eighths.denominator}"


def _spell(pitch: int, mode: str, held: dict[tuple[str, int], int]) -> str:
    """A MIDI pitch as an ABC note under the mode's key signature and the accidentals already
    written in the bar (which hold for their letter and octave: %%propagate-accidentals octave)."""
    signature = vocab.MODE_SIGNATURE[mode]
    options = []
    for letter, natural in _LETTERS:
        for accidental in (0, -1, 1):
            midi_octave, rest = divmod(pitch - natural - accidental - 60, 12)
            if rest == 0:
                options.append((letter, accidental, midi_octave))
    # the spelling the key (and the bar) already gives, else the plainest
    def cost(option):
        letter, accidental, octave = option
        current = held.get((letter, octave), signature.get(letter, 0))
        return (accidental != current, accidental != 0, accidental > 0)
    letter, accidental, octave = min(options, key=cost)
    current = held.get((letter, octave), signature.get(letter, 0))
    mark = ""
    if accidental != current:
        mark = {-1: "_", 0: "=", 1: "^"}[accidental]
        held[(letter, octave)] = accidental
    name = letter if octave <= 0 else letter.lower()
    suffix = "," * (-octave) if octave < 0 else "'" * (octave - 1) if octave > 1 else ""
    return mark + name + suffix
