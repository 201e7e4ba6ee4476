"""The optional grammar guard: which tokens may follow the ones so far.

An ablated or heavily stimulated network often writes things no reader can play (a duration
after a bar line, a bar inside a chord). The guard masks those before sampling, so the network
is only ever fed tokens it sampled among the allowed ones (nothing is rewritten after the fact).
It is off by default so that the seeds' experiments reproduce; the live instrument turns it on.

A duration follows only a pitch, a rest or ``]`` (never another duration: a note's length is one
token, docs/design.md §2), and after a duration a broken rhythm is only ``<`` or ``>`` (``2>``
would be a second duration). The note rules ignore what the guard forbids, for an unguarded stream.
"""

from __future__ import annotations

import numpy as np

from instrument.model import vocab
from instrument.model.vocab import TokenClass as C

_CLASS = [vocab.TOKEN_CLASS[i] for i in range(vocab.SIZE)]
_NOTE_START = vocab.class_mask(C.PITCH, C.REST, C.CHORD_OPEN)
_ONLY_START = vocab.class_mask(C.START)
_ONLY_METER = vocab.class_mask(C.METER)
_ONLY_MODE = vocab.class_mask(C.MODE)
_BODY = ~vocab.class_mask(C.START, C.METER, C.MODE)
_DURATION = vocab.class_mask(C.DURATION)
_BROKEN = vocab.class_mask(C.BROKEN)
_BROKEN_WITH_LENGTH = _BROKEN & ~np.isin(np.array(vocab.TOKENS, dtype=object), ["<", ">"])  # 2> /2< 4> ...
_TUPLET = vocab.class_mask(C.TUPLET)
_BAR_OR_END = vocab.class_mask(C.BAR, C.END)
_CHORD_CLOSE = vocab.class_mask(C.CHORD_CLOSE)
_PITCH = vocab.class_mask(C.PITCH)


class GrammarGuard:
    """Follows one token sequence and answers which tokens may come next."""

    def __init__(self) -> None:
        self.stage = "start"  # start -> meter -> mode -> body -> ended
        self.last: C | None = None
        self.in_chord = False
        self.chord_pitches = 0
        self.tuplet_left = 0

    def snapshot(self) -> tuple:
        """The guard's state, for ``restore`` (a token replaced before it is fed)."""
        return self.stage, self.last, self.in_chord, self.chord_pitches, self.tuplet_left

    def restore(self, state: tuple) -> None:
        self.stage, self.last, self.in_chord, self.chord_pitches, self.tuplet_left = state

    def push(self, index: int) -> None:
        cls = _CLASS[index]
        if cls is C.START:
            self.__init__()
            self.stage = "meter"
        elif cls is C.METER:
            self.stage = "mode"
        elif cls is C.MODE:
            self.stage = "body"
        elif cls is C.END:
            self.stage = "ended"
        elif cls is C.CHORD_OPEN:
            self.in_chord, self.chord_pitches = True, 0
        elif cls is C.BAR and self.in_chord:  # forced or unguarded: closes the chord, as the note rules play it
            self.in_chord = False
        elif cls is C.CHORD_CLOSE:
            self.in_chord = False
            self.tuplet_left = max(0, self.tuplet_left - 1)
        elif cls is C.PITCH and self.in_chord:
            self.chord_pitches += 1
        elif cls in (C.PITCH, C.REST):
            self.tuplet_left = max(0, self.tuplet_left - 1)
        elif cls is C.TUPLET:
            self.tuplet_left = vocab.tuplet_size(vocab.TOKENS[index])
        self.last = cls

    def allowed(self) -> np.ndarray:
        """Boolean mask over the vocabulary; never empty."""
        if self.stage in ("start", "ended"):
            return _ONLY_START
        if self.stage == "meter":
            return _ONLY_METER
        if self.stage == "mode":
            return _ONLY_MODE
        last = self.last
        if last in (C.TUPLET, C.BROKEN):
            return _NOTE_START
        if self.in_chord:
            mask = _PITCH.copy() if self.chord_pitches < vocab.MAX_CHORD_NOTES else np.zeros_like(_PITCH)
            if last is C.PITCH:
                mask |= _DURATION | (_CHORD_CLOSE if self.chord_pitches else False)
            elif last is C.DURATION and self.chord_pitches:
                mask |= _CHORD_CLOSE
            if not mask.any():  # a full chord after a rest or a forced token: only its close
                mask = _CHORD_CLOSE.copy()
            return mask
        mask = _BODY & ~_CHORD_CLOSE
        if last not in (C.PITCH, C.REST, C.CHORD_CLOSE):
            mask &= ~_DURATION
        if last not in (C.PITCH, C.REST, C.CHORD_CLOSE, C.DURATION) or self.tuplet_left:
            mask &= ~_BROKEN
        elif last is C.DURATION:
            mask &= ~_BROKEN_WITH_LENGTH
        if self.tuplet_left:
            mask &= ~(_TUPLET | _BAR_OR_END)
        return mask
