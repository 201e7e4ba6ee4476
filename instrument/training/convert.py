"""Convert one ABC tune into the folk-rnn token format, or say why it cannot be.

The model only knows tunes in C (four modes), seven meters, lengths in eighths and the 137
tokens of the vocabulary, so each tune is transposed to C, respelled against the target key
signature, its lengths rewritten in eighth notes and everything the vocabulary cannot say is
dropped (ornaments) or makes the tune skipped (``TuneSkipped`` with a reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from instrument.model import vocab
from instrument.music.abc_reader import (LETTERS, AbcTune, BarLine, Broken, Chord, Ending, Event, Key, AbcNote, ReadTune,
                                   Rest, Tuplet, TuneSkipped, read_body, read_header)
from instrument.music.notes import tuplet_ratio
from instrument.training.modes import Inference, check_hidden, infer
from instrument.music.tunes import Tune

LOWEST, HIGHEST = 48, 95  # C, .. b' : the pitch range the vocabulary spells

# ABC meter text -> vocabulary meter; common time and cut time both count eight eighths a bar.
METER_ALIASES = {"C": "4/4", "C|": "4/4", "2/2": "4/4"}
_DURATION = {vocab.duration_value(t): t for t in vocab.tokens_of(vocab.TokenClass.DURATION)}


@dataclass
class Converted:
    """A converted tune with what the report and the round-trip check need to know about it."""

    tune: Tune
    key: Key  # the key it plays in (its tonic moved to C)
    shift: int  # semitones added to every original pitch
    written: Key | None = None  # the key its K: line names, where the mode was inferred
    rule: str = "written"  # how the mode was found (``modes.Inference.rule``)
    rhythm: str = ""  # the R: field: reel, jig, hornpipe, air ...
    hidden_check: str = ""  # the mode rule's verdict with a stated mode hidden (``modes.check_hidden``)


def vocab_meter(text: str) -> str:
    """The vocabulary meter for an ``M:`` value, or ``TuneSkipped``."""
    value = " ".join(text.split("%", 1)[0].split())
    value = METER_ALIASES.get(value, value).replace(" ", "")
    if value not in vocab.METERS:
        raise TuneSkipped("meter not in the vocabulary", value or "none given")
    return value


def vocab_mode(key: Key) -> str:
    if key.mode not in vocab.MODES:
        raise TuneSkipped("mode not in the vocabulary", key.mode)
    return key.mode


def pitch_token(accidental: int | None, step: int) -> str:
    """Spell a diatonic step (7 x octave + letter index) with an explicit accidental or none."""
    octave, letter = divmod(step, 7)
    name = LETTERS[letter]
    if octave >= 1:
        name = name.lower() + "'" * (octave - 1)
    else:
        name = name + "," * (-octave)
    if accidental is None:
        return name
    return ("^" * accidental if accidental > 0 else "_" * -accidental if accidental < 0 else "=") + name


def duration_token(eighths: Fraction) -> str | None:
    """The duration token for a length in eighths (None for one eighth), or ``TuneSkipped``."""
    if eighths == 1:
        return None
    token = _DURATION.get(eighths)
    if token is None:
        raise TuneSkipped("length with no token", f"{eighths} eighths")
    return token


def choose_shift(key: Key, pitches: list[int]) -> int:
    """Semitones that move the tonic to a C, the smallest move that keeps every pitch in range."""
    if not pitches:
        raise TuneSkipped("no notes")
    low, high = min(pitches), max(pitches)
    candidates = [-key.semitone + 12 * n for n in range(-1, 3)]
    fitting = [s for s in candidates if -12 <= s <= 12 and LOWEST <= low + s and high + s <= HIGHEST]
    if not fitting:
        raise TuneSkipped("pitch range", f"MIDI {low}..{high} fits no transposition to C")
    return min(fitting, key=lambda s: (abs(s), s))


def merge_ties(events: list[Event]) -> list[Event]:
    """Join each tie into one longer note; a tie between different pitches is a slur and goes.

    Ties the vocabulary cannot say (across a bar line, inside a tuplet or broken rhythm, on
    chords) raise ``TuneSkipped``.
    """
    out: list[Event] = []
    in_tuplet = 0
    i = 0
    while i < len(events):
        event = events[i]
        if isinstance(event, Tuplet):
            in_tuplet = event.r or event.p
        if isinstance(event, (AbcNote, Chord)) and event.tie:
            after = events[i + 1] if i + 1 < len(events) else None
            if isinstance(event, Chord) or isinstance(after, Chord):
                if _continues(event, events, i):
                    raise TuneSkipped("tied chord")
            elif isinstance(after, AbcNote) and after.midi == event.midi:
                previous = out[-1] if out else None
                following = events[i + 2] if i + 2 < len(events) else None
                if in_tuplet or isinstance(previous, Broken) or isinstance(following, Broken):
                    raise TuneSkipped("tie inside a tuplet or broken rhythm")
                merged = AbcNote(event.midi, event.step, event.length + after.length, after.tie, after.line_end)
                events = events[:i] + [merged] + events[i + 2:]
                continue
            elif _continues(event, events, i):
                between = events[i + 1:]
                if any(isinstance(e, (BarLine, Ending)) for e in between[:_next_note(between)]):
                    raise TuneSkipped("tie across a bar line")
                raise TuneSkipped("tie inside a tuplet or broken rhythm")
        if isinstance(event, (AbcNote, Chord, Rest)) and in_tuplet:
            in_tuplet -= 1
        out.append(event)
        i += 1
    return out


def _pitches(event: Event) -> set[int]:
    if isinstance(event, AbcNote):
        return {event.midi}
    if isinstance(event, Chord):
        return {note.midi for note in event.notes}
    return set()


def _next_note(events: list[Event]) -> int:
    """Index of the first note, chord or rest in ``events`` (their length if none)."""
    for index, event in enumerate(events):
        if isinstance(event, (AbcNote, Chord, Rest)):
            return index
    return len(events)


def _continues(event: AbcNote | Chord, events: list[Event], i: int) -> bool:
    """Whether the next note or chord after ``events[i]`` repeats one of its tied pitches."""
    tied = _pitches(event) if isinstance(event, AbcNote) else {n.midi for n in event.notes if n.tie or event.tie}
    j = i + 1 + _next_note(events[i + 1:])
    return j < len(events) and bool(tied & _pitches(events[j]))


def _written_length(event: Event) -> Fraction | None:
    if isinstance(event, (AbcNote, Rest)):
        return event.length
    if isinstance(event, Chord):
        return event.notes[0].length * event.multiplier
    return None


def check_broken_rhythms(events: list[Event]) -> None:
    """Keep only broken rhythms whose reading is not in doubt.

    ABC 2.1 dots the first note and halves the second whatever their lengths (as our rules
    do), abc2midi ignores ``>`` between notes of different written lengths, and the bars of
    such tunes add up under neither reading; a note between two broken rhythms is read
    differently again. Both make the tune skipped.
    """
    for i, event in enumerate(events):
        if not isinstance(event, Broken):
            continue
        before = _written_length(events[i - 1]) if i else None
        after = _written_length(events[i + 1]) if i + 1 < len(events) else None
        if before is None or after is None:
            raise TuneSkipped("broken rhythm not between two notes")
        if before != after:
            raise TuneSkipped("broken rhythm between unequal lengths", f"{before} {event.symbol} {after}")
        if i + 2 < len(events) and isinstance(events[i + 2], Broken):
            raise TuneSkipped("chained broken rhythm")


def mark_repeat_starts(events: list[Event]) -> None:
    """Write ``|:`` where a section line is where a repeat starts.

    After one repeat has closed, a ``:|`` with no ``|:`` before it goes back to the last
    section line (``||``, ``[|``, ``|]``) since, as abc2midi and printed music read it; the
    vocabulary has no section line, so that line becomes an explicit ``|:``.
    """
    closed = opened = False
    candidate: BarLine | None = None
    for event in events:
        if not isinstance(event, BarLine):
            continue
        if event.end:
            if closed and not opened and candidate is not None:
                candidate.start = True
            closed, opened, candidate = True, False, None
        if event.start:
            opened = True
        elif event.double and closed and not opened and not event.end:
            candidate = event


class _Writer:
    """Writes events as tokens in C, spelling accidentals against the target key signature."""

    def __init__(self, meter: str, mode: str, shift: int, letters: int):
        self.meter = meter
        self.signature = vocab.MODE_SIGNATURE[mode]
        self.shift = shift
        self.letters = letters  # diatonic steps added to every original step
        self.accidentals: dict[tuple[str, int], int] = {}
        self.tokens: list[str] = []
        # Where the bar stands, in eighths as played, to tell a line that ends on a full bar.
        self.position = Fraction(0)
        self.last = Fraction(0)  # played length of the last note, rest or chord
        self.next_factor = Fraction(1)  # what a broken rhythm does to the next one
        self.tuplet_left, self.tuplet_factor = 0, Fraction(1)

    def advance(self, event: AbcNote | Rest | Chord) -> None:
        """Count a note, rest or chord into the bar; a line ending on a full bar gets its bar line.

        Some collections (the Essen songs above all) leave out the bar line where a line of
        music ends, as the bar ends.
        """
        factor, self.next_factor = self.next_factor, Fraction(1)
        if self.tuplet_left:
            factor *= self.tuplet_factor
            self.tuplet_left -= 1
        self.last = _written_length(event) * factor
        self.position += self.last
        if event.line_end and self.position == vocab.METER_EIGHTHS[self.meter]:
            self.bar(["|"])

    def tuplet(self, p: int, r: int | None) -> None:
        self.tokens.append(f"({p}")
        self.tuplet_left, self.tuplet_factor = r or p, tuplet_ratio(p, self.meter)

    def note(self, note: AbcNote) -> None:
        step = note.step + self.letters
        octave, index = divmod(step, 7)
        letter = LETTERS[index]
        alter = note.midi + self.shift - vocab.natural_midi(letter, octave)
        current = self.accidentals.get((letter, octave), self.signature.get(letter, 0))
        if alter == current:
            token = pitch_token(None, step)
        else:
            token = pitch_token(alter, step)
            self.accidentals[(letter, octave)] = alter
        self.tokens.append(token)

    def length(self, eighths: Fraction) -> None:
        token = duration_token(eighths)
        if token is not None:
            self.tokens.append(token)

    def bar(self, tokens: list[str]) -> None:
        self.accidentals.clear()
        self.position = Fraction(0)
        for token in tokens:
            last = self.tokens[-1] if self.tokens else None
            if last in _BAR_TOKENS:
                if token == "|" or token == last:
                    continue  # "|" right after another bar line (or the same one again) says nothing
                if last == "|":
                    self.tokens.pop()
            self.tokens.append(token)

    def broken(self, symbol: str) -> None:
        if symbol not in (">", "<"):
            raise TuneSkipped("broken rhythm not in the vocabulary", symbol)
        last = self.tokens[-1] if self.tokens else None
        if last is None or last in _BAR_TOKENS or last.startswith("(") or last == "[":
            raise TuneSkipped("unreadable ABC", f"broken rhythm {symbol} after no note")
        if last in _DURATION.values() and last + symbol in vocab.INDEX:
            self.tokens[-1] = last + symbol
        else:
            self.tokens.append(symbol)
        # the note before is dotted (>) or halved (<), the next one the other way
        self.position += self.last / 2 if symbol == ">" else -self.last / 2
        self.next_factor = Fraction(1, 2) if symbol == ">" else Fraction(3, 2)


_BAR_TOKENS = frozenset(vocab.tokens_of(vocab.TokenClass.BAR))


def _bar_tokens(event: BarLine | Ending) -> list[str]:
    if isinstance(event, Ending):
        if event.number not in ("1", "2"):
            raise TuneSkipped("ending not in the vocabulary", event.number)
        return ["|" + event.number]
    if event.end and event.start:
        return [":|", "|:"]
    return [":|"] if event.end else ["|:"] if event.start else ["|"]


def convert_events(read: ReadTune) -> Converted:
    """Turn a read tune into a ``Tune`` in C; raises ``TuneSkipped`` with the reason."""
    meter = vocab_meter(read.meter)
    mode = vocab_mode(read.key)
    events = merge_ties(read.events)
    check_broken_rhythms(events)
    mark_repeat_starts(events)
    pitches = [p for event in events for p in _pitches(event)]
    shift = choose_shift(read.key, pitches)
    # Letters move by the letter distance from the tonic to the chosen C.
    letters = -LETTERS.index(read.key.letter) + 7 * round((shift + read.key.semitone) / 12)
    writer = _Writer(meter, mode, shift, letters)
    for event in events:
        if isinstance(event, AbcNote):
            writer.note(event)
            writer.length(event.length)
            writer.advance(event)
        elif isinstance(event, Rest):
            writer.tokens.append("z")
            writer.length(event.length)
            writer.advance(event)
        elif isinstance(event, Chord):
            _write_chord(writer, event)
            writer.advance(event)
        elif isinstance(event, (BarLine, Ending)):
            writer.bar(_bar_tokens(event))
        elif isinstance(event, Broken):
            writer.broken(event.symbol)
        elif isinstance(event, Tuplet):
            p = event.p
            default_q = tuplet_ratio(p, meter) * p  # the vocabulary's (p says p notes in the time of q
            if (event.q not in (None, default_q)) or (event.r not in (None, p)):
                raise TuneSkipped("tuplet not in the vocabulary", f"({p}:{event.q or ''}:{event.r or ''}")
            writer.tuplet(p, event.r)
    body = writer.tokens
    while body and body[0] == "|":
        body.pop(0)
    if not any(vocab.TOKEN_CLASS[vocab.INDEX[t]] is vocab.TokenClass.PITCH for t in body if t in vocab.INDEX):
        raise TuneSkipped("no notes")
    for token in body:
        if token not in vocab.INDEX:
            raise TuneSkipped("token outside the vocabulary", token)
    return Converted(Tune(meter, mode, body), read.key, shift)


def _write_chord(writer: _Writer, chord: Chord) -> None:
    if len(chord.notes) == 1:
        note = chord.notes[0]
        writer.note(note)
        writer.length(note.length * chord.multiplier)
        return
    lengths = {note.length for note in chord.notes}
    writer.tokens.append("[")
    for note in chord.notes:
        writer.note(note)
        if len(lengths) > 1:
            writer.length(note.length * chord.multiplier)
    writer.tokens.append("]")
    if len(lengths) == 1:
        writer.length(lengths.pop() * chord.multiplier)


MODE_SOURCES = ("inferred", "written")


def convert(tune: AbcTune, modes: str = "inferred") -> Converted:
    """Read and convert one ABC tune; raises ``TuneSkipped`` with the reason.

    ``modes``: "inferred" finds the mode of a tune whose K: names only a key from its tonic
    (``training.modes``); "written" takes every K: at its word (a plain key is major).
    """
    header = read_header(tune)
    vocab_meter(header.meter)  # an unusable meter or mode is the reason, before any body problem
    vocab_mode(header.key)
    events = read_body(header)
    inference = infer(header.key, events) if modes == "inferred" else Inference(header.key, "written")
    converted = convert_events(ReadTune(inference.key, header.meter, events))
    converted.written, converted.rule, converted.rhythm = header.key, inference.rule, header.rhythm
    converted.hidden_check = check_hidden(header.key, events)
    return converted
