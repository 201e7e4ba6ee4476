"""The engine keeps time whatever the controls do (found by bench/soak.py): a held bar loops on
time at any tempo, and tunes the model ends at once take their gap instead of spinning the
model thread and leaving the next note far behind. Wall-clock tests: each note is judged against
the machine's own stalls near it, measured over the same seconds (tests/timing.py)."""

from __future__ import annotations

import time

import pytest

from instrument.live.engine import LATE_RESYNC_S, Limits
from bench.harness.wait import wait_for
from tests.engine_helpers import engine_for, hand_over_problem
from tests.timing import machine_jitter

pytestmark = pytest.mark.realtime

HANDED_S = 0.05  # a note handed over beyond its lookahead (before the fix: a whole loop, 2.4 s)


def resync_problem(engine, jitter) -> str | None:
    """A resync is the engine's answer to falling LATE_RESYNC_S behind: each needs a stall of the
    machine for a good part of that (one stall excuses one resync, not every other)."""
    stalls = jitter.stalls(LATE_RESYNC_S / 2)
    if engine.resyncs > len(stalls):
        return f"{engine.resyncs} resyncs, {len(stalls)} stalls over {LATE_RESYNC_S / 2 * 1e3:.0f} ms; {jitter}"
    return None


def test_hold_at_a_slow_tempo_hands_every_looped_note_over_on_time():
    engine, params, out = engine_for(Limits(seconds=9.0), seed=5, tempo=100.0)  # a 4/4 bar: 2.4 s
    lookahead = engine.lookahead
    with machine_jitter() as jitter:
        engine.start()
        wait_for(lambda: engine.phrasing.bars >= 2, 10, "a whole bar played")  # the bar to hold
        params.set("hold", True)
        held = len(out.notes)
        assert engine.wait(30)
    looped = out.notes[held:]
    assert len(looped) > 5
    assert resync_problem(engine, jitter) is None, resync_problem(engine, jitter)
    # just in time, as every other note: not a loop's length early
    problem = hand_over_problem(looped, jitter, lookahead, HANDED_S, late_s=0.0)
    assert problem is None, problem


def test_an_engine_that_hands_notes_half_a_second_early_fails_the_hand_over_check():
    """The check above fails an engine that composes ahead of what sounds (a held loop was handed
    over a whole loop early before the fix): here every note half a second ahead."""
    engine, params, out = engine_for(Limits(seconds=2.0), seed=5, tempo=100.0)
    lookahead = engine.lookahead
    engine.lookahead = 0.5
    with machine_jitter() as jitter:
        engine.start()
        assert engine.wait(30)
    problem = hand_over_problem(out.notes, jitter, lookahead, HANDED_S, late_s=0.0)
    assert problem is not None and "before its onset" in problem, problem


def test_tunes_ended_at_once_take_their_gap_and_the_music_comes_back_on_time():
    engine, params, out = engine_for(Limits(seconds=60.0), seed=5, tempo=120.0)
    with machine_jitter() as jitter:
        engine.start()
        wait_for(lambda: len(out.notes) >= 2, 10, "the music playing")
        params.set("bias.end", 20.0, smoothing_ms=0)  # every tune ends before its first note
        tokens = engine.composer.tokens_sampled
        time.sleep(3.0)  # paces the stimulus: the tokens sampled over 3 s of tunes that end at once are counted
        spent = engine.composer.tokens_sampled - tokens
        params.set("bias.end", 0.0, smoothing_ms=0)
        after = len(out.notes)
        wait_for(lambda: len(out.notes) > after + 5, 10, "notes again")
        engine.stop()
        assert engine.wait(30)
    assert spent < 200, spent  # a tune (a few tokens) per gap of a beat, not a spinning model thread
    assert resync_problem(engine, jitter) is None, resync_problem(engine, jitter)
