"""The token-to-note rules, one token class at a time, and the streaming contract of NoteStream."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from instrument.model import vocab
from instrument.music.notes import Bar, Note, NoteStream, tune_notes, tuplet_ratio
from instrument.music.tunes import Tune, parse_tunes

ROOT = Path(__file__).resolve().parents[1]
NOT_BODY = {vocab.TokenClass.METER, vocab.TokenClass.MODE, vocab.TokenClass.START, vocab.TokenClass.END}
SAMPLES = ROOT / "tests" / "data" / "folkrnn_v2_samples.txt"


def score(body: str, meter: str = "4/4", mode: str = "maj", repeats: bool = True):
    return tune_notes(Tune(meter, mode, body.split()), repeats=repeats)


def played(body: str, meter: str = "4/4", mode: str = "maj", repeats: bool = True) -> list[tuple[int, float, float]]:
    """(pitch, start, duration) of every note as played."""
    return [(n.pitch, n.start, n.duration) for n in score(body, meter, mode, repeats).notes]


def pitches(body: str, mode: str = "maj") -> list[int]:
    return [p for p, _, _ in played(body, mode=mode, repeats=False)]


def starts(body: str, meter: str = "4/4", repeats: bool = True) -> list[float]:
    return [s for _, s, _ in played(body, meter, repeats=repeats)]


def bar_table(body: str, meter: str = "4/4") -> list[tuple[float, bool, bool]]:
    """(length, ok, pickup) of every written bar."""
    return [(b.length, b.ok, b.pickup) for b in score(body, meter).bars]


# -- pitch ---------------------------------------------------------------------------------------
def test_pitch_octaves():
    assert pitches("C D E F G A B c d e f g a b") == [60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81, 83]
    assert pitches("C, c' G, g' B, b'") == [48, 84, 55, 91, 59, 95]


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("maj", [60, 62, 64, 65, 67, 69, 71]),
        ("mix", [60, 62, 64, 65, 67, 69, 70]),
        ("dor", [60, 62, 63, 65, 67, 69, 70]),
        ("min", [60, 62, 63, 65, 67, 68, 70]),
    ],
)
def test_key_signature_of_each_mode(mode, expected):
    body = " | ".join("C D E F G A B".split())  # one note a bar: nothing is held from note to note
    assert pitches(body, mode) == expected
    assert pitches("c' e' a' b'", mode) == [e + 24 for e in (expected[0], expected[2], expected[5], expected[6])]


def test_explicit_accidentals_override_the_key():
    assert pitches("=B | =E | =A | ^F | _D | ^G | _C", mode="min") == [71, 64, 69, 66, 61, 68, 59]


def test_accidental_holds_for_same_letter_and_octave_only():
    # ^F holds for F in its octave, not for f or F, (propagate-accidentals octave)
    assert pitches("^F F f F, F") == [66, 66, 77, 53, 66]
    assert pitches("_e e E e' e") == [75, 75, 64, 88, 75]
    # a natural holds too, against the key signature
    assert pitches("=B B b B", mode="min") == [71, 71, 82, 71]


@pytest.mark.parametrize("bar", ["|", "|:", ":|", "|1", "|2"])
def test_accidentals_reset_at_every_bar_token(bar):
    assert pitches(f"^F F {bar} F") == [66, 66, 65]
    assert pitches(f"=B B {bar} B", mode="dor") == [71, 71, 70]


def test_accidental_inside_a_chord_holds_for_the_bar():
    assert pitches("[ ^C E ] C | C") == [61, 64, 61, 60]


# -- durations -----------------------------------------------------------------------------------
@pytest.mark.parametrize("token", vocab.tokens_of(vocab.TokenClass.DURATION))
def test_every_duration_token_multiplies_the_note(token):
    length = float(vocab.duration_value(token)) / 2  # eighths -> quarter beats
    assert played(f"A {token} B") == [(69, 0.0, length), (71, length, 0.5)]
    assert played(f"z {token} B") == [(71, length, 0.5)]  # a rest takes a duration too


def test_a_duration_after_a_duration_is_ignored_as_stray_ones_are():
    assert played("A 3 /2 B") == [(69, 0.0, 1.5), (71, 1.5, 0.5)]
    assert played("2 A | /2 B") == [(69, 0.0, 0.5), (71, 0.5, 0.5)]
    assert played("[ C 2 3 E ] 2 /2 A") == [(60, 0.0, 2.0), (64, 0.0, 2.0), (69, 2.0, 0.5)]
    # a broken rhythm right after a duration keeps its direction and leaves out its own length
    assert played("A /4 2< B") == [(69, 0.0, 0.0625), (71, 0.0625, 0.75)]
    assert played("A 2> B") == [(69, 0.0, 1.5), (71, 1.5, 0.25)]  # right after its note, its 2 counts


@pytest.mark.parametrize("meter", vocab.METERS)
def test_a_note_chord_or_rest_lasts_at_most_two_bars_of_the_meter(meter):
    """``C z 16 16 16 C`` put the second C at beat 2048.5 and ``C 16 12 9`` was one note 864 quarters
    long: durations multiplied without bound, and a run of rests silenced the instrument."""
    bound = 2 * vocab.METER_EIGHTHS[meter] / 2  # quarter-note beats
    held = min(8.0, bound)  # 16 eighths, the longest token, cut to two bars
    assert played("C z 16 16 16 C", meter) == [(60, 0.0, 0.5), (60, 0.5 + held, 0.5)]
    assert played("C 16 12 9 D", meter) == [(60, 0.0, held), (62, held, 0.5)]
    for body in ("C 16 > D", "[ C 16 E 16 ] 16 D", "(2 C 16 > D", "C < D 16 E", "z 16 > z 16 D", "(4 C 16 D E F"):
        for note in played(body, meter):
            assert note[2] <= bound, (body, note)
        assert starts(body, meter)[-1] <= 2 * bound + 1


def test_a_note_longer_than_two_bars_is_cut_to_fit():
    assert played("C 16 D", "2/4") == [(60, 0.0, 4.0), (62, 4.0, 0.5)]  # 8 eighths: two bars of 2/4
    assert played("C 16 > D", "4/4") == [(60, 0.0, 8.0), (62, 8.0, 0.25)]  # 24 eighths cut to 16; D still halved
    assert played("C 9 > D", "4/4") == [(60, 0.0, 6.75), (62, 6.75, 0.25)]  # 13.5 eighths fit
    assert played("(3 [ C 16 ] 16 D", "2/4")[:2] == [(60, 0.0, 4.0), (62, 4.0, 1 / 3)]  # in a tuplet too
    assert played("(4 C 16 D", "2/4")[:2] == [(60, 0.0, 4.0), (62, 4.0, 0.375)]
    assert played("[ C 16 E 2 ] 2 A", "2/4") == [(60, 0.0, 4.0), (64, 0.0, 4.0), (69, 4.0, 0.5)]


# -- broken rhythm -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "token, first, second",
    [
        (">", 0.75, 0.25),
        ("<", 0.25, 0.75),
        ("2>", 1.5, 0.25),
        ("2<", 0.5, 0.75),
        ("4>", 3.0, 0.25),
        ("/2>", 0.375, 0.25),
        ("/2<", 0.125, 0.75),
    ],
)
def test_every_broken_rhythm_token(token, first, second):
    assert played(f"A {token} B c") == [(69, 0.0, first), (71, first, second), (72, first + second, 0.5)]


def test_broken_rhythm_on_chords_rests_across_bars_and_with_durations():
    assert played("[ C E ] > z A") == [(60, 0.0, 0.75), (64, 0.0, 0.75), (69, 1.0, 0.5)]
    assert played("A > | B") == [(69, 0.0, 0.75), (71, 0.75, 0.25)]
    assert played("A > B 2 c") == [(69, 0.0, 0.75), (71, 0.75, 0.5), (72, 1.25, 0.5)]
    # with nothing right before it, a broken rhythm changes nothing (a note once out never changes)
    assert played("A | > B c") == [(69, 0.0, 0.5), (71, 0.5, 0.5), (72, 1.0, 0.5)]


# -- tuplets -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "p, meter, q",
    [
        (2, "4/4", 3),
        (3, "4/4", 2),
        (4, "6/8", 3),
        (6, "2/4", 2),
        (5, "4/4", 2),
        (5, "6/8", 3),
        (7, "3/4", 2),
        (7, "9/8", 3),
        (9, "12/8", 3),
        (9, "3/2", 2),
    ],
)
def test_every_tuplet_size(p, meter, q):
    assert tuplet_ratio(p, meter) == pytest.approx(q / p)
    notes = " ".join(["c"] * p)
    got = starts(f"({p} {notes} A", meter)
    step = 0.5 * q / p
    assert got == pytest.approx([i * step for i in range(p)] + [q * 0.5])


def test_tuplet_counts_chords_and_rests_as_one_and_runs_across_bars():
    got = played("(3 A [ C E ] z B")  # pytest.approx takes no nested tuples (an error since pytest 9.2)
    assert [pitch for pitch, _, _ in got] == [69, 60, 64, 71]
    assert [x for _, start, length in got for x in (start, length)] == pytest.approx(
        [0.0, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 1.0, 0.5]
    )
    assert starts("(3 A B | c d") == pytest.approx([0, 1 / 3, 2 / 3, 1.0])
    # a second (3 while the first still runs is ignored (abc2midi: "nested tuples")
    assert starts("(3 A (3 B c d") == pytest.approx([0, 1 / 3, 2 / 3, 1.0])


# -- chords --------------------------------------------------------------------------------------
def test_chord_sounds_together_for_its_first_note():
    assert played("[ C E G ] A") == [(60, 0.0, 0.5), (64, 0.0, 0.5), (67, 0.0, 0.5), (69, 0.5, 0.5)]
    assert played("[ C E G ] 2 A") == [(60, 0, 1.0), (64, 0, 1.0), (67, 0, 1.0), (69, 1.0, 0.5)]


def test_a_chords_notes_last_as_long_as_its_first_note_times_the_duration_after_it():
    """abcjs and music21 hold every note of ``[C2E]`` as long as C (abc2midi takes the length after
    ``]`` alone): a hand strikes and lifts a chord together."""
    assert played("[ C 2 E ] A") == [(60, 0.0, 1.0), (64, 0.0, 1.0), (69, 1.0, 0.5)]
    assert played("[ C E 2 ] A") == [(60, 0.0, 0.5), (64, 0.0, 0.5), (69, 0.5, 0.5)]
    assert played("[ C 2 E ] 2 A") == [(60, 0.0, 2.0), (64, 0.0, 2.0), (69, 2.0, 0.5)]
    assert played("[ C E ] /2 A") == [(60, 0.0, 0.25), (64, 0.0, 0.25), (69, 0.25, 0.5)]


def test_malformed_chords():
    # a nested [ and a stray ] are ignored, as abc2midi does
    assert starts("A [ [ C E ] F ] G") == [0.0, 0.5, 0.5, 1.0, 1.5]
    # a bar line closes an open chord; an empty chord is nothing (and takes no tuplet place)
    assert played("[ C E | G ] A") == [(60, 0.0, 0.5), (64, 0.0, 0.5), (67, 0.5, 0.5), (69, 1.0, 0.5)]
    assert starts("(3 [ ] A B c d") == pytest.approx([0, 1 / 3, 2 / 3, 1.0])
    # a rest inside a chord is left out with its duration (ABC has no rest inside a chord)
    assert played("[ z 2 C ] D") == [(60, 0.0, 0.5), (62, 0.5, 0.5)]
    assert played("[ z ] 2 D") == [(62, 0.0, 0.5)]


def test_rests_take_time_and_make_no_note():
    assert played("z A z 2 B") == [(69, 0.5, 0.5), (71, 2.0, 0.5)]


# -- repeats and endings -------------------------------------------------------------------------
def test_repeat_with_start_sign():
    assert starts("A |: B c :| d") == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert pitches("A |: B c :| d") == [69, 71, 72, 74]  # as written
    assert [p for p, _, _ in played("A |: B c :| d")] == [69, 71, 72, 71, 72, 74]


def test_repeat_without_start_sign_goes_back_to_the_start_or_the_last_repeat():
    got = [p for p, _, _ in played("A B :| c d :| e")]
    assert got == [69, 71, 69, 71, 72, 74, 72, 74, 76]
    assert starts("A B :| c d :| e") == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]


def test_no_repeats_plays_as_written():
    assert played("A B :| c d :| e", repeats=False) == played("A B c d e")


def test_first_and_second_endings():
    got = played("|: A |1 B :| |2 c | d")
    assert [(p, s) for p, s, _ in got] == [(69, 0.0), (71, 0.5), (69, 1.0), (72, 1.5), (74, 2.0)]
    assert [p for p, _, _ in played("|: A |1 B :| |2 c | d", repeats=False)] == [69, 71, 72, 74]


def test_second_ending_lasts_as_many_bars_as_the_first_then_a_section_starts():
    # ending 1 has two bars, so ending 2 has two; the unopened section after it is then repeated
    body = "|: A |1 B | c :| |2 d | e | f :| g"
    got = [p for p, _, _ in played(body)]
    assert got == [69, 71, 72, 69, 74, 76, 77, 77, 79]
    # without |: after the endings (abc2midi gets this wrong, see test_notes_abc2midi.py)
    got = [p for p, _, _ in played("A |1 B :| |2 c | d :|")]
    assert got == [69, 71, 69, 72, 74, 74]


def test_endings_that_do_not_pair_up_play_as_written():
    assert [p for p, _, _ in played("A :| |2 B")] == [69, 69, 71]  # |2 without |1: a bar line
    assert [p for p, _, _ in played("|: A |1 B | c")] == [69, 71, 72]  # |1 never closed
    assert [p for p, _, _ in played("A B :| :| c")] == [69, 71, 69, 71, 72]  # nothing to repeat twice


def test_a_second_start_sign_restarts_the_section():
    assert [p for p, _, _ in played("|: A |: B :| c")] == [69, 71, 71, 72]


def test_replayed_notes_keep_their_written_bar_and_token():
    notes = score("|: G | A B :|").notes
    first, again = notes[:3], notes[3:]
    assert [(n.bar, n.token, n.bar_offset) for n in first] == [(n.bar, n.token, n.bar_offset) for n in again]
    assert [n.start for n in again] == [1.5, 2.0, 2.5]


# -- bars ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("meter", vocab.METERS)
def test_expected_bar_length_of_each_meter(meter):
    units = vocab.METER_EIGHTHS[meter]
    full = " ".join(["c"] * units)
    bars = score(f"{full} | {full} | c |", meter).bars
    assert [b.expected for b in bars] == [units / 2] * 3
    assert [(b.length, b.ok) for b in bars] == [(units / 2, True), (units / 2, True), (0.5, False)]


def test_bar_errors_short_and_long():
    assert bar_table("c 8 | c 7 | c 9 | c 8 |") == [(4, True, False), (3.5, False, False), (4.5, False, False), (4, True, False)]
    # a first bar that is too long is an error (abc2midi never checks an unrepeated first bar)
    assert bar_table("c 9 | c 8 |") == [(4.5, False, False), (4, True, False)]


def test_pickup_at_the_start_and_its_completion_on_the_repeat():
    # pickup G (half a beat) + the last bar's 3.5 beats = one bar when the section goes round
    assert bar_table("G | c 8 | c 7 :|") == [(0.5, True, True), (4, True, False), (3.5, True, False)]
    # the last bar is full, so the repeat plays an extra half beat: not a pickup, not ok
    assert bar_table("G | c 8 | c 8 :|") == [(0.5, False, False), (4, True, False), (4, True, False)]
    # without a repeat a short first bar is a pickup
    assert bar_table("G | c 8 |") == [(0.5, True, True), (4, True, False)]


def test_repeat_sign_in_mid_bar_does_not_end_the_bar():
    # c 6 :| c 2 is one bar; the next section's c 2 also completes its own last bar c 6
    table = bar_table("c 2 | c 8 | c 6 :| c 2 | c 8 | c 6 :|")
    assert table == [(1, True, True), (4, True, False), (4, True, False), (4, True, False), (3, True, False)]
    # the second section's last bar does not fit its head: the error shows on the head's bar
    table = bar_table("c 2 | c 8 | c 6 :| c 2 | c 8 | c 5 :|")
    assert table == [(1, True, True), (4, True, False), (4, False, False), (4, True, False), (2.5, True, False)]
    bars = score("c 2 | c 8 | c 6 :| c 2 | c 8 | c 5 :|").bars
    assert [b.end_token for b in bars] == [2, 5, 11, 14, -1]


def test_section_start_pickup_after_a_full_bar():
    table = bar_table("c 8 | |: G | c 8 | c 7 :|")
    assert table == [(4, True, False), (0.5, True, True), (4, True, False), (3.5, True, False)]


def test_first_ending_ends_its_bar_and_second_ending_bars_count():
    table = bar_table("|: G | c 8 |1 c 7 :| |2 c 8 |")
    assert table == [(0.5, True, True), (4, True, False), (3.5, True, False), (4, True, False)]
    table = bar_table("|: G | c 8 |1 c 7 :| |2 c 7 |")  # a closed short bar is an error
    assert table[-1] == (3.5, False, False)


def test_zero_length_bars_are_not_counted():
    assert len(score("| c 8 | | c 8 | :| |").bars) == 2


def test_notes_know_their_bar_and_offset():
    notes = score("G | A B 2 c |").notes
    assert [(n.bar, n.bar_offset, n.token) for n in notes] == [(0, 0, 0), (1, 0, 2), (1, 0.5, 3), (1, 1.5, 5)]


# -- streaming -----------------------------------------------------------------------------------
def pushes(tokens: str, meter: str = "4/4", mode: str = "maj") -> list[list[tuple[int, float, float]]]:
    stream = NoteStream(meter, mode)
    got = [[(n.pitch, n.start, n.duration) for n in stream.push(t)] for t in tokens.split()]
    return got + [[(n.pitch, n.start, n.duration) for n in stream.close()]]


def test_each_note_comes_out_as_soon_as_it_is_certain():
    got = pushes("A B 2 > c | [ C E ] /2 z d")
    assert got == [
        [],  # A: a duration may follow
        [(69, 0.0, 0.5)],  # B shows A is done
        [],  # 2: B may still change
        [(71, 0.5, 1.5)],  # > settles B
        [],  # c waits
        [(72, 2.0, 0.25)],  # the bar line settles c
        [],
        [],
        [],
        [],  # ]: a duration may follow the chord
        [],  # /2
        [(60, 2.25, 0.25), (64, 2.25, 0.25)],  # the rest shows the chord is done
        [],  # d waits ...
        [(74, 3.0, 0.5)],  # ... until the tune ends
    ]


def test_repeats_come_out_at_the_repeat_sign():
    got = pushes("|: A B :| c")
    assert got == [[], [], [(69, 0.0, 0.5)], [(71, 0.5, 0.5), (69, 1.0, 0.5), (71, 1.5, 0.5)], [], [(72, 2.0, 0.5)]]
    got = pushes("|: A |1 B :| |2 c")
    assert got[4] == [(71, 0.5, 0.5), (69, 1.0, 0.5)]  # the first ending is not played again


def test_stream_state_for_the_live_loop():
    stream = NoteStream("4/4", "maj")
    assert (stream.position, stream.bar_index, stream.pending, stream.in_chord) == (0, 0, False, False)
    stream.push("G")
    assert stream.pending and stream.position == 0
    stream.push("|")
    assert (stream.position, stream.bar_index, stream.bar_position, stream.pending) == (0.5, 1, 0, False)
    assert stream.bars == (Bar(0.5, 4.0, True, True, 1),)
    stream.push("[")
    assert stream.in_chord and stream.pending
    stream.push("(3")
    assert stream.tuplet_left == 0  # ignored inside a chord
    for token in ["c", "e", "]", "2"]:
        stream.push(token)
    assert not stream.in_chord and stream.pending
    assert [n.pitch for n in stream.push("</s>")] == [72, 76]  # </s> closes the tune
    assert stream.bars[-1] == Bar(1.0, 4.0, True, False, -1) and stream.played == 1.5
    with pytest.raises(ValueError):
        stream.push("A")


def test_unknown_tokens_and_bad_headers_are_refused():
    with pytest.raises(ValueError, match="unknown token"):
        NoteStream("4/4", "maj").push("H")
    with pytest.raises(ValueError, match="meter"):
        NoteStream("5/4", "maj")
    with pytest.raises(ValueError, match="mode"):
        NoteStream("4/4", "lyd")


@pytest.mark.parametrize("repeats", [True, False])
def test_streaming_gives_exactly_the_whole_tune_result(repeats):
    for tune in parse_tunes(SAMPLES.read_text()):
        stream = NoteStream(tune.meter, tune.mode, repeats)
        notes: list[Note] = []
        for token in tune.body:
            got = stream.push(token)
            assert all(n.start >= (notes[-1].start if notes else 0) for n in got)  # never out of order
            notes += got
        notes += stream.close()
        whole = tune_notes(tune, repeats)
        assert notes == whole.notes
        assert list(stream.bars) == whole.bars


def test_any_token_sequence_plays_in_order():
    """The live model may write anything: no token sequence may break the stream or its order."""
    rng = random.Random(7)
    body_tokens = [t for t in vocab.TOKENS if vocab.TOKEN_CLASS[vocab.INDEX[t]] not in NOT_BODY]
    for _ in range(300):
        body = rng.choices(body_tokens, k=rng.randint(0, 60))
        for repeats in (True, False):
            result = tune_notes(Tune(rng.choice(vocab.METERS), rng.choice(vocab.MODES), body), repeats)
            assert [n.start for n in result.notes] == sorted(n.start for n in result.notes)
            assert all(n.duration > 0 and n.bar <= len(result.bars) for n in result.notes)
            assert all(b.length > 0 for b in result.bars)


def test_repeats_only_add_notes():
    for tune in parse_tunes(SAMPLES.read_text()):
        written = tune_notes(tune, repeats=False)
        unfolded = tune_notes(tune)
        assert {(n.token, n.pitch) for n in unfolded.notes} == {(n.token, n.pitch) for n in written.notes}
        assert len(unfolded.notes) >= len(written.notes)
        assert unfolded.bars == written.bars


# -- command line --------------------------------------------------------------------------------
def run_notes(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "notes", *args], input=stdin, capture_output=True, text=True, cwd=ROOT
    )


def test_cli_reads_stdin_and_writes_json():
    result = run_notes("-", stdin="M:4/4\nK:Cmaj\nG | A B :|\n\nM:6/8\nK:Cmin\nA 6 |\n")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data) == 2
    assert data[0]["notes"] == [
        {"pitch": 67, "start": 0.0, "duration": 0.5},
        {"pitch": 69, "start": 0.5, "duration": 0.5},
        {"pitch": 71, "start": 1.0, "duration": 0.5},
        {"pitch": 67, "start": 1.5, "duration": 0.5},
        {"pitch": 69, "start": 2.0, "duration": 0.5},
        {"pitch": 71, "start": 2.5, "duration": 0.5},
    ]
    assert data[0]["bars"] == [
        {"length": 0.5, "expected": 4.0, "ok": False, "pickup": False},
        {"length": 1.0, "expected": 4.0, "ok": True, "pickup": False},
    ]
    assert data[1] == {
        "notes": [{"pitch": 68, "start": 0.0, "duration": 3.0}],
        "bars": [{"length": 3.0, "expected": 3.0, "ok": True, "pickup": False}],
    }
    written = json.loads(run_notes("--no-repeats", stdin="M:4/4\nK:Cmaj\nG | A B :|\n").stdout)
    assert [n["pitch"] for n in written[0]["notes"]] == [67, 69, 71]


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["/no/such/file.txt"], None, "cannot read"),
        (["-"], "hello world\n", "starts with a meter"),
        (["-"], "M:4/4\nK:Cmaj\nA B H\n", "unknown token 'H'"),
        (["-"], "\n\n", "no tunes found"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args, stdin, message):
    result = run_notes(*args, stdin=stdin)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_abc_export_tells_abc2midi_to_hold_accidentals_per_octave():
    # abc2midi resets the directive at every X:, so it must sit inside each tune's header
    abc = Tune("4/4", "maj", ["^F", "f", "|"]).to_abc(2)
    lines = abc.splitlines()
    assert lines[0] == "X:2" and "%%propagate-accidentals octave" in lines[1 : lines.index("K:Cmaj")]


def test_a_chord_holds_four_notes_and_each_pitch_once():
    # a fifth pitch closes the chord and follows it; what the network writes after is single notes
    assert played("[ C E G c e g ] A") == [(60, 0.0, 0.5), (64, 0.0, 0.5), (67, 0.0, 0.5), (72, 0.0, 0.5),
                                             (76, 0.5, 0.5), (79, 1.0, 0.5), (69, 1.5, 0.5)]
    # the same pitch again (any spelling) sounds once, and its inner duration goes with it
    assert played("[ ^C _D 4 E ^C 2 ] A") == [(61, 0.0, 0.5), (64, 0.0, 0.5), (69, 0.5, 0.5)]
    # a chord the network never closes: four notes, then a run, whatever its length
    notes = played("[ " + " ".join(["C", "D", "E", "F", "G", "A", "B"] * 100) + " |")
    assert max(sum(1 for _, start, _ in notes if start == t) for _, t, _ in notes) == 4


def _notes_before_the_horizon(body: list[str], meter: str) -> list[tuple[int, float, float]]:
    """Feed ``body`` token by token: (token index, a note's start, the horizon already reported)
    for every note that starts before a horizon the stream had reported (as-played beats)."""
    stream, known, early = NoteStream(meter, "maj"), 0.0, []
    for i, token in enumerate(body):
        for note in stream.push(token):
            if note.start < known - 1e-9:
                early.append((i, note.start, known))
        known = max(known, stream.horizon)
    return early


@pytest.mark.parametrize("body", ["c /2 c /2 z /2 ^D A,", "f z G z /4 _B f", "z /8 < A B", "z 2 /2< A B",
                                  "(3 z z /2 A B", "z < c d"])
def test_no_note_starts_before_what_the_stream_said_was_known(body):
    """The live loop composes the next note when the horizon is due: a rest counted as long as
    written so far, then shortened (``z /2``), made the note after it 100-190 ms late under a storm
    of controls. Every body here shortens an open rest."""
    assert _notes_before_the_horizon(body.split(), "4/4") == []


def test_no_note_of_folk_rnn_s_tunes_or_of_random_tokens_starts_before_the_horizon():
    rng = random.Random(5)
    body_tokens = [t for i, t in enumerate(vocab.TOKENS) if vocab.TOKEN_CLASS[i] not in NOT_BODY]
    tunes = [(t.meter, t.body) for t in parse_tunes(SAMPLES.read_text())]
    tunes += [("6/8", [rng.choice(body_tokens) for _ in range(300)]) for _ in range(40)]
    for meter, body in tunes:
        assert _notes_before_the_horizon(body, meter) == [], " ".join(body)


def test_the_horizon_check_can_fail():
    """Counting an open rest as long as written so far is the regression it must catch."""
    import instrument.music.notes as notes

    kept = notes._REST_LEAST_UNTIMED
    notes._REST_LEAST_UNTIMED = 1
    try:
        assert _notes_before_the_horizon("f z G z /4 _B f".split(), "4/4")
    finally:
        notes._REST_LEAST_UNTIMED = kept
