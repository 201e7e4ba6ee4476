"""Offline rendering: the same composer and phrasing as live play, to a WAV file."""

import wave

import numpy as np
import pytest

from instrument.live.engine import Limits
from instrument.music.phrasing import seconds_per_quarter
from instrument.live.params import Parameters
from instrument.live.render import perform, render_take
from tests.helpers import run_cli


def test_take_has_the_bars_asked_for_and_sounds(small_model):
    params = Parameters()
    params.set("tempo", 150.0, smoothing_ms=0)
    params.set("meter.next", "2/4")
    take = perform(small_model, params, Limits(bars=3), seed=2)
    assert take.bars == 3
    audio, by = render_take(take, 24000, synth="numpy")
    assert by.startswith("numpy synth")
    assert len(audio) >= int(take.seconds * 24000)
    assert float(np.sqrt(np.mean(audio**2))) > 1e-3  # audible
    last_off = max(n.off for n in take.notes)
    assert len(audio) / 24000 <= max(take.seconds, last_off) + 0.5  # no more than the release tail beyond


def test_same_seed_same_take(small_model):
    takes = []
    for _ in range(2):
        params = Parameters()
        takes.append(perform(small_model, params, Limits(bars=2), seed=7))
    assert [(n.on, n.pitch, n.velocity) for n in takes[0].notes] == [(n.on, n.pitch, n.velocity) for n in takes[1].notes]


def test_render_command_writes_a_wav_of_the_right_length(small_checkpoint, tmp_path):
    out = tmp_path / "take.wav"
    result = run_cli("render", "--model", str(small_checkpoint), "--seconds", "4", "--tempo", "120", "--out", str(out), "--seed", "1",
                     "--samplerate", "22050")
    assert result.returncode == 0, result.stderr
    with wave.open(str(out)) as w:
        seconds = w.getnframes() / w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert 3.0 <= seconds <= 4.0 + 4 * seconds_per_quarter(120, "3/2") * 4 + 0.5
    assert np.abs(data).max() > 1000


@pytest.mark.parametrize("args, words", [
    (("--bars", "0"), "needs an end"),
    (("--bars", "2", "--tempo", "9999"), "tempo=9999.0 is outside 20.0..320.0 BPM"),
    (("--bars", "2", "--set", "bias.scale=lydian"), "bias.scale takes one of"),
    (("--bars", "2", "--set", "nonsense=1"), "unknown parameter"),
    (("--seconds", "nan"), "finite number of seconds"),  # nan passed the < 0 check: no end at all
    (("--seconds", "inf"), "finite number of seconds"),
    (("--bars", "2", "--seed", "-1"), "a seed is a whole number"),
])
def test_render_bad_input(tmp_path, args, words):
    result = run_cli("render", "--out", str(tmp_path / "x.wav"), *args)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_repeats_skip_plays_each_section_once_and_play_plays_them_again(small_model):
    from instrument.music.notes import tune_notes

    def tunes_with_repeats(mode: str):
        params = Parameters()
        params.set("repeats", mode)
        params.set("meter.next", "4/4")
        take = perform(small_model, params, Limits(tunes=3), seed=4)
        by_tune = {}
        for n in take.notes:
            by_tune.setdefault(n.tune, []).append(n)
        return [(tune, by_tune.get(number, [])) for number, tune in take.tunes if ":|" in tune.body and tune.ended]

    checked = 0
    for mode in ("skip", "play"):
        for tune, played in tunes_with_repeats(mode):
            once = [n.pitch for n in tune_notes(tune, repeats=False).notes]
            twice = [n.pitch for n in tune_notes(tune, repeats=True).notes]
            if once == twice:
                continue  # a ':|' that repeats nothing
            assert [n.pitch for n in played] == (once if mode == "skip" else twice), mode
            checked += 1
    assert checked >= 2, "no tune with a repeat was written: choose another seed"


@pytest.mark.parametrize("synth", ["numpy", "auto"])
def test_render_writes_the_take_at_the_stated_peak(small_checkpoint, tmp_path, synth):
    """``render`` normalises the take to RENDER_PEAK_DBFS (it used to peak at -17 to -21 dBFS with
    the fiddle): read back from the WAV it wrote, with FluidSynth where installed (auto)."""
    from instrument.outputs.sound import RENDER_PEAK_DBFS

    out = tmp_path / "take.wav"
    result = run_cli("render", "--model", str(small_checkpoint), "--bars", "8", "--tempo", "120", "--seed", "3",
                     "--timbre", "fiddle", "--synth", synth, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"peak normalised to {RENDER_PEAK_DBFS:g} dBFS" in result.stderr
    with wave.open(str(out)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32767.0
    peak_db = 20 * np.log10(np.abs(pcm).max())
    rms_db = 20 * np.log10(np.sqrt(np.mean(pcm ** 2)))
    assert abs(peak_db - RENDER_PEAK_DBFS) < 0.05, peak_db
    assert rms_db > -30.0, rms_db  # a take that sounds, at a level a listener need not turn up
