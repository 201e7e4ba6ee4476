"""A tune's form: its parts, which of them repeat, their endings and how many bars each has.

Session dance tunes are mostly two parts (A and B) of eight bars, each played twice, often with
first and second endings; the songs of the Essen collection are one unrepeated strain. This is
how the corpus selects tunes for the session model and how the quality benchmark judges what a
model writes (docs/design.md §9).

Bars are counted as a player counts them: a part is measured as played once through, taking the
first ending and leaving out the second (which replaces it), and only whole bars count, so a
pickup and the short last bar it completes make one bar between them. Lengths come from the
token-to-note rules (``NoteStream``), never from a second reading of the tokens.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

from instrument.model import vocab
from instrument.music.notes import Note, NoteStream, Score
from instrument.music.tunes import Tune


@dataclass(frozen=True)
class Part:
    """One part (strain) of a tune."""

    bars: int  # whole bars as played once through (first ending taken, second left out)
    repeated: bool  # closed by ``:|``: played twice
    endings: bool  # has first and/or second endings
    start_token: int = 0  # body index of its first token


@dataclass(frozen=True)
class Form:
    parts: tuple[Part, ...]

    @property
    def repeated_parts(self) -> int:
        return sum(part.repeated for part in self.parts)

    @property
    def has_repeat(self) -> bool:
        return self.repeated_parts >= 1

    @property
    def two_repeated_parts(self) -> bool:
        return self.repeated_parts >= 2

    @property
    def has_endings(self) -> bool:
        return any(part.endings for part in self.parts)


class FormTracker:
    """``tune_form`` one token at a time, for the live loop: ``starts`` holds the body index of
    the first token of each part begun so far, known as soon as its first note can sound (a
    part after a first and second ending begins once the second ending's bars are over)."""

    def __init__(self, meter: str, mode: str) -> None:
        self._stream = NoteStream(meter, mode, repeats=False)
        self._bar_beats = vocab.METER_EIGHTHS[meter] / 2
        self.parts: list[Part] = []  # closed parts
        self.starts: list[int] = [0]  # first token of every part begun, the open one last
        self._index = -1
        self._start = 0.0  # written position (beats) where the current part began
        self._start_token = 0
        self._ending_at: float | None = None  # where its first ending began
        self._ending_bars = 0  # bar lines inside the first ending
        self._skip_bars = 0  # bar lines still to pass in a second ending, which belongs to the part before
        self._skip_from = 0.0
        self._closed = False

    def _begin(self, at: float, token: int) -> None:
        self._start, self._start_token = at, token
        if token != self.starts[-1]:
            self.starts.append(token)

    def _close(self, end: float, repeated: bool, endings: bool) -> None:
        length = end - self._start
        if length > 1e-9:
            self.parts.append(Part(math.floor(length / self._bar_beats + 1e-9), repeated, endings, self._start_token))

    def push(self, token: str) -> None:
        self._index += 1
        index = self._index
        self._stream.push(token)
        if token not in ("|", "|:", ":|", "|1", "|2"):
            return
        at = self._stream.position
        if self._skip_bars:
            if token == "|2" and at == self._skip_from:
                return  # ":| |2": the second ending begins here
            self._skip_bars -= 1
            if self._skip_bars and token == "|":
                return  # still inside the second ending
            self._ending_at, self._ending_bars, self._skip_bars = None, 0, 0  # the second ending is over
            self._begin(at, index + 1)
            if token == "|":
                return
        if token == "|1" and self._ending_at is None:
            self._ending_at, self._ending_bars = at, 0
        elif token == "|" and self._ending_at is not None:
            self._ending_bars += 1
        elif token == "|:":
            self._close(at, repeated=False, endings=self._ending_at is not None)
            self._begin(at, index + 1)
            self._ending_at = None
        elif token == ":|":
            self._close(at, repeated=True, endings=self._ending_at is not None)
            if self._ending_at is not None:  # its second ending follows and is part of it
                self._skip_bars, self._skip_from = self._ending_bars + 1, at
                self._start, self._start_token = at, index + 1  # the next part begins after it
            else:
                self._begin(at, index + 1)
            self._ending_at = None
        elif token == "|2" and self._ending_at is None:
            self._skip_bars, self._skip_from = 1, at  # a second ending with no first: one bar of it

    def close(self) -> Form:
        """The tune is over: its last part closes (once)."""
        if not self._closed:
            self._closed = True
            self._stream.close()
            if not self._skip_bars:
                self._close(self._stream.position, repeated=False, endings=self._ending_at is not None)
        return Form(tuple(self.parts))


def tune_form(tune: Tune) -> Form:
    """The parts of ``tune``: a part ends at ``:|`` (after its second ending, if any), before a
    ``|:`` that follows music, and at the end of the tune."""
    tracker = FormTracker(tune.meter, tune.mode)
    for token in tune.body:
        tracker.push(token)
    return tracker.close()


class PartOpenings:
    """Which notes open a part, as the notes come (``part_openings`` is this, fed a whole tune).

    A note opens a part when it is the tune's first, when it is played again from an earlier
    token (a repeat played out), or when a part began since the note before it in the written
    tune (``FormTracker.starts``) and the last opening lies at least a bar before it as played:
    a part of less than a bar (a pickup before ``|:``) and the part it leads into open once, at
    the pickup, where the player's new part begins.
    """

    def __init__(self, meter: str, starts: list[int]) -> None:
        self._bar = vocab.METER_EIGHTHS[meter] / 2
        self._starts = starts  # a FormTracker's: read as it grows
        self._last_token = -1
        self._last_start = -math.inf

    def opens(self, note: Note) -> bool:
        token, last = note.token, self._last_token
        if token == last:  # another note of the same chord
            return False
        self._last_token = token
        replay = token < last
        began = last >= 0 and not replay and bisect_right(self._starts, token) > bisect_right(self._starts, last)
        if last < 0 or replay or (began and note.start >= self._last_start + self._bar - 1e-6):
            self._last_start = note.start
            return True
        return False


def part_openings(tune: Tune, score: Score) -> list[Note]:
    """The first note of each part every time it is played (a repeat plays it again), in playing
    order: where a drone is struck again and where a part's last chord comes home (``PartOpenings``).

    ``score`` is ``tune_notes(tune)`` (repeats played out or not).
    """
    tracker = FormTracker(tune.meter, tune.mode)
    for token in tune.body:
        tracker.push(token)
    tracker.close()
    openings = PartOpenings(tune.meter, tracker.starts)
    return [note for note in sorted(score.notes, key=lambda n: n.start) if openings.opens(note)]
