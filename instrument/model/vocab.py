"""The folk-rnn v2 vocabulary: 137 tokens in the exact order of the original model.

The order is the model's input and output dimension order; it is what lets the original
published weights load, so it is read verbatim from ``vocab.json`` and never sorted.
"""

from __future__ import annotations

import difflib
import enum
import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

TOKENS: tuple[str, ...] = tuple(json.loads((Path(__file__).with_name("vocab.json")).read_text()))
SIZE: int = len(TOKENS)
INDEX: dict[str, int] = {token: i for i, token in enumerate(TOKENS)}

START, END = "<s>", "</s>"


class TokenClass(str, enum.Enum):
    """What a token is, as the token-to-note rules and the grammar guard see it."""

    PITCH = "pitch"
    REST = "rest"
    DURATION = "duration"
    BROKEN = "broken"
    TUPLET = "tuplet"
    BAR = "bar"
    CHORD_OPEN = "chord_open"
    CHORD_CLOSE = "chord_close"
    METER = "meter"
    MODE = "mode"
    START = "start"
    END = "end"


_PITCH_RE = re.compile(r"([_^=]?)([A-Ga-g])([,']?)")
_BARS = ("|", "|:", ":|", "|1", "|2")


def _classify(token: str) -> TokenClass:
    if _PITCH_RE.fullmatch(token):
        return TokenClass.PITCH
    if token == "z":
        return TokenClass.REST
    if token in _BARS:
        return TokenClass.BAR
    if token == "[":
        return TokenClass.CHORD_OPEN
    if token == "]":
        return TokenClass.CHORD_CLOSE
    if token.startswith("M:"):
        return TokenClass.METER
    if token.startswith("K:"):
        return TokenClass.MODE
    if token == START:
        return TokenClass.START
    if token == END:
        return TokenClass.END
    if token.startswith("("):
        return TokenClass.TUPLET
    if token.endswith((">", "<")):
        return TokenClass.BROKEN
    if re.fullmatch(r"\d*(/\d+)?", token):
        return TokenClass.DURATION
    raise ValueError(f"unclassifiable token {token!r}")


TOKEN_CLASS: tuple[TokenClass, ...] = tuple(_classify(t) for t in TOKENS)


def class_mask(*classes: TokenClass) -> np.ndarray:
    """Boolean mask over the vocabulary of the tokens in any of ``classes``."""
    wanted = set(classes)
    return np.array([c in wanted for c in TOKEN_CLASS], dtype=bool)


def tokens_of(cls: TokenClass) -> list[str]:
    """The tokens of one class, in vocabulary order."""
    return [t for t, c in zip(TOKENS, TOKEN_CLASS) if c is cls]


METERS: tuple[str, ...] = ("2/4", "3/4", "4/4", "6/8", "9/8", "12/8", "3/2")
MODES: tuple[str, ...] = ("maj", "min", "dor", "mix")

# Key signature of each mode on C, as accidentals per letter (docs/design.md §2).
MODE_SIGNATURE: dict[str, dict[str, int]] = {
    "maj": {},
    "mix": {"B": -1},
    "dor": {"B": -1, "E": -1},
    "min": {"B": -1, "E": -1, "A": -1},
}

# Bar length of each meter in eighth notes (the unit length L = 1/8).
METER_EIGHTHS: dict[str, int] = {"2/4": 4, "3/4": 6, "4/4": 8, "6/8": 6, "9/8": 9, "12/8": 12, "3/2": 12}
COMPOUND_METERS = frozenset({"6/8", "9/8", "12/8"})


def meter_token(meter: str) -> str:
    return f"M:{meter}"


def mode_token(mode: str) -> str:
    return f"K:C{mode}"


def meter_of(token: str) -> str:
    """``'M:6/8'`` -> ``'6/8'``."""
    return token[2:]


def mode_of(token: str) -> str:
    """``'K:Cdor'`` -> ``'dor'``."""
    return token[3:]


_LETTER_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {"^": 1, "_": -1, "=": 0, "": None}


def parse_pitch(token: str) -> tuple[int | None, str, int]:
    """Split a pitch token into (explicit accidental or None, upper-case letter, octave).

    Octave 0 is the octave of middle C (``C`` .. ``B``); ``c`` is octave 1, ``C,`` octave -1.
    """
    m = _PITCH_RE.fullmatch(token)
    if not m:
        raise ValueError(f"not a pitch token: {token!r}")
    acc, letter, mark = m.groups()
    octave = 1 if letter.islower() else 0
    octave += {"": 0, ",": -1, "'": 1}[mark]
    return _ACCIDENTAL[acc], letter.upper(), octave


def natural_midi(letter: str, octave: int) -> int:
    """MIDI number of a natural letter in an octave (``C`` octave 0 = 60)."""
    return 60 + 12 * octave + _LETTER_SEMITONE[letter]


def duration_value(token: str) -> Fraction:
    """Multiplier of a duration token: ``'3/2'`` -> 3/2, ``'/4'`` -> 1/4, ``'2'`` -> 2."""
    num, _, den = token.partition("/")
    return Fraction(int(num) if num else 1, int(den) if den else 1)


def broken_parts(token: str) -> tuple[Fraction | None, str]:
    """Split a broken-rhythm token into (duration multiplier or None, ``'>'``/``'<'``).

    ``'2>'`` is a duration 2 on the note before, then ``>``.
    """
    return (duration_value(token[:-1]) if token[:-1] else None), token[-1]


def tuplet_size(token: str) -> int:
    """``'(3'`` -> 3."""
    return int(token[1:])


# One pitch token per pitch class in the octave of middle C, the plainest spelling the
# vocabulary holds: the "random pitch-class token" of the seed's two-hot stimulation.
PITCH_CLASS_TOKENS: tuple[str, ...] = ("C", "^C", "D", "_E", "E", "F", "^F", "G", "^G", "A", "_B", "B")


def encode(tokens: list[str]) -> list[int]:
    return [INDEX[t] for t in tokens]


def decode(indices) -> list[str]:
    return [TOKENS[int(i)] for i in indices]


def nearest(token: str, n: int = 3) -> list[str]:
    """The valid tokens closest in spelling to an unknown one, for error messages."""
    close = difflib.get_close_matches(token, TOKENS, n=n, cutoff=0.0)
    return close
