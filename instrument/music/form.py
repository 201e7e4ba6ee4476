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


def tune_form(tune: Tune) -> Form:
    """The parts of ``tune``: a part ends at ``:|`` (after its second ending, if any), before a
    ``|:`` that follows music, and at the end of the tune."""
    stream = NoteStream(tune.meter, tune.mode, repeats=False)
    bar_beats = vocab.METER_EIGHTHS[tune.meter] / 2
    parts: list[Part] = []
    start = 0.0  # written position (beats) where the current part began
    start_token = 0  # body index of its first token
    ending_at: float | None = None  # where its first ending began
    ending_bars = 0  # bar lines inside the first ending
    skip_bars = 0  # bar lines still to pass in a second ending, which belongs to the part before
    skip_from = 0.0

    def close(end: float, repeated: bool, endings: bool) -> None:
        length = end - start
        if length > 1e-9:
            parts.append(Part(math.floor(length / bar_beats + 1e-9), repeated, endings, start_token))

    for index, token in enumerate(tune.body):
        stream.push(token)
        if token not in ("|", "|:", ":|", "|1", "|2"):
            continue
        at = stream.position
        if skip_bars:
            if token == "|2" and at == skip_from:
                continue  # ":| |2": the second ending begins here
            skip_bars -= 1
            if skip_bars and token == "|":
                continue  # still inside the second ending
            start, ending_at, ending_bars, skip_bars = at, None, 0, 0  # the second ending is over
            start_token = index + 1
            if token == "|":
                continue
        if token == "|1" and ending_at is None:
            ending_at, ending_bars = at, 0
        elif token == "|" and ending_at is not None:
            ending_bars += 1
        elif token == "|:":
            close(at, repeated=False, endings=ending_at is not None)
            start, start_token, ending_at = at, index + 1, None
        elif token == ":|":
            close(at, repeated=True, endings=ending_at is not None)
            if ending_at is not None:  # its second ending follows and is part of it
                skip_bars, skip_from = ending_bars + 1, at
            start, start_token, ending_at = at, index + 1, None
        elif token == "|2" and ending_at is None:
            skip_bars, skip_from = 1, at  # a second ending with no first: one bar of it
    stream.close()
    if not skip_bars:
        close(stream.position, repeated=False, endings=ending_at is not None)
    return Form(tuple(parts))


def part_openings(tune: Tune, score: Score) -> list[Note]:
    """The first note of each part every time it is played (a repeat plays it again), in playing
    order: where a drone is struck again and where a part's last chord comes home.

    ``score`` is ``tune_notes(tune)`` (repeats played out or not). A pickup written before a ``|:``
    (a part of no whole bar) opens the part it leads into, and the tune's first part opens with
    the tune's first note.
    """
    firsts = [p.start_token for p in tune_form(tune).parts if p.bars > 0] or [0]
    firsts[0] = 0
    openings: list[Note] = []
    last_part, last_token = -1, -1
    for note in sorted(score.notes, key=lambda n: n.start):
        part = bisect_right(firsts, note.token) - 1
        if part != last_part or note.token < last_token:  # a new part, or this one again from its start
            openings.append(note)
        last_part, last_token = part, note.token
    return openings
