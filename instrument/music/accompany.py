"""The accompanists of a band, fed the lead's tune token by token: chords per beat group and the drone.

A session's guitarist and piper play from the melody they hear and the tune's form
(docs/design.md §11). ``Accompaniment`` takes each token the lead writes, with the notes its
``NoteStream`` made certain with it, and hands out what the accompanists now know enough to
play: a chord for each beat group once the lead's notes to the group's end are certain (the
live lead is composed one group ahead while chords play), and the drone's strike at each part's
first note. The offline views ``chord_track`` and ``drone_notes`` feed it a whole tune the same
way, so what live play chooses and what they report come from one rule.
"""

from __future__ import annotations

from typing import Sequence

from instrument.music.beat_groups import GroupGrid
from instrument.music.drone import DRONE_PITCHES, check_pitches, strike
from instrument.music.form import FormTracker, PartOpenings
from instrument.music.harmony import Chord, ChordChange, choose_chord, sounding
from instrument.music.notes import Note, NoteStream
from instrument.music.tunes import Tune

_EPS = 1e-6


class Accompaniment:
    """Chords and drone for one tune, from the lead's tokens as they come.

    ``push(token, notes, stream)`` after the lead's ``stream`` took ``token`` and made ``notes``
    certain; returns (the chord changes now decided, the drone's part openings now known).
    ``close(notes, stream)`` at the tune's end decides the rest. ``lookahead`` False chooses
    each chord from the notes sounding on its group's first beat only (what an accompanist who
    cannot hear ahead would play: the measure of what the look-ahead buys).
    """

    def __init__(self, meter: str, mode: str, lookahead: bool = True) -> None:
        self.meter, self.mode, self.lookahead = meter, mode, lookahead
        self._form = FormTracker(meter, mode)
        self._openings = PartOpenings(meter, self._form.starts)
        self._grid = GroupGrid(meter)
        self._notes: list[Note] = []  # the lead's notes that may still sound in a group to come
        self._boundaries: list[float] = []  # as-played beats where a part ends (the next one opens)
        self._parts = len(self._form.starts)
        self._previous: Chord | None = None
        self._last_opening: Note | None = None

    def push(self, token: str, notes: Sequence[Note], stream: NoteStream) -> tuple[list[ChordChange], list[Note]]:
        self._form.push(token)
        if len(self._form.starts) > self._parts:  # a part begins where the lead now stands
            self._parts = len(self._form.starts)
            self._boundaries.append(stream.played)
        # up to where the music is known: a rest being written sounds nothing, so the groups in
        # what is known of it can be decided (the live lead waits out a rest: NoteStream.horizon)
        return self._take(notes, stream.horizon, stream.bars, None)

    def close(self, notes: Sequence[Note], stream: NoteStream) -> tuple[list[ChordChange], list[Note]]:
        end = max([stream.played, *(n.start + n.duration for n in notes)])
        self._boundaries.append(end)
        return self._take(notes, end, stream.bars, end)

    def _take(self, notes, horizon, bars, end) -> tuple[list[ChordChange], list[Note]]:
        openings = []
        for note in sorted(notes, key=lambda n: n.start):
            self._grid.note(note)
            self._notes.append(note)
            if self._openings.opens(note):
                openings.append(note)
                if self._last_opening is not None:
                    self._boundaries.append(note.start)
                self._last_opening = note
        changes = []
        for group in self._grid.groups(horizon, bars, end):
            cadence = any(group.start + _EPS < b <= group.end + _EPS for b in self._boundaries)
            heard = sounding(self._notes, group.start, group.end if self.lookahead else group.start + 10 * _EPS)
            chord = choose_chord(heard, group, self.meter, self.mode, self._previous, cadence=cadence)
            changes.append(ChordChange(group, chord))
            self._previous = chord
            self._notes = [n for n in self._notes if n.start + n.duration > group.end - _EPS]
            self._boundaries = [b for b in self._boundaries if b > group.end - _EPS]
        return changes, openings


def _feed(tune: Tune, lookahead: bool = True, repeats: bool = True) -> tuple[list[ChordChange], list[Note], float]:
    """A whole tune through ``Accompaniment`` as live play feeds it: (changes, openings, end)."""
    stream = NoteStream(tune.meter, tune.mode, repeats)
    band = Accompaniment(tune.meter, tune.mode, lookahead)
    changes, openings, last = [], [], []
    for token in tune.body:
        notes = stream.push(token)
        last += notes
        more, opened = band.push(token, notes, stream)
        changes += more
        openings += opened
    notes = stream.close()
    more, opened = band.close(notes, stream)
    end = max([n.start + n.duration for n in last + notes], default=0.0)
    return changes + more, openings + opened, end


def chord_track(tune: Tune, lookahead: bool = True, repeats: bool = True) -> list[ChordChange]:
    """The chord of every beat group of a tune as played (repeats played out unless ``repeats``
    is False), as live play chooses them; ``lookahead`` as for ``Accompaniment``."""
    return _feed(tune, lookahead, repeats)[0]


def drone_notes(tune: Tune, pitches: Sequence[int] = DRONE_PITCHES, repeats: bool = True) -> list[Note]:
    """The drone of a tune as played: ``pitches`` held from each part's first note to the next
    part's, the last until the tune's last note ends (live play strikes the same notes and
    ends each at the next strike, or at the tune's end)."""
    check_pitches(pitches)
    _, openings, end = _feed(tune, repeats=repeats)
    ends = [o.start for o in openings[1:]] + [end]
    return [n for o, until in zip(openings, ends) if until > o.start for n in strike(o, pitches, until - o.start)]


__all__ = ["Accompaniment", "chord_track", "drone_notes"]
