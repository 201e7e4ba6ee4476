"""A tune's mode from its music, where its ``K:`` names only a key signature.

Most of the old books write a key signature, not a mode: an A dorian tune stands as ``K:G``,
a D mixolydian one as ``K:G`` or ``K:D``. A player finds the mode from the tonic, the note
the tune comes home to: the last note of the tune, confirmed by the last note of its first
part. On a G-signature tune, a tonic A is A dorian, D is D mixolydian, E is E minor and G
is G major; the tune is then transposed by that tonic, as folk-rnn's data has it
(docs/design.md, "Modes from the music").

The rule keeps the key as written ("unclear") when
- the tune ends on a degree whose mode the vocabulary lacks (the 3rd, 4th or 7th of the
  signature's major scale: phrygian, lydian, locrian) or on a note outside the signature;
- the first part ends on another note than the tune (a part that ends away from home is a
  half cadence, and then the tune's last note alone does not settle the mode), unless the
  tune ends on the signature's own major tonic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from instrument.model import vocab
from instrument.music.abc_reader import LETTERS, AbcNote, BarLine, Chord, Ending, Event, Key

# Degree of the signature's major scale the tune ends on -> the mode that tonic makes.
DEGREE_MODES = {0: "maj", 1: "dor", 4: "mix", 5: "min"}
_MODE_DEGREE = {mode: degree for degree, mode in DEGREE_MODES.items()}


@dataclass(frozen=True)
class Inference:
    """What the rule made of one tune: the key it plays in and why."""

    key: Key
    rule: str  # "stated", "final", "final+part", or "unclear: ..."

    @property
    def changed(self) -> bool:
        return self.rule in ("final", "final+part") and self.key.mode != "maj"


def _lowest(event: AbcNote | Chord) -> AbcNote:
    return event if isinstance(event, AbcNote) else min(event.notes, key=lambda n: n.midi)


def final_note(events: list[Event]) -> AbcNote | None:
    """The tune's last note (a chord's lowest)."""
    for event in reversed(events):
        if isinstance(event, (AbcNote, Chord)):
            return _lowest(event)
    return None


def first_part_note(events: list[Event]) -> AbcNote | None:
    """The last note of the first part as played the last time through, or None when the tune
    is one part. The first part ends at the first repeat end (``:|``) or section line; with
    first and second endings, at the bar line that closes the second ending."""
    last: AbcNote | None = None
    in_second = False
    for index, event in enumerate(events):
        if isinstance(event, Ending):
            in_second = not event.number.startswith("1")
        elif isinstance(event, (AbcNote, Chord)):
            last = _lowest(event)
        elif isinstance(event, BarLine) and last is not None:
            follows = events[index + 1] if index + 1 < len(events) else None
            if isinstance(follows, Ending):
                continue  # ":|2": the part goes on in its second ending
            if in_second or event.end or event.double:
                return last if any(isinstance(e, (AbcNote, Chord)) for e in events[index + 1 :]) else None
    return None


def _degree(key: Key, note: AbcNote) -> int | None:
    """The note's degree (0..6) in the signature's major scale, or None if it is not the
    signature's own pitch of its letter (an accidental)."""
    letter = LETTERS[note.step % 7]
    signature = key.signature()
    if (note.midi - vocab.natural_midi(letter, note.step // 7)) != signature.get(letter, 0):
        return None
    major = _major_tonic(key)
    return (LETTERS.index(letter) - LETTERS.index(major.letter)) % 7


def _major_tonic(key: Key) -> Key:
    """The major key with the same signature (G for A dorian, E minor or D mixolydian)."""
    steps_down = _MODE_DEGREE.get(key.mode, 0)
    index = (LETTERS.index(key.letter) - steps_down) % 7
    letter = LETTERS[index]
    signature = key.signature()
    return Key(letter, signature.get(letter, 0), "maj", stated=False)


def infer(key: Key, events: list[Event]) -> Inference:
    """The key a tune plays in: as stated when ``K:`` names a mode, else from its tonic."""
    if key.stated:
        return Inference(key, "stated")
    end = final_note(events)
    if end is None:
        return Inference(key, "unclear: no notes")
    degree = _degree(key, end)
    if degree not in DEGREE_MODES:
        return Inference(key, "unclear: ends off the four modes")
    letter = LETTERS[end.step % 7]
    tonic = Key(letter, key.signature().get(letter, 0), DEGREE_MODES[degree], stated=False)
    part = first_part_note(events)
    if part is not None and (part.midi - end.midi) % 12:
        if DEGREE_MODES[degree] == "maj":
            return Inference(key, "final")
        return Inference(key, "unclear: first part ends elsewhere")
    return Inference(tonic, "final+part" if part is not None else "final")


def check_hidden(key: Key, events: list[Event]) -> str:
    """The rule tried on a tune whose K: names its mode, with that name hidden (only the
    signature given): "agree", "disagree" or "unclear"; "" for a tune whose K: names only a key
    or a mode outside the four. This is how the rule is checked against the books' own words."""
    if not key.stated or key.mode not in _MODE_DEGREE:
        return ""
    guess = infer(_major_tonic(key), events)
    if guess.rule.startswith("unclear"):
        return "unclear"
    same = (guess.key.letter, guess.key.alter, guess.key.mode) == (key.letter, key.alter, key.mode)
    return "agree" if same else "disagree"
