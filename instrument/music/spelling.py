"""Notes placed on the grid, written as the tokens a folk-rnn tune would use (docs/design.md §2).

The transcriber hears when and what; this module only writes: bar lines counted from the grid's
origin, pitches spelled against the mode's key signature, lengths as duration tokens, broken
rhythm and triplets. Kept apart so that what a heard note looks like on paper can be checked (and
changed) without the listening around it.

- Bar lines ``|`` fall before the first note or rest of each bar; a note that crosses a bar line is
  kept whole in the bar where it starts (folk-rnn has no ties), the bar line after it.
- A pitch is a plain letter when the key signature (or an accidental held in the bar) already
  sounds it, else the letter with ``^``, ``_`` or ``=`` (black keys as C#, Eb, F#, G#, Bb, unless
  the key signature has them); an accidental holds to the next bar line in its letter and octave.
  ``notes.note_pitch``, the rule that plays the tokens, keeps that state, so what is written plays
  as the pitch heard. A pitch no token spells is written an octave nearer the range, else as the
  nearest one spelled.
- Lengths: an eighth has no token, ``2`` a quarter, ``3/2`` a dotted eighth, ``/2`` a sixteenth;
  a dotted eighth then a sixteenth in one bar is ``A > B``, the reverse ``A < B``; a triplet of
  eighths is ``(3 A B c``. A length no token spells (ten eighths) is the longest one that does,
  then rests; a rest is cut at bar lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from instrument.model import vocab
from instrument.model.vocab import TokenClass
from instrument.music.keys import SPELLABLE_RANGE
from instrument.music.notes import note_pitch

__all__ = ["Placed", "TokenWriter", "length_pieces", "length_tokens", "spell"]

_BROKEN = {(Fraction(3, 4), Fraction(1, 4)): ">", (Fraction(1, 4), Fraction(3, 4)): "<"}  # quarter notes


@dataclass(frozen=True)
class Placed:
    """A note (``pitch``, MIDI, in C) or a rest (``pitch`` None) on the grid, in quarter notes
    from the origin; ``triplet`` 1..3 is its place in a triplet of eighths (0: none)."""

    pos: Fraction
    length: Fraction
    pitch: int | None
    triplet: int = 0


# -- lengths --------------------------------------------------------------------------------------
_DURATIONS: dict[Fraction, str] = {vocab.duration_value(t): t for i, t in enumerate(vocab.TOKENS)
                                   if vocab.TOKEN_CLASS[i] is TokenClass.DURATION}
LENGTHS = tuple(sorted({Fraction(1), *_DURATIONS}, reverse=True))  # eighths a token (or none) spells


def length_tokens(eighths: Fraction) -> list[str] | None:
    """The duration token after a note for a length in eighths (``[]`` for one eighth), or None
    when no single token spells it."""
    if eighths == 1:
        return []
    token = _DURATIONS.get(eighths)
    return [token] if token is not None else None


@lru_cache(maxsize=4096)
def length_pieces(eighths: Fraction, most: int = 3) -> tuple[Fraction, ...] | None:
    """The fewest lengths (at most ``most``), each spelled by one token, that add up to
    ``eighths``, longest first; None when there are none."""
    if eighths == 0:
        return ()
    if most == 0 or eighths < 0:
        return None
    best: tuple[Fraction, ...] | None = None
    for value in LENGTHS:
        if value <= eighths:
            rest = length_pieces(eighths - value, most - 1)
            if rest is not None and (best is None or 1 + len(rest) < len(best)):
                best = (value, *rest)
                if len(best) == 1:
                    break
    return best


# -- pitches --------------------------------------------------------------------------------------
_PITCH_TOKENS: dict[tuple[str, int, int | None], str] = {}  # (letter, octave, accidental) -> token
for _i, _t in enumerate(vocab.TOKENS):
    if vocab.TOKEN_CLASS[_i] is TokenClass.PITCH:
        _acc, _letter, _octave = vocab.parse_pitch(_t)
        _PITCH_TOKENS[(_letter, _octave, _acc)] = _t
_NATURALS = {(letter, octave): vocab.natural_midi(letter, octave) for letter, octave, _ in _PITCH_TOKENS}
_PREFERRED = {1: ("C", 1), 3: ("E", -1), 6: ("F", 1), 8: ("G", 1), 10: ("B", -1)}  # C# Eb F# G# Bb


def spell(pitch: int, mode: str, held: dict[tuple[str, int], int]) -> str | None:
    """The token for ``pitch`` under ``mode``'s key signature and the accidentals ``held`` in the
    bar (see the module docstring), ``held`` updated as playing it updates it; None when no token
    spells it."""
    signature = vocab.MODE_SIGNATURE[mode]
    best: tuple[float, str] | None = None
    for (letter, octave), natural in _NATURALS.items():
        alter = pitch - natural
        if abs(alter) > 1:
            continue
        implied = held.get((letter, octave), signature.get(letter, 0))
        if alter == implied and (letter, octave, None) in _PITCH_TOKENS:
            candidate = (0.0, _PITCH_TOKENS[(letter, octave, None)])
        elif (letter, octave, alter) in _PITCH_TOKENS:
            preferred = alter == 0 or _PREFERRED.get(pitch % 12) == (letter, alter)
            candidate = (1.0 if preferred else 1.5, _PITCH_TOKENS[(letter, octave, alter)])
        else:
            continue
        if best is None or candidate < best:
            best = candidate
    if best is None:
        return None
    trial = dict(held)
    if note_pitch(best[1], mode, trial) != pitch:  # the rule that plays it must agree
        return None
    held.clear()
    held.update(trial)
    return best[1]


def spell_near(pitch: int, mode: str, held: dict[tuple[str, int], int]) -> str:
    """A token for ``pitch``, or for the nearest pitch one spells: whole octaves towards the
    range first (the same note higher or lower), else the nearest semitone."""
    least, most = SPELLABLE_RANGE
    near = pitch
    while near < least:
        near += 12
    while near > most:
        near -= 12
    for p in [pitch, near] + [near + d for step in range(1, 13) for d in (step, -step)]:
        token = spell(p, mode, held)
        if token is not None:
            return token
    raise AssertionError("every pitch class is spelled in the middle octave")  # pragma: no cover


# -- writing --------------------------------------------------------------------------------------
class TokenWriter:
    """Placed notes and rests, in order, to tokens (see the module docstring).

    ``push`` returns the tokens that became certain: a note that may open a broken rhythm (a dotted
    eighth or a sixteenth) waits for the next; ``flush`` writes it at the end, and a bar line when
    the music ended on one.
    """

    def __init__(self, meter: str, mode: str) -> None:
        if meter not in vocab.METER_EIGHTHS or mode not in vocab.MODE_SIGNATURE:
            raise ValueError(f"unknown meter or mode: {meter!r}, {mode!r}")
        self.mode = mode
        self.bar = Fraction(vocab.METER_EIGHTHS[meter], 2)  # quarter notes
        self._bar_index: int | None = None  # the bar being written
        self._held: dict[tuple[str, int], int] = {}
        self._pending: Placed | None = None
        self.end: Fraction | None = None  # where the last note or rest written ends

    def push(self, event: Placed) -> list[str]:
        out: list[str] = []
        pending, self._pending = self._pending, None
        if pending is not None:
            sign = self._broken(pending, event)
            if sign is not None:
                return self._start(pending) + [sign] + self._start(event)
            out += self._write(pending)
        if event.pitch is not None and not event.triplet and any(event.length == pair[0] for pair in _BROKEN):
            self._pending = event
            return out
        return out + self._write(event)

    def flush(self) -> list[str]:
        out = self._write(self._pending) if self._pending is not None else []
        self._pending = None
        if self.end is not None and self._bar_index is not None and self.end % self.bar == 0:
            out.append("|")
            self._bar_index = None
        return out

    def _broken(self, first: Placed, second: Placed) -> str | None:
        if second.pitch is None or second.triplet or second.pos != first.pos + first.length:
            return None
        if self._bar_of(first.pos) != self._bar_of(second.pos):
            return None
        return _BROKEN.get((first.length, second.length))

    def _bar_of(self, pos: Fraction) -> int:
        return math.floor(pos / self.bar)

    def _start(self, event: Placed) -> list[str]:
        """The tokens that open a note or rest: a bar line before it if it starts a bar, ``(3``
        before a triplet, its pitch or ``z``; its length comes after."""
        out: list[str] = []
        index = self._bar_of(event.pos)
        if self._bar_index is None:
            self._bar_index = index
        elif index > self._bar_index:
            self._bar_index = index
            self._held.clear()
            out.append("|")
        if event.triplet == 1:
            out.append("(3")
        out.append("z" if event.pitch is None else spell_near(event.pitch, self.mode, self._held))
        self.end = event.pos + event.length
        return out

    def _write(self, event: Placed) -> list[str]:
        """A note or rest with its length; a length no token spells is the longest one that does,
        then rests."""
        if event.pitch is None:
            return self._rests(event.pos, event.length)
        factor = Fraction(3) if event.triplet else Fraction(2)  # quarter notes to written eighths
        written = event.length * factor
        tokens = length_tokens(written)
        if tokens is not None:
            return self._start(event) + tokens
        for value in LENGTHS:
            played = value / factor
            if value < written and length_pieces((event.length - played) * 2) is not None:
                out = self._start(Placed(event.pos, played, event.pitch, event.triplet)) + (length_tokens(value) or [])
                return out + self._rests(event.pos + played, event.length - played)
        return self._start(Placed(event.pos, Fraction(1, 16), event.pitch, event.triplet)) + ["/8"]  # pragma: no cover

    def _rests(self, pos: Fraction, length: Fraction) -> list[str]:
        """Rests from ``pos`` for ``length`` quarter notes, cut at bar lines."""
        out: list[str] = []
        end = pos + length
        while pos < end:
            stop = min(end, (self._bar_of(pos) + 1) * self.bar)
            at = pos
            for value in length_pieces((stop - pos) * 2) or ():
                out += self._start(Placed(at, value / 2, None)) + (length_tokens(value) or [])
                at += value / 2
            pos = stop
        return out
