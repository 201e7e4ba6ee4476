"""Chords as a session accompanist picks them: the mode's usual chords, one per beat group."""

from __future__ import annotations

import bisect

import pytest

from instrument.music.beat_groups import BeatGroup
from instrument.music.accompany import chord_track
from instrument.music.harmony import MODE_CHORDS, Chord, ChordChange, choose_chord, mode_chords
from instrument.music.notes import Note, tune_notes
from instrument.music.tunes import Tune, parse_tunes
from instrument.music.vamp import vamp_track
from tests.helpers import DATA

TUNES = parse_tunes((DATA / "folkrnn_v2_samples.txt").read_text())
JIG_GROUP = BeatGroup(0.0, 1.5, 0, 0.0)


def jig(*pitches: int, start: float = 0.0) -> list[Note]:
    """Eighth notes from ``start`` in 6/8."""
    return [Note(p, start + 0.5 * i, 0.5, 0, start + 0.5 * i, i) for i, p in enumerate(pitches)]


def symbols(mode: str) -> list[str]:
    return [f"{c.degree}={c.symbol}" for c in mode_chords(mode)]


def test_each_mode_has_its_usual_session_chords_spelled_in_c():
    assert symbols("maj") == ["I=C", "IV=F", "V=G"]
    assert symbols("min") == ["i=Cm", "iv=Fm", "v=Gm", "bVII=Bb", "bVI=Ab"]
    assert symbols("dor") == ["i=Cm", "IV=F", "bVII=Bb", "bIII=Eb"]
    assert symbols("mix") == ["I=C", "bVII=Bb", "IV=F", "v=Gm"]
    assert mode_chords("dor")[3].pitch_classes == {3, 7, 10}  # Eb G Bb
    assert all(chords[0].root == 0 for chords in MODE_CHORDS.values())  # the tonic chord first


def test_an_unknown_mode_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown mode 'lyd'.*dor"):
        mode_chords("lyd")


def test_a_group_that_dwells_on_a_chord_s_tones_takes_that_chord():
    assert choose_chord(jig(67, 71, 74), JIG_GROUP, "6/8", "maj").symbol == "G"  # G B D
    assert choose_chord(jig(65, 69, 72), JIG_GROUP, "6/8", "maj").symbol == "F"
    assert choose_chord(jig(70, 74, 65), JIG_GROUP, "6/8", "dor").symbol == "Bb"


def test_the_note_on_the_beat_outweighs_a_passing_note():
    # D (G's fifth) on the beat, then C and E passing: G, though C and E are both C's tones
    notes = [Note(62, 0.0, 1.0, 0, 0.0, 0), Note(60, 1.0, 0.25, 0, 1.0, 1), Note(64, 1.25, 0.25, 0, 1.25, 2)]
    assert choose_chord(notes, JIG_GROUP, "6/8", "maj").symbol == "G"


def test_the_chord_playing_is_kept_when_it_fits_as_well():
    notes = jig(72, 72, 72)  # C: in C major's I and IV alike
    assert choose_chord(notes, JIG_GROUP, "6/8", "maj").symbol == "C"
    assert choose_chord(notes, JIG_GROUP, "6/8", "maj", previous=mode_chords("maj")[1]).symbol == "F"


def test_a_part_s_end_comes_home_to_the_tonic_chord_when_it_fits_as_well():
    notes = jig(67, 67, 67)  # G: in C and in G
    five = mode_chords("maj")[2]
    assert choose_chord(notes, JIG_GROUP, "6/8", "maj", previous=five).symbol == "G"
    assert choose_chord(notes, JIG_GROUP, "6/8", "maj", previous=five, cadence=True).symbol == "C"


def test_a_rest_lets_the_chord_ring_on_and_a_part_s_end_go_home():
    four = mode_chords("mix")[2]
    assert choose_chord([], JIG_GROUP, "6/8", "mix", previous=four) == four
    assert choose_chord([], JIG_GROUP, "6/8", "mix", previous=four, cadence=True).symbol == "C"
    assert choose_chord([], JIG_GROUP, "6/8", "mix").symbol == "C"


def test_a_tune_s_last_group_and_each_part_s_last_group_take_the_tonic_chord():
    tune = Tune("6/8", "maj", "|: c 3 G 3 | F 3 D 3 | B, 3 D 3 | G 3 c 3 :| |: e 3 d 3 | B 3 G 3 | A 3 B 3 | c 6 :|".split())
    track = chord_track(tune)
    assert [c.chord.symbol for c in track[:8]] == ["C", "C", "F", "G", "G", "G", "G", "C"]
    assert track[-1].chord.symbol == "C"


def coverage(tune: Tune, track: list[ChordChange]) -> float:
    """Share of the vamp's onsets at which a lead note sounding there is a tone of the chord played."""
    score = tune_notes(tune)
    starts = [c.group.start for c in track]
    hits = heard = 0
    for onset in sorted({n.start for n in vamp_track(track, tune.meter)}):
        chord = track[bisect.bisect_right(starts, onset + 1e-9) - 1].chord
        lead = [n for n in score.notes if n.start <= onset + 1e-9 < n.start + n.duration]
        if lead:
            heard += 1
            hits += any(n.pitch % 12 in chord.pitch_classes for n in lead)
    return hits / heard


def test_the_chords_hold_the_lead_s_note_at_most_onsets_of_folk_rnn_s_tunes():
    """On real tunes: at >= 70% of the chords' onsets the lead's note is a chord tone
    (measured: 83.6% over the 64 tunes, the worst tune 72%; hearing only each group's first beat,
    without the look-ahead, 80.6% and two tunes under 70%)."""
    figures = [(coverage(t, chord_track(t)), coverage(t, chord_track(t, lookahead=False)))
               for t in TUNES]
    ahead = [a for a, _ in figures]
    assert min(ahead) >= 0.70
    assert sum(ahead) / len(ahead) >= 0.80
    assert sum(ahead) > sum(b for _, b in figures)  # the look-ahead is worth its latency


def test_the_coverage_check_can_fail():
    tune = TUNES[0]
    wrong = [ChordChange(c.group, Chord(c.chord.degree, (c.chord.root + 6) % 12, c.chord.minor))
             for c in chord_track(tune)]  # every chord a tritone away
    assert coverage(tune, wrong) < 0.5
