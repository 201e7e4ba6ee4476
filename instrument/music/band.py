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
        lines.append(abc_body(tune.meter, tune.mode, tune.body))
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
        return abc_body(tune.meter, tune.mode, list(line.body))
    return accompaniment_abc(tune, line.notes, line.chords)


def accompaniment_abc(tune: Tune, notes: Sequence[Note], chords: Sequence[ChordChange] = ()) -> str:
    """Accompaniment notes written on the lead's written bars (see the module docstring): each
    written bar as it sounded the first time, the lead's bar lines and repeat signs where the
    lead has them (inside a bar too), a note across one tied."""
    return "".join(accompaniment_pieces(tune, notes, chords)[0]).strip()


def accompaniment_pieces(tune: Tune, notes: Sequence[Note], chords: Sequence[ChordChange] = ()
                         ) -> tuple[list[str], dict[tuple[int, float], int]]:
    """``accompaniment_abc`` as pieces of text, and which piece each written place (written bar,
    quarter-note beats into it) begins: a page lights the note sounding there, every time it is played."""
    stream = NoteStream(tune.meter, tune.mode, repeats=False)
    signs: list[tuple[Fraction, str]] = []  # the lead's bar tokens at their written positions, in eighths
    for token in tune.body:
        stream.push(token)
        if token in BAR_TOKENS:
            signs.append((_eighths(stream.position), token))
    stream.close()
    total = _eighths(stream.position)
    starts, at = [], Fraction(0)  # each written bar's start
    for bar in stream.bars:
        starts.append(at)
        at += _eighths(bar.length)
    notes = _held(notes)
    first_play: dict[int, float] = {}  # written bar -> its first downbeat as played
    for n in sorted(notes, key=lambda n: n.start):
        first_play.setdefault(n.bar, n.start - n.bar_offset)
    symbols: dict[Fraction, str] = {}
    previous = None
    for change in chords:
        downbeat = change.group.start - change.group.bar_offset
        bar = change.group.bar
        if bar < len(starts) and abs(first_play.get(bar, downbeat) - downbeat) < 1e-6 and change.chord != previous:
            symbols[starts[bar] + _eighths(change.group.bar_offset)] = change.chord.symbol
        previous = change.chord
    events: dict[Fraction, tuple[set[int], Fraction]] = {}  # written position -> (pitches, length), eighths
    places: dict[Fraction, tuple[int, float]] = {}
    for n in notes:
        if n.bar < len(starts) and abs(n.start - n.bar_offset - first_play[n.bar]) < 1e-6:
            where = starts[n.bar] + _eighths(n.bar_offset)
            pitches, length = events.setdefault(where, (set(), _eighths(n.duration)))
            pitches.add(n.pitch)
            places[where] = (n.bar, round(n.bar_offset, 4))
    pieces, at = _write(events, signs, total, tune.mode, symbols)
    return pieces, {places[where]: index for where, index in at.items() if where in places}


def _write(events, signs, total: Fraction, mode: str, symbols) -> tuple[list[str], dict[Fraction, int]]:
    """The voice's pieces of text: its events in written time, rests between, the lead's bar
    tokens at their places (a note across one is tied, its accidentals written again after
    it); and the piece each event begins."""
    onsets = sorted(p for p in events if p < total)
    out: list[str] = []
    begins: dict[Fraction, int] = {}
    held: dict[tuple[str, int], int] = {}
    sign_at = [p for p, _ in signs]
    i, j, at = 0, 0, Fraction(0)
    sounding: tuple[frozenset[int], Fraction] | None = None  # what is held on from the last onset, until when
    while at < total or j < len(signs):
        next_sign = sign_at[j] if j < len(signs) else None
        if next_sign is not None and next_sign <= at:
            out.append(f" {signs[j][1]} ")
            held.clear()
            j += 1
            continue
        next_onset = onsets[i] if i < len(onsets) else None
        if next_onset is not None and next_onset <= at:
            pitches, length = events[next_onset]
            end = min(next_onset + length, onsets[i + 1] if i + 1 < len(onsets) else total, total)
            sounding = (frozenset(pitches), end)
            symbol = symbols.get(next_onset)
            begins[next_onset] = len(out)
            i += 1
        if at >= total:
            break
        stop = min(x for x in (next_sign, onsets[i] if i < len(onsets) else None, total) if x is not None and x > at)
        if sounding is not None and sounding[1] > at:
            until = min(sounding[1], stop)
            chord = "".join(_spell(p, mode, held) for p in sorted(sounding[0]))
            text = f"[{chord}]" if len(sounding[0]) > 1 else chord
            label = f'"{symbol}"' if symbol else ""
            out.append(label + text + _length(until - at) + ("-" if until < sounding[1] else "") + " ")
            symbol = None
            at = until
        else:
            out.append("z" + _length(stop - at) + " ")
            at = stop
    return out, begins


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
