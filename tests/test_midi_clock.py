"""Following a MIDI clock sent over a real JACK server: tempo within 1 %, Start/Continue/Stop."""

from __future__ import annotations

import random

import pytest

from controllers.midi_clock import DEFAULT_PORT, MidiClockFollower, tempo_from_ticks
from instrument.errors import UsageError
from bench.harness.jack_server import realtime_jack_server
from bench.harness.midi import ClockSource, wait_for
from instrument.midi.ports import realtime_jack_threads


@pytest.fixture(scope="module")
def jack(jack_server):
    """The test JACK server, real-time for this module where allowed."""
    with realtime_jack_server():
        yield jack_server


@pytest.fixture
def source(jack):
    s = ClockSource()
    yield s
    s.close()


def follower(**options):
    events, tempos = [], []
    with realtime_jack_threads():
        f = MidiClockFollower(api="jack", on_tempo=tempos.append, on_start=lambda: events.append("start"),
                              on_continue=lambda: events.append("continue"), on_stop=lambda: events.append("stop"),
                              **options)
    return f, events, tempos


@pytest.mark.realtime
def test_tempo_follows_the_clock_and_start_continue_stop_are_reported(source):
    f, events, tempos = follower()
    try:
        assert f.status() == f"MIDI clock: no clock yet (stopped) on '{DEFAULT_PORT}' (JACK)"
        source.connect(f"{DEFAULT_PORT}:{DEFAULT_PORT}")
        source.play([("start", 0), ("ticks", (48, 150.0))]).join()
        assert wait_for(lambda: f.ticks == 48, timeout=1)
        assert f.qpm == pytest.approx(150.0, rel=0.01) and tempos[-1] == f.qpm
        assert events == ["start"] and f.running
        source.play([("ticks", (60, 100.0)), ("stop", 0), ("continue", 0), ("ticks", (6, 100.0)), ("stop", 0)]).join()
        assert wait_for(lambda: events == ["start", "stop", "continue", "stop"], timeout=1), events
        assert f.qpm == pytest.approx(100.0, rel=0.01)
        assert f.beats == 114 / 24 and not f.running
        assert f.status() == f"MIDI clock: {f.qpm:.1f} qpm (stopped) on '{DEFAULT_PORT}' (JACK)"
    finally:
        f.close()
        f.close()


@pytest.mark.realtime
def test_listening_to_a_named_port(source):
    with pytest.raises(UsageError) as error:
        MidiClockFollower("no such clock", "jack")
    assert "no MIDI output port matches" in str(error.value) and "'Clock Source:out'" in str(error.value)
    f, events, _ = follower(port="clock SOURCE")
    try:
        assert f.port == "Clock Source:out"
        source.play([("start", 0), ("ticks", (36, 123.0))]).join()
        assert wait_for(lambda: f.ticks == 36, timeout=1)
        assert f.qpm == pytest.approx(123.0, rel=0.01) and events == ["start"]
    finally:
        f.close()


def test_tempo_estimate_shrugs_off_jitter_and_a_late_tick():
    rng = random.Random(1)
    spt = 60 / 128 / 24  # seconds per tick at 128 qpm
    times = [i * spt + rng.uniform(0, 0.00067) for i in range(48)]  # one 32-frame JACK period of jitter
    times[-1] += 0.005  # the newest tick 5 ms late
    assert tempo_from_ticks(times) == pytest.approx(128, rel=0.002)
    assert tempo_from_ticks(times[:2]) is None


def test_a_stalled_tick_in_a_short_window_does_not_bend_the_tempo():
    """The first ticks of 1.5 beats held up and delivered together (a busy sender or machine):
    least squares alone reads 124.7 qpm for 123 with two, 126.3 with three."""
    spt = 60 / 123 / 24
    for bunched in (2, 3):
        rng = random.Random(2)
        times = [i * spt + rng.uniform(0, 0.00067) for i in range(36)]
        times[:bunched] = [times[bunched]] * bunched
        assert tempo_from_ticks(times) == pytest.approx(123, rel=0.003), bunched
    steady = [i * spt for i in range(24)] + [24 * spt + i * 60 / 100 / 24 for i in range(1, 49)]
    assert tempo_from_ticks(steady[-49:]) == pytest.approx(100, rel=0.001)  # a new tempo, once the window holds it
