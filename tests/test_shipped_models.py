"""The shipped models: what ``info`` says of them, and what the default one writes, judged by
independent readers: music21's ABC parser reads the form (repeat signs and endings), abc2midi the
bars (it warns about every bar whose length differs from the meter).

``session`` (every command's default) must write what folk-rnn's data is: two-part dance tunes
with repeats, at T = 1 with meters and modes drawn by the model (docs/design.md §10).
"""

from __future__ import annotations

import json
import statistics

import pytest

from instrument.model import catalog
from instrument.music.tunes import BAR_TOKENS
from tests.abc2midi_helpers import ABC2MIDI, abc2midi
from tests.helpers import run_cli

TUNES = 200


@pytest.mark.parametrize("name", catalog.SHIPPED)
def test_each_shipped_model_is_a_v2_lstm_in_at_most_12_mb(name):
    result = run_cli("info", "--json", "--model", name)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["layers"], info["hidden_size"], info["vocab_size"]) == (3, 512, 137)
    assert info["file_size_bytes"] == catalog.shipped(name).stat().st_size <= 12 * 1024 * 1024
    assert info["metadata"]["trained"] is True and info["metadata"]["name"] == name
    assert catalog.shipped(name).with_suffix(".md").is_file()  # its model card


def test_the_default_model_is_session():
    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["path"] == str(catalog.shipped("session"))


@pytest.fixture(scope="module")
def tunes() -> list[dict]:
    """200 tunes of the default model at T = 1, meters and modes drawn by the model."""
    result = run_cli("generate", "-n", str(TUNES), "--seed", "7", "--temperature", "1", "--format", "json", timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def bodies(tunes: list[dict]) -> list[list[str]]:
    return [[t for t in tune["tokens"] if t not in ("<s>", "</s>") and not t.startswith(("M:", "K:"))] for tune in tunes]


def test_its_tunes_end_and_are_as_long_as_session_tunes(tunes):
    ended = sum(t["ended"] for t in tunes)
    assert ended >= 0.97 * TUNES, f"{ended} of {TUNES} tunes ended with </s>"
    assert statistics.median(len(b) for b in bodies(tunes)) >= 120


def test_music21_reads_two_repeated_parts_in_most_of_its_tunes(tunes, tmp_path):
    from music21 import bar, converter

    repeated = []
    for k, tune in enumerate(tunes):
        path = tmp_path / f"t{k}.abc"
        path.write_text(tune["abc"])
        score = converter.parse(str(path), format="abc")
        ends = [b for b in score.recurse().getElementsByClass(bar.Repeat) if b.direction == "end"]
        repeated.append(len(ends))
    two = sum(n >= 2 for n in repeated) / TUNES
    any_repeat = sum(n >= 1 for n in repeated) / TUNES
    print(f"music21: {any_repeat:.0%} with a repeat, {two:.0%} with two repeated parts")
    assert two >= 0.60 and any_repeat >= 0.80


def test_it_writes_dorian_and_mixolydian_about_as_often_as_the_tunes_it_learned(tunes):
    from instrument.model import checkpoint

    _, meta = checkpoint.load(catalog.shipped("session"))
    learned = meta["trained_on"]["modes"]
    share = (learned.get("dor", 0) + learned.get("mix", 0)) / sum(learned.values())
    written = sum(t["mode"] in ("dor", "mix") for t in tunes) / TUNES
    assert abs(written - share) <= 0.05, f"dorian + mixolydian: {written:.1%} written, {share:.1%} learned"


@pytest.mark.skipif(ABC2MIDI is None, reason="abc2midi (Debian package abcmidi) is not installed")
def test_abc2midi_counts_their_bars_right(tunes, tmp_path):
    bars = warned = 0
    for k, (tune, body) in enumerate(zip(tunes, bodies(tunes))):
        judged = abc2midi(tune["meter"], tune["mode"], body, tmp_path / str(k))
        assert judged.notes, f"abc2midi played no notes of tune {k}: {judged.messages[-300:]}"
        bars += sum(t in BAR_TOKENS for t in body)
        warned += len(judged.warned)
    assert bars > 10 * TUNES, f"only {bars} bars in {TUNES} tunes"
    print(f"abc2midi warned about {warned} of {bars} bars")
    assert warned / bars <= 0.05, f"abc2midi warned about {warned} of {bars} bars"


def test_the_songs_model_plays_too():
    result = run_cli("generate", "-n", "3", "--seed", "1", "--model", "songs", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 3
