"""The real-time loop with an in-process output: just in time, limits, triggers, stopping."""

import threading
import time

import pytest

from bench.harness.wait import wait_for
from tests.timing import machine_jitter

from instrument.live.engine import Limits
from instrument.music.phrasing import Phrasing, seconds_per_quarter
from instrument.live.params import Parameters
from instrument.timing import clock
from instrument.music.notes import tune_notes
from instrument.music.tunes import Tune
from tests.engine_helpers import engine_for, hand_over_problem
from tests.helpers import plain_model


@pytest.mark.realtime
def test_notes_are_handed_over_just_in_time_and_follow_the_tempo():
    engine, params, out = engine_for(Limits(seconds=1.5))
    with machine_jitter() as jitter:
        engine.start()
        assert engine.wait(20)
    assert out.closed_at is not None and engine.stop_reason == "limit reached"
    notes = [n for n, _ in out.notes]
    assert len(notes) > 5
    problem = hand_over_problem(out.notes, jitter, engine.lookahead, 0.001)  # never composed far ahead
    assert problem is None, problem
    spq = seconds_per_quarter(240.0, "4/4")
    number, tune = out.tunes[0]
    expected = [engine.start_time + n.start * spq for n in tune_notes(tune).notes]
    # exactly on the tempo's grid, up to the first note a stall made late (handed over at or after
    # its time it sounds when it can, and a resync moves the timeline on from there)
    played = []
    for (note, handed), want in zip([(n, h) for n, h in out.notes if n.tune == number], expected):
        if handed >= want - 1e-4:
            break
        played.append((note.on, want))
    assert played, f"the first note was late ({jitter})"
    assert [on for on, _ in played] == pytest.approx([want for _, want in played], abs=1e-9)


def test_bar_limit_plays_whole_bars_then_stops():
    engine, params, out = engine_for(Limits(bars=3), model=plain_model())  # a bar every ten notes or so
    engine.start()
    assert engine.wait(30)
    assert engine.bars == 3
    assert out.closed_at >= max(n.off for n, _ in out.notes) - 0.06  # the last note rang out
    assert out.tunes  # the tune in progress was handed over, cut
    number, tune = out.tunes[-1]
    assert isinstance(tune, Tune) and number >= 1


def test_tune_limit_and_new_tune_trigger():
    engine, params, out = engine_for(Limits(tunes=2))
    params.set("bias.end", 8.0)  # short tunes
    engine.start()
    assert engine.wait(60)
    assert {n.tune for n, _ in out.notes} <= {1, 2}
    assert [number for number, _ in out.tunes][:2] == [1, 2]


@pytest.mark.realtime
def test_a_change_applies_to_the_very_next_token():
    engine, params, out = engine_for(Limits(seconds=60.0))
    engine.start()
    wait_for(lambda: len(out.notes) >= 2, 10, "the music playing")
    version = params.version
    params.set("bias.rests", 10.0, source="test", smoothing_ms=0)  # rests everywhere from the next token
    set_at = clock()
    wait_for(lambda: sum(1 for v, t in list(engine.composer.applied) if t >= set_at) >= 20, 30, "20 tokens after the set")
    applied = [v for v, t in list(engine.composer.applied) if t >= set_at]
    body = list(engine.composer.tune.body)
    engine.stop()
    assert applied and all(v > version for v in applied)  # every token sampled after the set used it
    assert body[-len(applied):].count("z") >= len(applied) // 3


@pytest.mark.realtime
def test_panic_silences_outputs_at_once_and_play_continues():
    engine, params, out = engine_for(Limits(seconds=60.0))
    engine.start()
    wait_for(lambda: len(out.notes) >= 2, 10, "the music playing")
    before = len(out.notes)
    with machine_jitter() as jitter:
        t = clock()
        params.fire("panic", source="test")
    # from the controller's own thread, at once but for the machine's stalls while it ran
    assert out.panics and out.panics[0] - t < 0.002 + jitter.near(t, out.panics[0]), (out.panics[0] - t, str(jitter))
    wait_for(lambda: len(out.notes) > before, 10, "notes after the panic")  # the music went on
    engine.stop()
    assert engine.wait(20)


def test_a_panic_while_composed_notes_wait_their_time_drops_them_and_the_music_goes_on():
    """Found by bench/soak.py: a panic while the model thread slept until a pending note's time
    emptied the pending notes under it, and the thread's next step ended the performance
    (IndexError: pop from an empty deque). Here the composer hands over eight notes at a time
    (as a repeat played out or a held bar does), so the panic lands while notes wait."""
    engine, params, out = engine_for(Limits(seconds=3.0))
    real = engine.composer.next_notes

    def eight_at_once(now=None):
        notes = []
        while len(notes) < 8:
            notes += real(now)
        return notes

    engine.composer.next_notes = eight_at_once
    engine.start()
    wait_for(lambda: len(out.notes) >= 3, 10, "notes handed over, more waiting their time")
    params.fire("panic", source="test")
    panicked, before = clock(), len(out.notes)
    assert engine.wait(20)
    assert engine.error is None and engine.stop_reason == "limit reached", engine.stop_reason
    assert len(out.notes) > before and out.notes[-1][1] > panicked  # the music went on


@pytest.mark.realtime
def test_hold_loops_the_last_bar_and_the_model_waits():
    engine, params, out = engine_for(Limits(seconds=3.0), seed=5)
    engine.start()
    wait_for(lambda: engine.phrasing.bars >= 2, 10, "a whole bar played")  # the bar to hold
    params.set("hold", True)
    tokens_at_hold = engine.composer.tokens_sampled
    time.sleep(1.0)  # paces the stimulus: the tokens sampled over a second of hold are counted
    looped_tokens = engine.composer.tokens_sampled
    params.set("hold", False)
    assert engine.wait(20)
    assert looped_tokens - tokens_at_hold <= 70  # at most the note in hand was finished
    assert any(getattr(n, "pitch", None) is not None for n, _ in out.notes)


def test_a_failing_composer_still_closes_every_output():
    engine, params, out = engine_for(Limits())
    boom = threading.Event()

    def broken(now=None):
        boom.set()
        raise RuntimeError("model exploded")

    engine.start()
    wait_for(lambda: out.notes, 10, "the music playing")
    engine.composer.next_notes = broken
    assert engine.wait(10)
    assert boom.is_set() and out.closed_at is not None
    assert "model exploded" in engine.stop_reason


def test_stop_is_idempotent_from_many_threads():
    engine, params, out = engine_for(Limits())
    engine.start()
    wait_for(lambda: out.notes, 10, "the music playing")
    threads = [threading.Thread(target=engine.stop) for _ in range(5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert engine.finished.is_set() and out.closed_at is not None


@pytest.mark.realtime
def test_a_note_composed_late_is_handed_to_every_output_at_the_time_it_sounds():
    """A stall of the model thread (shorter than a resync): the note is late, and the outputs
    (MIDI, synth, recording) all get the time it will really sound, so a take matches the port."""
    engine, params, out = engine_for(Limits(seconds=2.0))
    composer, calls = engine.composer, []
    original = composer.next_notes

    def stalling(now=None):
        calls.append(1)
        if len(calls) == 6:
            time.sleep(0.08)  # the stimulus, a stall: longer than the lookahead, shorter than a resync
        return original(now)

    composer.next_notes = stalling
    with machine_jitter() as jitter:
        engine.start()
        assert engine.wait(20)
    assert engine.late_notes >= 1
    # never handed over with a time already past (beyond the machine's stalls around the hand-over)
    past = [handed - note.on for note, handed in out.notes if note.on < handed - 0.001 - jitter.near(handed - 0.05, handed)]
    assert not past, (past, str(jitter))


def test_an_external_clock_tempo_goes_through_the_registry_and_rules_the_tempo_map():
    """--sync midi-clock sets ``tempo.clock`` (so /state and the view show it, with its source);
    while it is above 0 the notes follow it, whatever the tempo parameter and the meter say."""
    params = Parameters()
    phrasing = Phrasing(params)
    assert phrasing.spq("6/8") == pytest.approx(seconds_per_quarter(110.0, "6/8"))
    params.set("tempo.clock", 150.0, source="MIDI clock")
    assert phrasing.spq("6/8") == pytest.approx(0.4) and phrasing.spq("4/4") == pytest.approx(0.4)
    assert params.snapshot()["tempo.clock"] == 150.0 and params.source("tempo.clock") == "MIDI clock"
    params.set("tempo.clock", 0.0, source="MIDI clock")  # the clock is gone: the tempo parameter again
    assert phrasing.spq("4/4") == pytest.approx(seconds_per_quarter(110.0, "4/4"))
