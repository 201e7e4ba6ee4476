"""The engine keeps time whatever the controls do (found by bench/soak.py): a held bar loops on
time at any tempo, and tunes the model ends at once take their gap instead of spinning the
model thread and leaving the next note far behind. Wall-clock tests: the bounds allow for the
machine's own jitter, measured over the same seconds (tests/timing.py)."""

from __future__ import annotations

import time

import pytest

from instrument.live.engine import LATE_RESYNC_S, Limits
from tests.engine_helpers import engine_for
from tests.timing import machine_jitter

pytestmark = pytest.mark.realtime

HANDED_S = 0.05  # a note handed over beyond its lookahead (before the fix: a whole loop, 2.4 s)


def no_resync_unless_stalled(engine, jitter) -> None:
    """A resync is the engine's answer to falling LATE_RESYNC_S behind: only a machine that stalled
    for a good part of that may cause one."""
    assert engine.resyncs == 0 or jitter.max > LATE_RESYNC_S / 2, (engine.resyncs, str(jitter))


def test_hold_at_a_slow_tempo_hands_every_looped_note_over_on_time():
    engine, params, out = engine_for(Limits(seconds=9.0), seed=5, tempo=100.0)  # a 4/4 bar: 2.4 s
    with machine_jitter() as jitter:
        engine.start()
        time.sleep(3.0)
        params.set("hold", True)
        held = len(out.notes)
        assert engine.wait(30)
    looped = out.notes[held:]
    assert len(looped) > 5
    no_resync_unless_stalled(engine, jitter)
    for note, handed in looped:  # just in time, as every other note: not a loop's length late
        assert -jitter.max <= note.on - handed <= engine.lookahead + HANDED_S + jitter.max, (note.on - handed, str(jitter))


def test_tunes_ended_at_once_take_their_gap_and_the_music_comes_back_on_time():
    engine, params, out = engine_for(Limits(seconds=8.0), seed=5, tempo=120.0)
    with machine_jitter() as jitter:
        engine.start()
        time.sleep(1.0)
        params.set("bias.end", 20.0, smoothing_ms=0)  # every tune ends before its first note
        tokens = engine.composer.tokens_sampled
        time.sleep(3.0)
        spent = engine.composer.tokens_sampled - tokens
        params.set("bias.end", 0.0, smoothing_ms=0)
        after = len(out.notes)
        assert engine.wait(30)
    assert spent < 200, spent  # a tune (a few tokens) per gap of a beat, not a spinning model thread
    assert len(out.notes) > after + 5
    no_resync_unless_stalled(engine, jitter)
