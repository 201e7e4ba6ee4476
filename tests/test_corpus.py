"""The corpus conversion on small hand-written ABC tunes, the build and ``run.py corpus``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from instrument.training import corpus
from instrument.music.abc_reader import Key, TuneSkipped, parse_key, split_tunes
from instrument.training.convert import Converted, convert
from instrument.music.notes import tune_notes
from instrument.music.tunes import parse_tunes

ROOT = Path(__file__).resolve().parent.parent


def abc(body: str, key: str = "C", meter: str | None = "4/4", unit: str | None = "1/8", extra: str = "") -> str:
    """A one-tune ABC file around ``body``."""
    lines = ["X:1", "T:test"]
    lines += [f"M:{meter}"] if meter is not None else []
    lines += [f"L:{unit}"] if unit is not None else []
    lines += [extra] if extra else []
    lines += [f"K:{key}", body]
    return "\n".join(lines) + "\n"


def converted(text: str) -> Converted:
    """The conversion with every K: taken at its word: these tests are about the conversion's
    mechanics; finding modes from the music has tests of its own (test_modes.py)."""
    (tune,) = split_tunes(text, "test.abc")
    return convert(tune, modes="written")


def body(text: str) -> str:
    return " ".join(converted(text).tune.body)


def skipped(text: str) -> TuneSkipped:
    with pytest.raises(TuneSkipped) as caught:
        converted(text)
    return caught.value


def pitches(text: str) -> list[int]:
    """The pitches our note rules hear in the converted tune (repeats not played out)."""
    return [note.pitch for note in tune_notes(converted(text).tune, repeats=False).notes]


# ----------------------------------------------------------------------------- keys and modes


@pytest.mark.parametrize("value, key", [
    ("G", Key("G", 0, "maj")), ("Em", Key("E", 0, "min")), ("Gm", Key("G", 0, "min")),
    ("Amin", Key("A", 0, "min")), ("Dmix", Key("D", 0, "mix")), ("Ador", Key("A", 0, "dor")),
    ("ADor", Key("A", 0, "dor")), ("AMix", Key("A", 0, "mix")), ("D dorian", Key("D", 0, "dor")),
    ("E Minor", Key("E", 0, "min")), ("A Mixolydian", Key("A", 0, "mix")), ("F#m", Key("F", 1, "min")),
    ("Bb", Key("B", -1, "maj")), ("Ebmaj", Key("E", -1, "maj")), ("G % a comment", Key("G", 0, "maj")),
    ("D clef=treble", Key("D", 0, "maj")), ("Aaeolian", Key("A", 0, "min")), ("Cionian", Key("C", 0, "maj")),
])
def test_key_spellings(value, key):
    assert parse_key(value) == key


@pytest.mark.parametrize("value, reason", [
    ("none", "key not usable"), ("HP", "key not usable"), ("Hp", "key not usable"), ("H", "key not usable"),
    ("D exp ^f ^c", "key with explicit accidentals"), ("G ^c", "key with explicit accidentals"),
    ("Dmixm", "mode not usable"), ("Bn", "mode not usable"),
])
def test_unusable_keys(value, reason):
    with pytest.raises(TuneSkipped) as caught:
        parse_key(value)
    assert caught.value.reason == reason


def test_key_signatures():
    assert Key("D", 0, "maj").signature() == {"F": 1, "C": 1}
    assert Key("D", 0, "dor").signature() == {}
    assert Key("G", 0, "min").signature() == {"B": -1, "E": -1}
    assert Key("A", 0, "mix").signature() == {"F": 1, "C": 1}


# ----------------------------------------------------------------------------- transposition and spelling


def test_d_dorian_c_sharp_becomes_b_natural_in_c_dorian():
    result = converted(abc("DEFG A2^c2|d8|]", key="Ddor"))
    assert (result.tune.mode, result.shift) == ("dor", -2)
    assert result.tune.body == "C D E F G 2 =B 2 | c 8 |".split()
    assert pitches(abc("DEFG A2^c2|d8|]", key="Ddor")) == [60, 62, 63, 65, 67, 71, 72]


def test_g_mixolydian_f_sharp_becomes_b_natural():
    assert body(abc("GAB^fg", key="Gmix")) == "c d e =b c'"


def test_e_minor_to_c_minor_with_raised_seventh():
    text = abc("EFGA Bcd^d|e8|]", key="Em")
    assert body(text) == "C D E F G A B =B | c 8 |"
    assert pitches(text) == [60, 62, 63, 65, 67, 68, 70, 71, 72]


def test_f_major_b_natural_becomes_f_sharp():
    assert body(abc("FGA=B c4", key="F")) == "C D E ^F G 4 |"  # a line ending on a full bar gets its bar line


def test_accidentals_hold_to_the_bar_line_in_their_octave():
    # In D major an F natural, then F (still natural in this bar), f an octave up (sharp), then the
    # next bar's F (sharp again): the target must write what makes our rules hear the same pitches.
    text = abc("=F F f F|F4 z4|]", key="D")
    assert body(text) == "_E E e E | E 4 z 4 |"
    assert pitches(text) == [63, 63, 76, 63, 64]


def test_target_accidental_cancels_an_earlier_one_in_the_bar():
    text = abc("=c d ^c d|]", key="D")
    assert body(text) == "_B c =B c |"
    assert pitches(text) == [70, 72, 71, 72]


def test_flat_key_goes_up_when_that_is_the_smaller_move():
    result = converted(abc("B,DFB", key="Bb"))
    assert result.shift == 2
    assert result.tune.body == "C E G c".split()


def test_octave_direction_keeps_the_tune_in_range():
    assert converted(abc("ABc", key="A")).shift == 3
    high = converted(abc("A b'", key="A"))  # up 3 would leave the vocabulary's b'
    assert high.shift == -9 and high.tune.body == ["C", "d'"]


def test_no_transposition_fits_the_range():
    assert skipped(abc("C,,c''")).reason == "pitch range"


def test_spelling_needing_a_missing_token_is_skipped():
    error = skipped(abc("^^C D"))
    assert (error.reason, error.detail) == ("token outside the vocabulary", "^^C")


# ----------------------------------------------------------------------------- lengths


def test_unit_length_one_sixteenth():
    assert body(abc("C2D2 E4 FGAB c8", unit="1/16")) == "C D E 2 F /2 G /2 A /2 B /2 c 4"


def test_unit_length_one_quarter():
    assert body(abc("C D/2 E3/2 F2", unit="1/4")) == "C 2 D E 3 F 4"


def test_default_unit_length_is_one_sixteenth_below_three_quarters():
    assert body(abc("C2 DEF", meter="2/4", unit=None)) == "C D /2 E /2 F /2"
    assert body(abc("C2 DEF", meter="3/4", unit=None)) == "C 2 D E F"


def test_unit_length_change_in_the_body():
    assert body(abc("C2 D|\nL:1/16\nE2 F", unit="1/8")) == "C 2 D | E F /2"


def test_length_with_no_token_is_skipped():
    error = skipped(abc("C11 D"))
    assert (error.reason, error.detail) == ("length with no token", "11 eighths")


def test_ties_merge_into_one_note():
    text = abc("C2-C2 D-D/2 E3/2|]")
    assert body(text) == "C 4 D 3/2 E 3/2 |"
    assert [n.duration for n in tune_notes(converted(text).tune).notes] == [2.0, 0.75, 0.75]


def test_tie_between_different_pitches_is_a_slur_and_goes():
    assert body(abc("G3-A B2-c2")) == "G 3 A B 2 c 2 |"


def test_tie_whose_length_has_no_token_is_skipped():
    assert skipped(abc("C4-C3/2 D/2 E2|]")).reason == "length with no token"


def test_tie_across_a_bar_line_is_skipped():
    assert skipped(abc("C4 D2 E2-|E8|]")).reason == "tie across a bar line"
    # the tied note keeps its accidental across the bar line, so this is the same pitch too
    assert skipped(abc("C4 D2 =F2-|F8|]", key="G")).reason == "tie across a bar line"


def test_tie_inside_a_tuplet_or_broken_rhythm_is_skipped():
    assert skipped(abc("(3C-CD E2")).reason == "tie inside a tuplet or broken rhythm"
    assert skipped(abc("G>-G A>G E4")).reason == "tie inside a tuplet or broken rhythm"
    assert body(abc("B>-A B>d E4")) == "B > A B > d E 4 |"  # a tie between different pitches goes


# ----------------------------------------------------------------------------- what is dropped, what is kept


def test_ornaments_symbols_slurs_and_lyrics_are_dropped():
    text = abc('{g}A ~B !trill!c "Am"d (ef) "^text"g .a Hb Tc\'|\nw: la la la\nW: words\n%comment\nz8|]')
    assert body(text) == "A B c d e f g a b c' | z 8 |"


def test_chords_tuplets_broken_rhythms_rests_and_repeats_are_kept():
    text = abc("[CEG]2 [C2E2] [C2E] [c]2|(3CDE (3:2:3FGA C>D E<F|G2>A2 c/>d/ z2 x2|]")
    assert body(text) == ("[ C E G ] 2 [ C E ] 2 [ C 2 E ] c 2 | (3 C D E (3 F G A C > D E < F "
                          "| G 2> A 2 c /2> d /2 z 2 z 2 |")


@pytest.mark.parametrize("written, tokens", [
    ("C D || E F |] G A [| B c", "C D | E F | G A | B c"),
    ("|: C D :: E F :|", "|: C D :| |: E F :|"),
    ("|: C D :|: E F :|", "|: C D :| |: E F :|"),
    ("|: C D [1 E F :| [2 G A |]", "|: C D |1 E F :| |2 G A |"),
    ("|: C D |1 E F :|2 G A |]", "|: C D |1 E F :| |2 G A |"),
    ("|C D | E F||:G A :|", "C D | E F |: G A :|"),
    ("|: C D :| E F || G A :|", "|: C D :| E F |: G A :|"),
    ("C D || E F :|", "C D | E F :|"),
])
def test_bar_lines_are_normalised(written, tokens):
    assert body(abc(written)) == tokens


def test_a_line_that_ends_on_a_full_bar_gets_its_bar_line():
    # Essen-style phrases: a line may end at a bar's end without "|", or run on into the next line.
    text = abc("D4D4D4 | D4D3AG6_BA | G4z4z4\n_B2c2 | d4_e4d4 | A8d8\n(3c2B2A2 G4 A2>G2 F4", key="G", unit="1/16")
    assert body(text) == "G 2 G 2 G 2 | G 2 G 3/2 d /2 c 3 _e /2 d /2 | c 2 z 2 z 2 _e f | g 2 _a 2 g 2 | " \
        "d 4 g 4 | (3 f e d c 2 d > c B 2 |"
    assert body(abc("C4 D2\\\nE2|F8|]")) == "C 4 D 2 E 2 | F 8 |"  # a continued line is one line


def test_meter_aliases():
    assert converted(abc("C8", meter="C")).tune.meter == "4/4"
    assert converted(abc("C8", meter="C|")).tune.meter == "4/4"
    assert converted(abc("C8", meter="2/2")).tune.meter == "4/4"
    assert converted(abc("C6", meter="6/8")).tune.meter == "6/8"


# ----------------------------------------------------------------------------- skip reasons


@pytest.mark.parametrize("text, reason", [
    (abc("C3", meter="3/8"), "meter not in the vocabulary"),
    (abc("C8", meter="none"), "meter not in the vocabulary"),
    (abc("C8", meter=None), "meter not in the vocabulary"),
    (abc("GABc", key="Glyd"), "mode not in the vocabulary"),
    (abc("GABc", key="none"), "key not usable"),
    (abc("GABc", key="HP"), "key not usable"),
    (abc("DEFG", key="D exp ^f ^c"), "key with explicit accidentals"),
    ("X:1\nT:no key\nM:4/4\nL:1/8\n", "key not usable"),
    (abc("C4 D4|\nV:2\nE4 F4|", extra="V:1"), "several lines of music at once (V: or &)"),
    (abc("C4 D4 & E4 F4|"), "several lines of music at once (V: or &)"),
    (abc("C4 D4|[K:G] E4 F4|"), "key change in the body"),
    (abc("C4 D4|\nK:G\nE4 F4|"), "key change in the body"),
    (abc("C4 D4|[M:3/4] E4 F2|"), "meter change in the body"),
    (abc("C>>D E2 F4|"), "broken rhythm not in the vocabulary"),
    (abc("C2>D E4|"), "broken rhythm between unequal lengths"),
    (abc("C>D/ E4|"), "broken rhythm between unequal lengths"),
    (abc("C>D>E F4|"), "chained broken rhythm"),
    (abc("C>|D E4|"), "broken rhythm not between two notes"),
    (abc("(3:3:3CDE F6|"), "tuplet not in the vocabulary"),
    (abc("(8CDEFGABc F6|"), "token outside the vocabulary"),
    (abc("|: C8 |1 D8 :| |2 E8 :| |3 F8|]"), "ending not in the vocabulary"),
    (abc("z8|z8|]"), "no notes"),
    (abc("C4 # D4|"), "unreadable ABC"),
    (abc("C4 D4 Z4|"), "multi-bar rest"),
    (abc("[C2E2]-[C2E2] D4|"), "tied chord"),
])
def test_each_skip_reason(text, reason):
    assert skipped(text).reason == reason


def test_a_key_restated_in_the_body_is_no_change():
    assert body(abc("C4 D4|\nK:C\nE4 F4|")) == "C 4 D 4 | E 4 F 4 |"


# ----------------------------------------------------------------------------- real-file shapes


FILE = """% a collection header comment

X: 1
T: First
M: C|
L: 1/8
R: reel
K: G
%%MIDI program 1
GABc d2 B2|\\
c2 A2 G4:|
T: second part
P:B
|:g2 d2 B2 G2|A8:|

X: 2
T: Second
M:6/8
K:Amin
ABc ABc|
w: some words
e3 e3|]

free text after the blank line is not part of the tune
"""


def test_a_file_of_several_tunes():
    tunes = split_tunes(FILE, "file.abc")
    assert [t.number for t in tunes] == ["1", "2"]
    first, second = (convert(t).tune for t in tunes)
    assert (first.meter, first.mode) == ("4/4", "maj")
    assert first.body == "c d e f g 2 e 2 | f 2 d 2 c 4 :| |: c' 2 g 2 e 2 c 2 | d 8 :|".split()
    assert (second.meter, second.mode) == ("6/8", "min")
    assert second.body == "c d e c d e | g 3 g 3 |".split()


# ----------------------------------------------------------------------------- the build


def _tune(number: int, body: str, title: str = "t") -> str:
    return f"X:{number}\nT:{title}\nM:4/4\nL:1/8\nK:G\n{body}\n\n"


def test_duplicates_are_dropped_and_counted():
    text = _tune(1, "GABc d4|", "one") + _tune(2, "GABc d4|", "two") + _tune(3, "GABc d2 B2|") + _tune(4, "C8", "x")
    text = text.replace("X:4\nT:x\nM:4/4", "X:4\nT:x\nM:5/4")
    built = corpus.build({"mine": split_tunes(text, "mine/a.abc")})
    counts = built.counts["mine"]
    assert (counts.read, counts.kept, counts.duplicates) == (4, 2, 1)
    assert counts.skipped == {"meter not in the vocabulary": 1}
    assert [k.source for k in built.kept] == ["mine/a.abc#1", "mine/a.abc#3"]


def test_the_validation_split_is_five_percent_and_fixed_by_the_seed():
    first = corpus.split_indices(1000, seed=7)
    assert first == corpus.split_indices(1000, seed=7)
    assert len(first) == 50 and len(set(first)) == 50
    assert first != corpus.split_indices(1000, seed=8)


def test_written_files_read_back_and_report_adds_up(tmp_path):
    notes = "GABcdef"
    text = "".join(_tune(i, f"{notes[i % 7]}{notes[i // 7 % 7]}Bc G4|") for i in range(1, 41))
    text += _tune(41, "ABBc G4|")  # the same as tune 1
    built = corpus.build({"mine": split_tunes(text, "mine/a.abc")}, seed=3)
    summary = corpus.write(built, tmp_path)
    train = parse_tunes((tmp_path / "train.txt").read_text())
    valid = parse_tunes((tmp_path / "valid.txt").read_text())
    assert [t.to_text() for t in train + valid] == [t.to_text() for t in built.train + built.valid]
    assert len(valid) == round(0.05 * len(built.kept)) == 2
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == json.loads(json.dumps(summary))
    mine = report["collections"]["mine"]
    assert mine["read"] == mine["kept"] + mine["duplicates"] + sum(mine["skipped"].values()) == 41
    assert report["split"] == {"seed": 3, "valid_fraction": 0.05, "train": len(train), "valid": 2}
    # tokens as the model sees a tune: <s>, meter, mode, body, </s>
    assert report["tokens"]["train"] == sum(len(t.body) + 4 for t in train)
    assert report["meters"] == {"4/4": 40} and report["modes"] == {"maj": 40}
    assert report["meter_modes"] == {"4/4 maj": 40} and report["keys"] == {"Gmaj": 40}


def test_every_tune_travels_with_its_collection_and_the_report_shows_the_modes_found(tmp_path):
    ending = {"G": "G4", "A": "A4", "D": "d4", "E": "e4"}  # on a G signature: major, dorian, mixolydian, minor
    text = ""
    for i, (tonic, last) in enumerate(ending.items()):
        text += "".join(_tune(10 * i + j, f"{'GABcdef'[j % 7]}{'GABcdef'[j // 7]}Bc {last}|") for j in range(5))
    stated = "X:99\nT:s\nM:4/4\nL:1/8\nK:Ador\n|: ABcd edBA | GABd edBA :|\n\n"
    built = corpus.build({"one": split_tunes(text, "one/a.abc"), "two": split_tunes(stated, "two/b.abc")}, seed=1)
    report = corpus.write(built, tmp_path)
    assert report["modes_as_written"] == {"maj": 20, "dor": 1}
    assert report["modes"] == {"dor": 6, "maj": 5, "min": 5, "mix": 5}
    assert report["mode_agreement"] == {"agree": 1, "share": 1.0}
    assert report["collection_modes"]["two"] == {"dor": 1}
    assert report["collection_forms"]["two"] == {"tunes": 1, "repeat": 1, "two_repeated_parts": 0, "endings": 0}
    for split in ("train", "valid"):
        tunes = parse_tunes((tmp_path / f"{split}.txt").read_text())
        rows = corpus.read_meta(corpus.meta_path(tmp_path / f"{split}.txt"))
        assert len(rows) == len(tunes)
        for tune, row in zip(tunes, rows):
            assert row["collection"] == ("two" if row["source"].startswith("two/") else "one")
            assert tune.mode == row["key"][-3:]  # the key it plays in, tonic moved to C
            assert row["written_key"] in ("Gmaj", "Ador") and row["repeated_parts"] in ("0", "1")


# ----------------------------------------------------------------------------- the command


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "corpus", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_command_builds_one_collection(tmp_path):
    out = tmp_path / "corpus"
    done = _run("--collections", "miscFolk", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "miscFolk" in done.stdout and "skipped by reason" in done.stdout
    report = json.loads((out / "report.json").read_text())
    misc = report["collections"]["miscFolk"]
    assert misc["read"] == 185
    assert misc["read"] == misc["kept"] + misc["duplicates"] + sum(misc["skipped"].values())
    assert misc["kept"] > 150
    train = parse_tunes((out / "train.txt").read_text())
    valid = parse_tunes((out / "valid.txt").read_text())
    assert len(train) + len(valid) == misc["kept"] == report["kept"]
    assert len(valid) == round(0.05 * misc["kept"])
    assert sum(report["meters"].values()) == sum(report["modes"].values()) == misc["kept"]
    again = tmp_path / "again"
    assert _run("--collections", "miscFolk", "--out", str(again)).returncode == 0
    assert (again / "valid.txt").read_text() == (out / "valid.txt").read_text()


def test_command_can_take_every_key_as_written(tmp_path):
    inferred, written = tmp_path / "inferred", tmp_path / "written"
    assert _run("--collections", "miscFolk", "--out", str(inferred)).returncode == 0
    done = _run("--collections", "miscFolk", "--modes", "written", "--out", str(written))
    assert done.returncode == 0, done.stderr
    a, b = (json.loads((d / "report.json").read_text()) for d in (inferred, written))
    assert b["modes"] == b["modes_as_written"] == a["modes_as_written"]
    assert a["modes"]["dor"] + a["modes"]["mix"] > b["modes"]["dor"] + b["modes"]["mix"]
    assert set(b["mode_rules"]) <= {"written"}
    assert "modes from the music" in done.stdout


def test_command_rejects_an_unknown_collection(tmp_path):
    done = _run("--collections", "miscFolk,nosuch", "--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "nosuch" in done.stderr and "oneills1850" in done.stderr


def test_command_rejects_an_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = _run("--collections", "miscFolk", "--out", str(blocker / "sub"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--out" in done.stderr
