"""A follower: one more row of the network, playing the lead's tune with its own variations.

A second fiddler or a flute player in a session plays the tune the leader plays, note for note
in its rhythm and bars, and varies the pitches where the tune allows (heterophony). The
follower is a row of the lead's batched stepper that is fed the lead's tune with its own
pitches. Step k samples the lead's token l_k and the follower's version f_(k-1) of the lead's
token before it, which is known by then, so the follower lags one token and costs nothing in
time: a note is certain only when the next token arrives, the step that decides the follower's
version of it (docs/design.md §11).

- The lead's rhythm tokens, bar lines, rests and brackets are the follower's too: its row may
  write nothing else (its bias is -inf elsewhere), so every bar starts with the lead's and
  lasts as long.
- Where the lead writes a pitch, the follower draws a pitch from its own distribution, pushed
  toward the tokens that sound the lead's pitch in its own bar (its own accidentals held, §2) by
  ``cohesion_bias``; pitch classes outside the mode's scale and the lead's tune so far are
  forbidden, scale notes the lead has not used yet cost a nat, and it stays within about a
  fifth of the lead (a second player stays near). The whole bias is divided by the follower's
  temperature: otherwise a hot follower would flatten its own logits under a fixed bias and
  play *more* in unison, the opposite of what a performer expects.
- Within a beat it may split a note of two eighths (``A 2``) into two (``A B``): its row may write
  a pitch a step from its note instead of the ``2``. The lead's next token is known before that
  pitch is fed, so it is made a passing or neighbour note toward the lead's next note
  (``Stepper.replace``); if the lead lengthens its note after all (``A 2 >``), the ``2`` stands.

The follower's notes are the lead's notes with its pitches (``notes``); its tokens (``body``)
are its part for the ABC, one per lead token. Pure: the composer owns the stepper.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from instrument.live.params import SCALES
from instrument.model import vocab
from instrument.model.vocab import TokenClass
from instrument.music.notes import Note, NoteStream

COHESION_SCALE = 4.5  # nats per unit of cohesion: the unison share grows about linearly with it
UNUSED_PC = -1.0  # a scale note the lead has not played yet in this tune
REGISTER = 0.5  # nats per semitone beyond REGISTER_RANGE from the lead's pitch
REGISTER_RANGE = 7
MODE_SCALE = {"maj": "major", "min": "minor", "dor": "dorian", "mix": "mixolydian"}
_CLASS = vocab.TOKEN_CLASS
_PITCHES = np.flatnonzero(vocab.class_mask(TokenClass.PITCH))
_PARSED = [vocab.parse_pitch(vocab.TOKENS[i]) for i in _PITCHES]
_KEYS = sorted({(letter, octave) for _, letter, octave in _PARSED})
_KEY = np.array([_KEYS.index((letter, octave)) for _, letter, octave in _PARSED])
_NATURAL = np.array([vocab.natural_midi(letter, octave) for _, letter, octave in _PARSED])
_EXPLICIT = np.array([acc is not None for acc, _, _ in _PARSED])
_ACCIDENTAL = np.array([acc or 0 for acc, _, _ in _PARSED])
_ROW = {int(t): i for i, t in enumerate(_PITCHES)}  # vocabulary index -> row of these tables
_MODIFIES = (TokenClass.DURATION, TokenClass.BROKEN)  # tokens that change the note before them


def cohesion_bias(cohesion: float) -> float:
    """Nats toward the lead's pitch: 4.5 c + c / (20 (1 - c)), infinite (unison) at 1. With the
    network's own agreement (about 18% unison at 0) the unison share at coinciding onsets grows
    about linearly with c; the second term takes it on to unison as c nears 1."""
    if cohesion >= 1.0:
        return math.inf
    return COHESION_SCALE * cohesion + cohesion / (20.0 * (1.0 - cohesion))


class _BarAccidentals:
    """The accidentals one voice holds in its bar, and what every pitch token sounds there."""

    def __init__(self, mode: str) -> None:
        signature = vocab.MODE_SIGNATURE[mode]
        self._signature = np.array([signature.get(letter, 0) for letter, _ in _KEYS])
        self._held = self._signature.copy()

    def pitches(self) -> np.ndarray:
        """MIDI pitch of every pitch token (rows of ``_PITCHES``) in this bar now."""
        return _NATURAL + np.where(_EXPLICIT, _ACCIDENTAL, self._held[_KEY])

    def pitch(self, token: str) -> int:
        row = _ROW[vocab.INDEX[token]]
        return int(_NATURAL[row] + (_ACCIDENTAL[row] if _EXPLICIT[row] else self._held[_KEY[row]]))

    def push(self, token: str) -> int | None:
        """Take the voice's next token; the pitch it sounds, if a pitch."""
        index = vocab.INDEX[token]
        cls = _CLASS[index]
        if cls is TokenClass.BAR:
            self._held = self._signature.copy()
        elif cls is TokenClass.PITCH:
            pitch = self.pitch(token)
            row = _ROW[index]
            if _EXPLICIT[row]:
                self._held[_KEY[row]] = _ACCIDENTAL[row]
            return pitch
        return None


class Follower:
    """One follow row's part in one tune (see the module docstring)."""

    def __init__(self, meter: str, mode: str) -> None:
        self.meter, self.mode = meter, mode
        self.body: list[str] = []  # its version of each lead token
        self.splits = 0
        self._scale = frozenset(SCALES[MODE_SCALE[mode]])
        self._lead_bar = _BarAccidentals(mode)
        self._own_bar = _BarAccidentals(mode)
        self._lead = NoteStream(meter, mode, repeats=False)  # where the lead's notes fall, for the split rule
        self._lead_tokens: list[str] = []
        self._lead_pitch: int | None = None  # what the lead's last token sounds
        self._lead_pcs: set[int] = set()
        self._pitch: dict[int, int] = {}  # token index -> the pitch the follower sounds there
        self._split: set[int] = set()  # token indices of the lead's "2" the follower played as a second note
        self._own_last: int | None = None
        self._split_ok = False

    # -- one step ---------------------------------------------------------------------------
    def lead(self, lead_token: str) -> None:
        """The lead wrote ``lead_token``: the follower's next token is its version of it."""
        before = self._lead_tokens[-1] if self._lead_tokens else None
        split_ok = (lead_token == "2" and before is not None and _CLASS[vocab.INDEX[before]] is TokenClass.PITCH
                    and not self._lead.in_chord and self._lead.tuplet_left == 0
                    and (len(self._lead_tokens) < 2
                         or _CLASS[vocab.INDEX[self._lead_tokens[-2]]] not in (TokenClass.BROKEN, TokenClass.TUPLET)))
        if split_ok:  # a note of two eighths inside one beat: on an even eighth; in compound time not on a beat's last
            eighth = round(self._lead.bar_position * 2)
            split_ok = eighth % 3 != 2 if self.meter in vocab.COMPOUND_METERS else eighth % 2 == 0
        self._lead_tokens.append(lead_token)
        self._lead_pitch = self._lead_bar.push(lead_token)
        if self._lead_pitch is not None and not self._lead.in_chord:
            self._lead_pcs.add(self._lead_pitch % 12)
        self._lead.push(lead_token)
        self._split_ok = split_ok

    def bias(self, cohesion: float, temperature: float) -> np.ndarray:
        """The row's logit bias for its version of the lead's newest token, already divided by
        the row's ``temperature`` (it joins the logits before temperature)."""
        index = vocab.INDEX[self._lead_tokens[-1]]
        split_ok = self._split_ok
        bias = np.full(vocab.SIZE, -np.inf)
        b = cohesion_bias(cohesion)
        lead = self._lead_pitch
        if lead is None or b == math.inf:  # copied: a rhythm token, a bar line, a rest; or unison
            bias[index] = 0.0
            if lead is None and split_ok and self._own_last is not None and b < math.inf:
                p = min(0.95, 1.0 - cohesion)
                pitches = self._own_bar.pitches()
                step = (np.abs(pitches - self._own_last) >= 1) & (np.abs(pitches - self._own_last) <= 2)
                bias[_PITCHES[step & self._in(pitches, self._scale | self._lead_pcs)]] = math.log(p / (1.0 - p))
        else:
            pitches = self._own_bar.pitches()
            pcs = pitches % 12
            values = np.where(np.isin(pcs, list(self._lead_pcs)), 0.0,
                              np.where(np.isin(pcs, list(self._scale)), UNUSED_PC, -np.inf))
            values = values - REGISTER * np.maximum(0, np.abs(pitches - lead) - REGISTER_RANGE)
            values[pitches == lead] = b
            bias[_PITCHES] = values
        if temperature > 0:
            bias /= temperature
        return bias

    @staticmethod
    def _in(pitches: np.ndarray, pcs: frozenset[int] | set[int]) -> np.ndarray:
        return np.isin(pitches % 12, list(pcs))

    def took(self, token: str, lead_next: str | None) -> str:
        """The row sampled ``token`` for the lead's newest token; ``lead_next``: the lead's token
        sampled in the same step (None at the tune's end). Returns the token to feed (a split's
        second note made a passing note, or the ``2`` again where the lead lengthens its note)."""
        lead_token = self._lead_tokens[-1]
        index = vocab.INDEX[token]
        if self._lead_pitch is None and _CLASS[index] is TokenClass.PITCH and lead_token != token:  # a split
            if lead_next is not None and _CLASS[vocab.INDEX[lead_next]] in _MODIFIES:
                token = lead_token  # the lead's note is longer after all: play it whole
            else:
                token = self._passing(token, lead_next)
        self.body.append(token)
        pitch = self._own_bar.push(token)
        if pitch is not None:
            position = len(self.body) - 1
            self._pitch[position] = pitch
            if self._lead_pitch is None:
                self._split.add(position)
                self.splits += 1
            self._own_last = pitch
        return token

    def _passing(self, proposed: str, lead_next: str | None) -> str:
        """The second eighth of a split: the network's own choice where it moves by step to the
        lead's next note, else the scale step between the held note and it (toward it for a
        leap); before a bar line or a rest the network's neighbour note stands."""
        if lead_next is None or _CLASS[vocab.INDEX[lead_next]] is not TokenClass.PITCH or self._own_last is None:
            return proposed
        target = self._lead_bar.pitch(lead_next)
        pitches = self._own_bar.pitches()
        held = self._own_last
        near = (np.abs(pitches - held) >= 1) & (np.abs(pitches - held) <= 2) & self._in(pitches, self._scale | self._lead_pcs)
        spelled: dict[int, int] = {}  # pitch -> row, the plainest spelling first
        for row in np.flatnonzero(near):
            p = int(pitches[row])
            if p not in spelled or not _EXPLICIT[row]:
                spelled[p] = int(row)
        good = [p for p in spelled if abs(p - target) <= 2 and p != target]
        between = [p for p in good if min(held, target) < p < max(held, target)]
        choice = between or good
        if not choice:  # a leap follows: step toward it
            direction = 1 if target > held else -1
            choice = [p for p in spelled if (p - held) * direction > 0] or list(spelled)
        if not choice:
            return proposed
        mine = self._own_bar.pitch(proposed)
        if mine in choice:
            return proposed
        return vocab.TOKENS[_PITCHES[spelled[min(choice, key=lambda p: (abs(p - mine), p))]]]

    @property
    def last_pitch(self) -> int | None:
        """The pitch of the last pitch token it played (None before the first)."""
        return self._own_last

    # -- the tune's end and its notes ---------------------------------------------------------
    def close(self, lead_body: Sequence[str]) -> None:
        """The tune ended: lead tokens the follower has no version of (the tune was cut off)
        it plays as the lead wrote them, so its part is as long as the lead's."""
        for i in range(len(self.body), len(lead_body)):
            if len(self._lead_tokens) <= i:
                self.lead(lead_body[i])
            self.took(lead_body[i], None)

    def notes(self, lead_notes: Sequence[Note]) -> list[Note]:
        """The follower's notes for lead notes just made certain: the lead's times, its pitches
        (each pitch once at an onset), a split note as its two eighths."""
        out: list[Note] = []
        seen: set[tuple[float, int]] = set()
        for n in lead_notes:
            pitch = self._pitch.get(n.token, n.pitch)
            if n.token + 1 in self._split and n.duration > 0.5:
                parts = [Note(pitch, n.start, 0.5, n.bar, n.bar_offset, n.token),
                         Note(self._pitch[n.token + 1], n.start + 0.5, n.duration - 0.5, n.bar, n.bar_offset + 0.5, n.token + 1)]
            else:
                parts = [Note(pitch, n.start, n.duration, n.bar, n.bar_offset, n.token)]
            for part in parts:
                key = (round(part.start, 6), part.pitch)
                if key not in seen:
                    seen.add(key)
                    out.append(part)
        return out
