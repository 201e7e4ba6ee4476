"""``model.next``: another model prepared in the background takes over at a tune boundary."""

from __future__ import annotations

import time

import pytest

from instrument.live.composer import Composer
from instrument.live.models import ModelSwitch
from instrument.live.params import ParamError, Parameters, params_for_models
from instrument.model import catalog, checkpoint
from tests.helpers import make_model
from bench.harness.osc import osc_message as message
from tests.player import Player


def composer_with(tmp_path, other_hidden: int = 32):
    a, b = make_model(hidden=32, seed=1), make_model(hidden=other_hidden, seed=2)
    paths = {"a": str(tmp_path / "a.pt"), "b": str(tmp_path / "b.pt")}
    checkpoint.save(paths["a"], a)
    checkpoint.save(paths["b"], b)
    params = Parameters(params_for_models(paths, "a"))
    for name, value in {"meter.next": "4/4", "mode.next": "maj", "bias.end": 4.0}.items():
        params.set(name, value, smoothing_ms=0)
    composer = Composer(a, params, seed=5)
    composer.models = ModelSwitch("a", paths, (a.config.vocab_size, a.config.layers, a.config.hidden), composer.prepare)
    return composer, params


def tunes_until(composer, number: int) -> None:
    """Compose until tune ``number`` has begun."""
    for _ in range(20000):
        composer.next_notes()
        if composer.tune is not None and composer.tune.number >= number:
            return
    raise AssertionError("the tunes never ended")


def ask_for(composer, params, name: str) -> None:
    """Set ``model.next`` and wait until the model is prepared (loaded in the background)."""
    params.set("model.next", name, source="test")
    composer.models.request(name)
    deadline = time.monotonic() + 30
    while composer.models._ready is None:
        assert time.monotonic() < deadline and not composer.models.failed
        time.sleep(0.01)


def test_the_next_model_takes_over_at_the_next_tune_and_not_before(tmp_path):
    plain, _ = composer_with(tmp_path)
    tunes_until(plain, 2)
    first_alone = plain.finished[0][1]

    composer, params = composer_with(tmp_path)
    composer.next_notes()  # tune 1 has begun
    before = composer.stepper
    ask_for(composer, params, "b")
    assert composer.stepper is before  # ready, but tune 1 is still being written by model a
    tunes_until(composer, 2)
    assert composer.stepper is not before and composer.models.current == "b" and composer.models.since_tune == 2
    assert composer.finished[0][1] == first_alone  # tune 1 is what model a alone wrote


def test_a_model_played_before_is_kept_ready_and_switching_back_reads_nothing(tmp_path, monkeypatch):
    """Loading and freeing a model at every switch left memory behind each time (a soak switching
    every 80 s grew 476 MB/h): the model that hands over is kept, and switching back takes it."""
    composer, params = composer_with(tmp_path)
    composer.next_notes()
    first = composer.stepper
    ask_for(composer, params, "b")
    tunes_until(composer, 2)
    second = composer.stepper
    assert second is not first and composer.models.current == "b"
    loads = []
    monkeypatch.setattr(checkpoint, "load", lambda *a, **k: loads.append(a) or pytest.fail("a model was read again"))
    params.set("model.next", "a", source="test")
    composer.models.request("a")
    assert composer.models._ready is not None and composer.models._ready.parts[0] is first  # ready at once
    tunes_until(composer, 3)
    assert composer.stepper is first and composer.models.current == "a" and composer.models.since_tune == 3
    params.set("model.next", "b", source="test")
    composer.models.request("b")
    tunes_until(composer, 4)
    assert composer.stepper is second and not loads


def test_a_model_of_another_shape_is_refused_and_the_music_goes_on(tmp_path):
    composer, params = composer_with(tmp_path, other_hidden=48)
    params.set("model.next", "b", source="test")
    composer.models.request("b")
    deadline = time.monotonic() + 30
    while "b" not in composer.models.failed:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert "32" in composer.models.failed["b"] and "48" in composer.models.failed["b"]
    tunes_until(composer, 2)
    assert composer.models.current == "a"


def test_only_the_models_named_at_the_start_can_be_chosen(tmp_path):
    params = Parameters(params_for_models({"session": "x", "songs": "y"}, "songs"))
    assert params.get("model.next") == "songs"
    assert params.specs["model.next"].choices == ("session", "songs")
    with pytest.raises(ParamError):  # a controller cannot make the instrument read any other file
        params.set("model.next", "/etc/passwd", source="OSC")
    assert catalog.name_of(None) == "session" and catalog.name_of("/x/songs.pt") == "songs (file)"
    assert catalog.name_of("/x/mine.pt") == "mine"


def test_model_next_over_osc_switches_models_at_a_tune_boundary_while_playing(tmp_path):
    player = Player("session", "default.yaml", tmp_path, "--tempo", "320", "--set", "bias.end=8")
    try:
        state = player.wait_for(lambda s: s["status"]["tune"] >= 1, timeout=30)
        assert state["status"]["model"]["playing"] == "session" and state["model.next"] == "session"
        asked_in = state["status"]["tune"]
        player.send(message("/model/next", "songs"))
        state = player.wait_for(lambda s: s["status"]["model"]["playing"] == "songs", timeout=90)
        assert state["model.next"] == "songs" and state["status"]["model"]["failed"] == {}
        since = state["status"]["model"]["since_tune"]
        assert since > asked_in  # not in the middle of the tune it was asked in
        player.send(message("/model/next", "/etc/passwd"))  # only the names given at the start
        time.sleep(0.5)
        assert player.state()["model.next"] == "songs"
        # play on until the take (checkpointed every 2 s) holds three tunes with notes of the new
        # model: tunes that end at once (bias.end) have no notes and no boundary to measure
        player.wait_for(lambda s: _tunes_with_notes_from(tmp_path / "take.mid", since) >= 3, timeout=120)
    finally:
        err = player.stop()
    assert f"the songs model writes from tune {since} on" in err
    # No gap in the music: the silence before the first tune of the new model is no longer than
    # the silence between two tunes of one model in the same take (+ a beat, below).
    silences = silences_before_tunes(tmp_path / "take.mid")
    first = min((n for n in silences if n >= since), default=None)
    others = [s for n, s in silences.items() if n != first]
    assert first is not None and others, (since, silences)
    # a tune that ended at once adds its own gap: the bound grows by one gap per such tune; the
    # last note's articulation and a tune's opening rest move a gap by up to a beat (0.19 s here),
    # far less than a model read or prepared at the boundary would hold the music up
    assert silences[first] <= (first - since + 1) * max(others) + 60 / 320, (since, silences)


def _tunes_with_notes_from(path, since: int) -> int:
    """How many tunes from ``since`` on have notes in the take on disk (0 before its first save)."""
    return sum(1 for n in silences_before_tunes(path) if n >= since) if path.exists() else 0


def silences_before_tunes(path) -> dict[int, float]:
    """Seconds of silence before each tune's first note (after the first tune), from the take's
    tune markers and notes."""
    import mido

    now, sounding, last_off, starts = 0.0, 0, 0.0, {}
    for msg in mido.MidiFile(path):
        now += msg.time
        if msg.type == "marker" and msg.text.split()[-1].isdigit():
            number = int(msg.text.split()[-1])
            if number > 1:
                starts[number] = now - (now if sounding else last_off)
        elif msg.type == "note_on" and msg.velocity:
            sounding += 1
        elif msg.type in ("note_off", "note_on"):
            sounding -= 1
            last_off = now
    return starts
