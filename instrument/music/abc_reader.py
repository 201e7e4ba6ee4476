"""A small text-level ABC reader for the folk collections music21 ships.

music21's own ABC parser builds full score objects and takes minutes for the ~13,000 tunes;
the corpus build only needs each tune's key, meter and a flat list of musical events with
their sounding pitches and lengths, so this reader works on the text directly. Whatever it
cannot read raises ``TuneSkipped`` with a reason, so one bad tune never stops a build.

Conventions (ABC 2.1): an accidental holds for the same letter in the same octave until the
next bar line; lengths are returned in eighth notes whatever the tune's ``L:``; grace notes,
decorations, chord symbols, annotations, slurs and lyrics are dropped here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from instrument.model import vocab

LETTERS = "CDEFGAB"


class TuneSkipped(Exception):
    """A tune that cannot go into the corpus: a short reason (a category) and a detail."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ----------------------------------------------------------------------------- tunes in files


@dataclass
class AbcTune:
    """One tune's text as it stands in its file (from ``X:`` to the blank line that ends it)."""

    source: str
    number: str
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"



def split_tunes(text: str, source: str = "") -> list[AbcTune]:
    """Every tune of an ABC file: it starts at an ``X:`` line and ends at a blank line."""
    tunes: list[AbcTune] = []
    current: list[str] | None = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith("X:"):
            current = [line.rstrip()]
            tunes.append(AbcTune(source, line[2:].strip(), current))
        elif current is not None:
            if not line.strip():
                current = None
            else:
                current.append(line.rstrip())
    return tunes


# ----------------------------------------------------------------------------- keys and meters


@dataclass(frozen=True)
class Key:
    """A key as ``K:`` names it: tonic letter, tonic alteration (-1 flat .. +1 sharp) and mode.

    ``stated`` says whether ``K:`` named the mode (``Ador``, ``Em``, ``G major``) or only a key
    (``G``): the old books mostly write a signature, and then the mode is the music's to tell
    (``training.modes``). It is not part of a key's identity.
    """

    letter: str
    alter: int
    mode: str  # maj min dor mix lyd phr loc
    stated: bool = field(default=True, compare=False)

    @property
    def name(self) -> str:
        return self.letter + {-1: "b", 0: "", 1: "#"}[self.alter] + self.mode

    def signature(self) -> dict[str, int]:
        """Alteration per letter that the key signature gives."""
        fifths = _MAJOR_FIFTHS[self.letter] + 7 * self.alter + _MODE_FIFTHS[self.mode]
        if not -7 <= fifths <= 7:
            raise TuneSkipped("key signature beyond 7 sharps or flats", self.name)
        if fifths >= 0:
            return {letter: 1 for letter in "FCGDAEB"[:fifths]}
        return {letter: -1 for letter in "BEADGCF"[:-fifths]}

    @property
    def semitone(self) -> int:
        """Pitch class of the tonic relative to C (may be -1 or 12 for Cb, B#)."""
        return _SEMITONE[self.letter] + self.alter


_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_MAJOR_FIFTHS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F": -1}
_MODE_FIFTHS = {"maj": 0, "lyd": 1, "mix": -1, "dor": -2, "min": -3, "phr": -4, "loc": -5}
_MODE_NAMES = {"maj": "maj", "ion": "maj", "min": "min", "aeo": "min", "m": "min", "dor": "dor",
               "mix": "mix", "lyd": "lyd", "phr": "phr", "loc": "loc"}
# ABC reads only a mode's first three letters; longer words must still be a mode's name.
_MODE_SPELLINGS = {"m", "maj", "major", "ion", "ionian", "min", "minor", "aeo", "aeolian", "dor", "dorian", "mix",
                   "mixolydian", "lyd", "lydian", "phr", "phrygian", "loc", "locrian"}
_KEY_RE = re.compile(r"([A-Ga-g])([#b]?)(.*)")
_HARMLESS_CLAUSE = re.compile(r"(clef|middle|stafflines|staffscale|name|subname|stem|gstem|space|"
                              r"t|sname|nm|snm)=", re.I)


def parse_key(value: str) -> Key | None:
    """Read a ``K:`` value (``G``, ``Gm``, ``ADor``, ``D dorian``, ``E Minor``); None if it
    holds only clauses such as ``clef=bass``. Raises ``TuneSkipped`` for what the corpus cannot use."""
    words = value.split("%", 1)[0].split()
    if not words:
        raise TuneSkipped("key not usable", "empty K:")
    if words[0].lower() in ("none", "hp"):
        raise TuneSkipped("key not usable", words[0])
    match = _KEY_RE.fullmatch(words[0])
    if not match:
        if all(_HARMLESS_CLAUSE.match(w) for w in words):
            return None
        raise TuneSkipped("key not usable", value.strip())
    letter, accidental, mode_text = match.groups()
    rest = words[1:]
    if not mode_text and rest and rest[0][0].isalpha() and "=" not in rest[0] and rest[0].lower() != "exp":
        mode_text, rest = rest[0], rest[1:]
    if mode_text and mode_text.lower() not in _MODE_SPELLINGS:
        raise TuneSkipped("mode not usable", mode_text)
    mode = _MODE_NAMES[mode_text.lower()[:3] if len(mode_text) > 1 else "m"] if mode_text else "maj"
    for word in rest:
        if word.lower() == "exp" or re.fullmatch(r"[_^=]+[A-Ga-g]", word):
            raise TuneSkipped("key with explicit accidentals", value.strip())
        if not _HARMLESS_CLAUSE.match(word):
            raise TuneSkipped("key not usable", value.strip())
    return Key(letter.upper(), {"": 0, "#": 1, "b": -1}[accidental], mode, stated=bool(mode_text))


def meter_value(text: str) -> Fraction | None:
    """The length of a bar in whole notes (``C`` = 1, ``6/8`` = 3/4); None for free meter."""
    text = text.split("%", 1)[0].strip()
    if text in ("C", "C|"):
        return Fraction(1)
    match = re.fullmatch(r"(\d+)\s*/\s*(\d+)", text)
    if match and int(match[2]):
        return Fraction(int(match[1]), int(match[2]))
    return None


def parse_unit(text: str) -> Fraction:
    """An ``L:`` value (``1/8``) as a fraction of a whole note."""
    match = re.fullmatch(r"(\d+)\s*/\s*(\d+)", text.split("%", 1)[0].strip())
    if not match or not int(match[1]) or not int(match[2]):
        raise TuneSkipped("unreadable ABC", f"L:{text.strip()}")
    return Fraction(int(match[1]), int(match[2]))


# ----------------------------------------------------------------------------- events


@dataclass(slots=True)
class AbcNote:
    """A note: its sounding MIDI pitch, diatonic step (7 x octave + letter index, middle C
    octave = 0), length in eighth notes, whether a tie ``-`` follows it and whether it ends a
    line of music (``line_end``, also on rests and chords)."""

    midi: int
    step: int
    length: Fraction
    tie: bool = False
    line_end: bool = False


@dataclass(slots=True)
class Rest:
    length: Fraction
    line_end: bool = False


@dataclass(slots=True)
class Chord:
    """``[...]``: its notes (lengths as written inside, in eighths) and the multiplier after ``]``."""

    notes: list[AbcNote]
    multiplier: Fraction = Fraction(1)
    tie: bool = False
    line_end: bool = False


@dataclass(slots=True)
class BarLine:
    """A bar line: ``end`` closes a repeat (``:|``), ``start`` opens one (``|:``); ``double``
    for a section line (``||``, ``[|``, ``|]``)."""

    end: bool = False
    start: bool = False
    double: bool = False


@dataclass(slots=True)
class Ending:
    """A first or later ending (``[1``, ``|2``), numbered as written."""

    number: str


@dataclass(slots=True)
class Broken:
    """A broken rhythm between two notes: ``>``, ``<``, ``>>`` ..."""

    symbol: str


@dataclass(slots=True)
class Tuplet:
    """``(p:q:r``; q and r are None where not written."""

    p: int
    q: int | None = None
    r: int | None = None


Event = AbcNote | Rest | Chord | BarLine | Ending | Broken | Tuplet


@dataclass
class ReadTune:
    """What the reader makes of a tune: header key, meter text and the body's events."""

    key: Key
    meter: str
    events: list[Event] = field(default_factory=list)


# ----------------------------------------------------------------------------- the body

_FIELD_LINE = re.compile(r"([A-Za-z]):(.*)")
_INLINE_FIELD = re.compile(r"\[([A-Za-z]):([^\]]*)\]")
_BAR = re.compile(r"(?P<left>:*)\.?(?P<core>\[\||\|\]|\|\||\|)(?P<right>:*)"
                  r"(?P<ending>\[?[1-9][0-9]*(?:[,\-][1-9][0-9]*)*)?|(?P<double>::+)")
_ENDING = re.compile(r"\[([1-9][0-9]*(?:[,\-][1-9][0-9]*)*)")
_NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)(\d*)(/*)(\d*)")
_REST = re.compile(r"([zx])(\d*)(/*)(\d*)")
_MULTI_REST = re.compile(r"[ZX]\d*")
_CHORD_LENGTH = re.compile(r"(\d*)(/*)(\d*)")
_TUPLET = re.compile(r"\((\d+)(?::(\d*))?(?::(\d*))?")
_BROKEN = re.compile(r"<+|>+")
_DECORATION = re.compile(r"![^!]*!|\+[A-Za-z0-9.<>]*\+")
_IGNORED = set("~.`$*y)\\ \t") | set("HIJKLMNOPQRSTUVWhijklmnopqrstuvw")
_ACCIDENTALS = {"^^": 2, "^": 1, "": None, "=": 0, "_": -1, "__": -2}


def _length(num: str, slashes: str, den: str) -> Fraction:
    """A length multiplier as written after a note: ``3``, ``/``, ``//``, ``3/2``, ``/4``."""
    n = int(num) if num else 1
    if not slashes:
        d = 1
    elif den:
        if len(slashes) > 1:
            raise TuneSkipped("unreadable ABC", f"length {num}{slashes}{den}")
        d = int(den)
    else:
        d = 2 ** len(slashes)
    if n == 0 or d == 0:
        raise TuneSkipped("unreadable ABC", f"length {num}{slashes}{den}")
    return Fraction(n, d)


class _BodyReader:
    """Turns the body's lines into events, keeping the bar's accidentals and the unit length."""

    def __init__(self, key: Key, meter: str, unit: Fraction):
        self.key = key
        self.meter = meter
        self.signature = key.signature()
        self.eighths = unit * 8  # one unit in eighth notes
        self.accidentals: dict[tuple[str, int], int] = {}
        self.events: list[Event] = []
        self.voices: set[str] = set()

    # fields in the body -------------------------------------------------------------
    def field(self, name: str, value: str) -> None:
        value = value.split("%", 1)[0].strip()
        if name == "K":
            key = parse_key(value)
            if key is not None and key != self.key:
                raise TuneSkipped("key change in the body", value)
        elif name == "M":
            if value.replace(" ", "") != self.meter.replace(" ", ""):
                raise TuneSkipped("meter change in the body", value)
        elif name == "L":
            self.eighths = parse_unit(value) * 8
        elif name == "V":
            self.voices.add(value.split()[0] if value.split() else "")
            if len(self.voices) > 1:
                raise TuneSkipped("several lines of music at once (V: or &)")

    # music ---------------------------------------------------------------------------
    def pitch(self, accidental: str, letter: str, marks: str) -> AbcNote:
        octave = (1 if letter.islower() else 0) + marks.count("'") - marks.count(",")
        upper = letter.upper()
        explicit = _ACCIDENTALS[accidental]
        tied = self._tied_from(7 * octave + LETTERS.index(upper))
        if explicit is None and tied is not None:  # a tied note keeps its pitch across the bar line
            alter = tied.midi - vocab.natural_midi(upper, octave)
        elif explicit is not None:
            self.accidentals[(upper, octave)] = explicit
            alter = explicit
        else:
            alter = self.accidentals.get((upper, octave), self.signature.get(upper, 0))
        midi = vocab.natural_midi(upper, octave) + alter
        return AbcNote(midi, 7 * octave + LETTERS.index(upper), Fraction(0))

    def _tied_from(self, step: int) -> AbcNote | None:
        """The note of this step that the last note or chord ties into this one, if any."""
        for event in reversed(self.events):
            if isinstance(event, AbcNote):
                return event if event.tie and event.step == step else None
            if isinstance(event, Chord):
                return next((n for n in event.notes if (n.tie or event.tie) and n.step == step), None)
            if isinstance(event, Rest):
                return None
        return None

    def bar(self, end: bool = False, start: bool = False, double: bool = False) -> None:
        self.accidentals.clear()
        self.events.append(BarLine(end, start, double))

    def line(self, text: str) -> None:
        """Read one line of music; mark its last note when the line is not continued with ``\\``."""
        self._scan(text)
        last = self.events[-1] if self.events else None
        if isinstance(last, (AbcNote, Rest, Chord)) and not text.split("%", 1)[0].rstrip().endswith("\\"):
            last.line_end = True

    def _scan(self, text: str) -> None:
        pos, n = 0, len(text)
        while pos < n:
            if text[pos] == "%":
                return
            after = self._skip(text, pos)
            if after is None:
                after = self._structure(text, pos)
            if after is None:
                after = self._music(text, pos)
            pos = after

    def _skip(self, text: str, pos: int) -> int | None:
        """Past what this reader drops (spaces, decorations, chord symbols, grace notes), or None."""
        ch = text[pos]
        if ch in _IGNORED:
            return pos + 1
        if ch == '"':
            close = text.find('"', pos + 1)
            if close < 0:
                raise TuneSkipped("unreadable ABC", "unclosed quote")
            return close + 1
        if ch in "!+":
            m = _DECORATION.match(text, pos)
            if m:
                return m.end()
            if ch == "!":  # an old-style line break
                return pos + 1
            raise TuneSkipped("unreadable ABC", "+")
        if ch == "{":
            close = text.find("}", pos)
            if close < 0:
                raise TuneSkipped("unreadable ABC", "unclosed grace notes")
            return close + 1
        if ch == "&":
            raise TuneSkipped("several lines of music at once (V: or &)")
        return None

    def _structure(self, text: str, pos: int) -> int | None:
        """Past an inline field, a bar line, an ending or a chord at ``pos``, or None."""
        ch = text[pos]
        m = _INLINE_FIELD.match(text, pos)
        if m:
            self.field(m[1], m[2])
            return m.end()
        if text.startswith("[|]", pos):  # an invisible bar line
            self.bar()
            return pos + 3
        m = _BAR.match(text, pos)
        if m:
            if m["double"]:
                self.bar(end=True, start=True)
            else:
                self.bar(end=bool(m["left"]), start=bool(m["right"]), double=m["core"] in ("||", "[|", "|]"))
                if m["ending"]:
                    self.ending(m["ending"].lstrip("["))
            return m.end()
        if ch == ":" and self.events and isinstance(self.events[-1], BarLine):
            self.events[-1].start = True  # "||" then a continued line starting ":" is "||:"
            return pos + 1
        m = _ENDING.match(text, pos)
        if m:
            self.accidentals.clear()
            self.ending(m[1])
            return m.end()
        if ch == "[":
            return self.chord(text, pos + 1)
        if ch == "]":
            raise TuneSkipped("unreadable ABC", "stray ]")
        return None

    def _music(self, text: str, pos: int) -> int:
        """Past the note, rest, tuplet, broken rhythm or tie at ``pos``; TuneSkipped for anything else."""
        ch = text[pos]
        m = _NOTE.match(text, pos)
        if m:
            note = self.pitch(m[1] or "", m[2], m[3])
            note.length = _length(m[4], m[5], m[6]) * self.eighths
            self.events.append(note)
            return m.end()
        m = _REST.match(text, pos)
        if m:
            self.events.append(Rest(_length(m[2], m[3], m[4]) * self.eighths))
            return m.end()
        if _MULTI_REST.match(text, pos):
            raise TuneSkipped("multi-bar rest")
        if ch == "(":  # a tuplet, else a slur
            m = _TUPLET.match(text, pos)
            if not m:
                return pos + 1
            self.events.append(Tuplet(int(m[1]), int(m[2]) if m[2] else None, int(m[3]) if m[3] else None))
            return m.end()
        m = _BROKEN.match(text, pos)
        if m:
            self.events.append(Broken(m[0]))
            return m.end()
        if ch == "-":  # a tie on the last note or chord (written after a broken rhythm too)
            last = next((e for e in reversed(self.events) if not isinstance(e, Broken)), None)
            if isinstance(last, (AbcNote, Chord)):
                last.tie = True
            return pos + 1
        raise TuneSkipped("unreadable ABC", repr(ch))

    def ending(self, number: str) -> None:
        self.events.append(Ending(number))

    def chord(self, text: str, pos: int) -> int:
        """Read a chord from just after its ``[``; return the position after it."""
        notes: list[AbcNote] = []
        n = len(text)
        while pos < n and text[pos] != "]":
            ch = text[pos]
            if ch in _IGNORED or ch == "(":
                pos += 1
                continue
            if ch == '"':
                close = text.find('"', pos + 1)
                if close < 0:
                    raise TuneSkipped("unreadable ABC", "unclosed quote")
                pos = close + 1
                continue
            m = _DECORATION.match(text, pos)
            if m:
                pos = m.end()
                continue
            m = _NOTE.match(text, pos)
            if m:
                note = self.pitch(m[1] or "", m[2], m[3])
                note.length = _length(m[4], m[5], m[6]) * self.eighths
                notes.append(note)
                pos = m.end()
                continue
            if ch == "-" and notes:
                notes[-1].tie = True
                pos += 1
                continue
            raise TuneSkipped("unreadable ABC", f"{ch!r} in a chord")
        if pos >= n:
            raise TuneSkipped("unreadable ABC", "unclosed chord")
        if not notes:
            raise TuneSkipped("unreadable ABC", "empty chord")
        m = _CHORD_LENGTH.match(text, pos + 1)
        multiplier = _length(m[1], m[2], m[3])
        self.events.append(Chord(notes, multiplier, tie=any(note.tie for note in notes)))
        return m.end()


@dataclass
class Header:
    """A tune's header as the body needs it: key, meter text, unit length and the body lines."""

    key: Key
    meter: str
    unit: Fraction
    v_field: str | None  # the V: field of the header (a body in several V: lines is skipped)
    body: list[str]
    rhythm: str = ""  # the R: field (reel, jig, hornpipe, air ...), lower case, as written


def read_header(tune: AbcTune) -> Header:
    """Read the fields up to and including ``K:``; raises ``TuneSkipped`` with the reason."""
    fields: dict[str, str] = {}
    continued = False
    for index, line in enumerate(tune.lines[1:], 1):
        was_continued, continued = continued, line.endswith("\\")
        if line.startswith("%") or was_continued:
            continue
        m = _FIELD_LINE.match(line)
        if not m:
            raise TuneSkipped("unreadable ABC", "music before the K: line")
        name, value = m[1], m[2].split("%", 1)[0].strip()
        if name == "K":
            key = parse_key(value)
            if key is None:
                raise TuneSkipped("key not usable", value)
            break
        fields.setdefault(name, value)
    else:
        raise TuneSkipped("key not usable", "no K: line")
    meter = fields.get("M", "")
    if "L" in fields:
        unit = parse_unit(fields["L"])
    else:  # ABC 2.1 section 3.1.7: 1/16 when the meter is below 3/4, else 1/8
        value = meter_value(meter)
        unit = Fraction(1, 16) if value is not None and value < Fraction(3, 4) else Fraction(1, 8)
    return Header(key, meter, unit, fields.get("V"), tune.lines[index + 1:], fields.get("R", "").strip().lower())


def read_body(header: Header) -> list[Event]:
    """The body's events; raises ``TuneSkipped`` with the reason."""
    reader = _BodyReader(header.key, header.meter, header.unit)
    if header.v_field is not None:
        reader.field("V", header.v_field)
    for line in header.body:
        if line.startswith("%"):
            continue
        m = _FIELD_LINE.match(line)
        if m and (m[1].isupper() or m[1] in "wmrs"):
            reader.field(m[1], m[2])
            continue
        reader.line(line)
    return reader.events
