"""The drone: tonic and fifth, struck at each part as played, silent between tunes."""

from __future__ import annotations

import pytest

from instrument.music.accompany import drone_notes
from instrument.music.drone import DRONE_PITCHES
from instrument.music.notes import tune_notes
from instrument.music.tunes import Tune, parse_tunes
from tests.helpers import DATA

A = "c d e f g a b c'"
B = "g f e d c B A G"


def test_the_drone_is_struck_at_each_part_as_played_and_held_to_the_next():
    tune = Tune("4/4", "maj", f"|: {A} | {A} :| |: {B} | {B} :|".split())
    notes = drone_notes(tune)
    assert [(n.pitch, n.start, n.duration) for n in notes] == [
        (p, start, 8.0) for start in (0.0, 8.0, 16.0, 24.0) for p in DRONE_PITCHES]


def test_a_second_ending_belongs_to_its_part_and_the_next_part_strikes_after_it():
    tune = Tune("4/4", "maj", f"|: {A} |1 {A} :| |2 {B} | {A} | {B} |".split())
    starts = sorted({n.start for n in drone_notes(tune)})
    assert starts == [0.0, 8.0, 16.0]  # A, A again (its second ending included), then the unrepeated part


def test_a_drone_sounds_only_the_tonic_or_the_fifth():
    tune = Tune("4/4", "dor", A.split())
    assert {n.pitch for n in drone_notes(tune, pitches=(36, 43, 48))} == {36, 43, 48}
    with pytest.raises(ValueError, match="tonic or the fifth.*MIDI 52"):
        drone_notes(tune, pitches=(48, 52))


def test_on_folk_rnn_s_tunes_the_drone_holds_tonic_or_fifth_from_the_first_note_to_the_last():
    for tune in parse_tunes((DATA / "folkrnn_v2_samples.txt").read_text()):
        score = tune_notes(tune)
        notes = drone_notes(tune)
        assert {n.pitch % 12 for n in notes} <= {0, 7}
        assert min(n.start for n in notes) == min(n.start for n in score.notes)
        assert abs(max(n.start + n.duration for n in notes) - score.end) < 1e-9
        starts = sorted({n.start for n in notes})
        assert len(starts) >= 1 and all(b > a for a, b in zip(starts, starts[1:]))
