"""The shipped default model: what `info` says of it, and tunes it writes judged by abc2midi.

The model in ``instrument/model/shipped/default.pt`` is the one every command plays when no --model is
given. Its tunes at T = 1 must end with ``</s>`` and keep their bars: abc2midi, an independent ABC
reader, reads each tune and warns about every bar whose length differs from the meter.
"""

from __future__ import annotations

import json

import pytest

from instrument.model.checkpoint import DEFAULT_MODEL
from instrument.music.tunes import BAR_TOKENS
from tests.helpers import run_cli
from tests.abc2midi_helpers import ABC2MIDI, abc2midi

TUNES = 24


def test_the_default_model_is_a_v2_lstm_in_at_most_12_mb():
    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["layers"], info["hidden_size"], info["vocab_size"]) == (3, 512, 137)
    assert info["file_size_bytes"] == DEFAULT_MODEL.stat().st_size <= 12 * 1024 * 1024
    assert info["metadata"]["trained"] is True


@pytest.fixture(scope="module")
def tunes() -> list[dict]:
    result = run_cli("generate", "-n", str(TUNES), "--seed", "1", "--temperature", "1", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_its_tunes_end(tunes):
    ended = sum(t["ended"] for t in tunes)
    assert ended >= TUNES - 1, f"{ended} of {TUNES} tunes ended with </s>"


@pytest.mark.skipif(ABC2MIDI is None, reason="abc2midi (Debian package abcmidi) is not installed")
def test_abc2midi_counts_their_bars_right(tunes, tmp_path):
    bars = warned = 0
    for k, tune in enumerate(tunes):
        body = [t for t in tune["tokens"] if t not in ("<s>", "</s>") and not t.startswith(("M:", "K:"))]
        judged = abc2midi(tune["meter"], tune["mode"], body, tmp_path / str(k))
        assert judged.notes, f"abc2midi played no notes of tune {k}: {judged.messages[-300:]}"
        bars += sum(t in BAR_TOKENS for t in body)
        warned += len(judged.warned)
    assert bars > 10 * TUNES, f"only {bars} bars in {TUNES} tunes"
    print(f"abc2midi warned about {warned} of {bars} bars")
    assert warned / bars <= 0.05, f"abc2midi warned about {warned} of {bars} bars"
