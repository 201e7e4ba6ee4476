"""The vamp: a guitar's boom-chick for each chord, in the dance's rhythm and a guitar's register."""

from __future__ import annotations

from collections import defaultdict

from instrument.music.beat_groups import BeatGroup
from instrument.music.accompany import chord_track
from instrument.music.harmony import ChordChange, mode_chords
from instrument.music.notes import tune_notes
from instrument.music.tunes import parse_tunes
from instrument.music.vamp import VAMP_HITS, bass_pitch, triad, vamp_notes, vamp_track
from tests.helpers import DATA

TUNES = parse_tunes((DATA / "folkrnn_v2_samples.txt").read_text())
C, F, G = mode_chords("maj")


def strokes(notes) -> list[tuple[float, float, tuple[int, ...]]]:
    """(onset, length, pitches) of each stroke."""
    by: dict[tuple[float, float], list[int]] = defaultdict(list)
    for n in notes:
        by[(n.start, n.duration)].append(n.pitch)
    return [(s, d, tuple(sorted(p))) for (s, d), p in sorted(by.items())]


def test_a_jig_strikes_the_bass_on_the_first_eighth_and_the_chord_on_the_third():
    assert strokes(vamp_notes(C, BeatGroup(3.0, 1.5, 1, 0.0), "6/8")) == [(3.0, 1.0, (48, 55)), (4.0, 0.5, (55, 60, 64))]


def test_a_reel_alternates_bass_and_chord_on_its_quarters():
    assert strokes(vamp_notes(G, BeatGroup(2.0, 2.0, 0, 2.0), "4/4")) == [(2.0, 1.0, (43, 50)), (3.0, 1.0, (55, 59, 62))]


def test_a_waltz_plays_bass_chord_chord_and_a_polka_boom_chick_in_eighths():
    assert [s[0] for s in strokes(vamp_notes(F, BeatGroup(0.0, 3.0, 0, 0.0), "3/4"))] == [0.0, 1.0, 2.0]
    assert strokes(vamp_notes(F, BeatGroup(1.0, 1.0, 0, 1.0), "2/4")) == [(1.0, 0.5, (41, 48)), (1.5, 0.5, (57, 60, 65))]


def test_a_short_group_keeps_only_the_strokes_that_fit():
    assert strokes(vamp_notes(C, BeatGroup(0.0, 0.5, 0, 0.0), "4/4")) == [(0.0, 0.5, (48, 55))]


def test_the_bass_walks_to_the_fifth_while_a_chord_goes_on():
    groups = [BeatGroup(2.0 * i, 2.0, i // 2, 2.0 * (i % 2)) for i in range(4)]
    notes = vamp_track([ChordChange(g, c) for g, c in zip(groups, (C, C, C, G))], "4/4")
    basses = [p for s, _, p in strokes(notes) if s % 2 == 0]
    assert basses == [(48, 55), (43, 48), (48, 55), (43, 50)]  # C, then G below C, C again, G's root


def test_registers_are_a_guitar_s():
    for chords in (mode_chords(m) for m in ("maj", "min", "dor", "mix")):
        for chord in chords:
            assert all(55 <= p <= 66 for p in triad(chord)) and {p % 12 for p in triad(chord)} == chord.pitch_classes
            assert 40 <= bass_pitch(chord.root) <= 51


def test_on_folk_rnn_s_tunes_every_stroke_sounds_two_to_four_chord_tones_from_a_beat_group_s_start():
    """The vamp alone: 2-4 notes at once, and chords change on beat-group starts."""
    for tune in TUNES:
        track = chord_track(tune)
        notes = vamp_track(track, tune.meter)
        offsets = {h.offset for h in VAMP_HITS[tune.meter]}
        for onset, _, pitches in strokes(notes):
            sounding = [n for n in notes if n.start <= onset + 1e-9 < n.start + n.duration]
            assert 2 <= len(sounding) <= 4 and len({n.pitch for n in sounding}) == len(sounding)
            change = next(c for c in track if c.group.start <= onset + 1e-9 < c.group.end)
            assert {p % 12 for p in pitches} <= change.chord.pitch_classes
            assert any(abs(onset - change.group.start - o) < 1e-9 for o in offsets)
        bass_onsets = {n.start for n in notes if n.pitch <= 51}  # a boom's lowest note; a chick's are G3 and up
        assert bass_onsets <= {c.group.start for c in track}
