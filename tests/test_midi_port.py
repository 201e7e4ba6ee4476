"""The MIDI output against a real JACK server: timing, order, panic, clock, ports that go away."""

from __future__ import annotations

import logging
import os
import shutil
import time

import pytest

from instrument.midi import ports
from instrument.midi.messages import CONTROL, NOTE_OFF, NOTE_ON, PROGRAM
from instrument.errors import UsageError
from instrument.music.phrasing import TempoMap
from instrument.music.phrasing import ScheduledNote
from instrument.outputs import Output
from instrument.outputs.midi_port import open_midi_port
from instrument.timing import Scheduler, clock
from tests.timing import Jitter, machine_jitter, timing_problem
from bench.harness.jack_server import realtime_jack_server, start_jack, stop_jack

# Arrival minus scheduled time: our budget (the timing thread is within ~0.1 ms; JACK's delivery
from bench.harness.midi import midi_port, Receiver, wait_for

# Arrival minus scheduled time: our budget (the timing thread is within ~0.1 ms; JACK's delivery
# takes up to a period or two), to which the machine's jitter measured during the test is added.
TYPICAL_S, WORST_S = 0.002, 0.01  # the median, each message

pytestmark = pytest.mark.realtime


@pytest.fixture(autouse=True)
def jitter():
    """The machine's wake-up jitter over each test, which its timing bounds allow for."""
    global JITTER
    with machine_jitter() as JITTER:
        yield JITTER


JITTER = Jitter()


@pytest.fixture(scope="module")
def jack(jack_server):
    """The test JACK server, real-time for this module where allowed."""
    with realtime_jack_server():
        yield jack_server


@pytest.fixture
def scheduler():
    s = Scheduler()  # real-time priority where allowed, as the engine's
    s.start()
    yield s
    s.stop()


@pytest.fixture
def receiver(jack):
    r = Receiver("test-receiver", "in")
    yield r
    r.close()




def virtual_port(scheduler, receiver, **options):
    port = midi_port("virtual", scheduler, **options)
    receiver.listen_to(f"{ports.PRODUCT}:")
    return port


def check_times(received, expected):
    """Never early; typically within TYPICAL_S and at worst within WORST_S, each plus what a bare
    sleep-until loop suffered during the test (tests/timing.py)."""
    assert len(received) == len(expected)
    lags = [got - want for (got, _), want in zip(received, expected)]
    problem = timing_problem(lags, JITTER, TYPICAL_S if len(lags) >= 5 else WORST_S, WORST_S)
    assert problem is None, problem


def test_notes_arrive_in_order_at_their_times_program_change_first(scheduler, receiver):
    port = virtual_port(scheduler, receiver, program=41, channel=3)
    assert isinstance(port, Output)
    assert port.status() == "MIDI: virtual port 'folk-instrument' (JACK)"
    start = clock() + 0.1
    port.start(start)
    notes = [ScheduledNote(start + 0.03 * i, start + 0.03 * i + 0.02, 60 + i, 70 + i, 3, 1) for i in range(8)]
    for note in notes:
        port.schedule(note)
    assert wait_for(lambda: len(receiver.messages) >= 17, timeout=2), str(receiver.messages)
    time.sleep(0.05)  # nothing more may come
    port.close(clock())
    assert wait_for(lambda: len(receiver.messages) >= 18, timeout=2), str(receiver.messages)
    got = receiver.messages
    assert got[0][1] == [PROGRAM | 2, 41]
    expected = []
    for n in notes:
        expected += [([NOTE_ON | 2, n.pitch, n.velocity], n.on), ([NOTE_OFF | 2, n.pitch, 0], n.off)]
    assert [m for _, m in got[1:17]] == [m for m, _ in expected]
    check_times(got[:17], [start] + [t for _, t in expected])
    assert [m for _, m in receiver.messages[17:]] == [[CONTROL | 2, 123, 0]]  # close: All Notes Off on the channel used


def test_same_pitch_again_ends_the_first_note_once(scheduler, receiver):
    port = virtual_port(scheduler, receiver)
    t = clock() + 0.1
    port.start(t)
    port.schedule(ScheduledNote(t, t + 0.2, 64, 90, 1, 1))
    port.schedule(ScheduledNote(t + 0.1, t + 0.3, 64, 91, 1, 1))
    assert wait_for(lambda: len(receiver.messages) >= 4, timeout=2)
    time.sleep(0.05)
    got = receiver.messages
    assert [m for _, m in got] == [[NOTE_ON, 64, 90], [NOTE_OFF, 64, 0], [NOTE_ON, 64, 91], [NOTE_OFF, 64, 0]]
    check_times(got, [t, t + 0.1, t + 0.1, t + 0.3])
    port.close(clock())


def test_panic_in_a_held_note_leaves_nothing_sounding(scheduler, receiver):
    port = virtual_port(scheduler, receiver)
    t = clock() + 0.1
    port.start(t)
    port.schedule(ScheduledNote(t, t + 2.0, 60, 100, 1, 1))  # held
    port.schedule(ScheduledNote(t + 0.05, t + 2.0, 67, 100, 2, 1))  # held, another channel
    port.schedule(ScheduledNote(t + 0.4, t + 0.5, 72, 100, 1, 1))  # not started at the panic
    assert wait_for(lambda: len(receiver.of(NOTE_ON)) == 2, timeout=2)
    panic_at = clock()
    port.panic(panic_at)
    assert wait_for(lambda: len(receiver.of(CONTROL)) == 2, timeout=2)
    time.sleep(0.5)  # past the dropped note's time
    got = [m for _, m in receiver.messages]
    assert got == [[NOTE_ON, 60, 100], [NOTE_ON | 1, 67, 100], [NOTE_OFF, 60, 0], [NOTE_OFF | 1, 67, 0],
                   [CONTROL, 123, 0], [CONTROL | 1, 123, 0]]
    assert all(at - panic_at < WORST_S + JITTER.max for at, _ in receiver.messages[2:]), JITTER
    port.close(clock())
    assert [m for _, m in receiver.messages[6:]] == [[CONTROL, 123, 0], [CONTROL | 1, 123, 0]], str(receiver.messages)  # close


def test_close_after_the_scheduler_stopped_ends_sounding_notes_and_is_idempotent(scheduler, receiver):
    port = virtual_port(scheduler, receiver)
    t = clock() + 0.05
    port.start(t)
    port.schedule(ScheduledNote(t, t + 5.0, 50, 80, 5, 1))
    assert wait_for(lambda: len(receiver.messages) == 1, timeout=2)
    scheduler.stop()  # as the engine does: timing thread first, then outputs
    port.close(clock())
    port.close(clock())
    port.panic(clock())
    assert wait_for(lambda: len(receiver.messages) == 3, timeout=2), str(receiver.messages)
    assert [m for _, m in receiver.messages] == [[NOTE_ON | 4, 50, 80], [NOTE_OFF | 4, 50, 0], [CONTROL | 4, 123, 0]]
    assert port.status() == "MIDI: closed (JACK)"


def test_midi_clock_follows_the_tempo_map_and_survives_panic(scheduler, receiver):
    fast, slow = 60 / 240, 60 / 180  # seconds per quarter: ticks every 10.4 ms, then 13.9 ms
    tempo = TempoMap(0.0, fast)  # made before the port, as a performance does
    port = virtual_port(scheduler, receiver, send_clock=True, tempo=tempo)
    start = clock() + 0.1
    tempo.start(start)
    port.start(start)
    # as the engine does, a little ahead of the play head (here: tick 48, the one armed next); from
    # the timing thread, so that a stalled test thread cannot change it after tick 48 went out
    scheduler.at(tempo.time_at(47 / 24) + 0.002, lambda due: tempo.change(slow, at_beat=2.0))
    assert wait_for(lambda: len(receiver.of(0xF8)) >= 24 * 3, timeout=3)
    port.panic(clock())
    assert wait_for(lambda: len(receiver.of(0xF8)) >= 24 * 4, timeout=3)
    port.close(clock())
    got = receiver.of(0xFA, 0xF8, 0xFC)
    assert got[0][1] == [0xFA] and got[-1][1] == [0xFC], str(got[:3] + got[-3:])
    check_times(got[:1], [start])
    expected = [start + k / 24 * fast if k <= 48 else start + 2 * fast + (k - 48) / 24 * slow for k in range(24 * 4)]
    check_times(receiver.of(0xF8)[: 24 * 4], expected)


def test_connect_by_name_and_bad_names(scheduler, jack):
    synth = Receiver("Test Synth", "midi_in")
    try:
        port = midi_port("test SYNTH", scheduler)
        assert port.status() == "MIDI: connected to 'Test Synth:midi_in' (JACK)"
        t = clock() + 0.05
        port.start(t)
        port.schedule(ScheduledNote(t, t + 0.05, 69, 64, 1, 1))
        assert wait_for(lambda: len(synth.messages) >= 2, timeout=2)
        port.close(clock())
        with pytest.raises(UsageError) as error:
            open_midi_port("no such synth", "jack", scheduler)
        message = str(error.value)
        assert "\n" not in message and "no MIDI input port matches" in message and "'Test Synth:midi_in'" in message
    finally:
        synth.close()
    assert open_midi_port("none", "jack", scheduler) is None


def test_api_choice(jack, scheduler):
    assert ports.midi_available() == (True, "JACK") or os.path.exists(ports.ALSA_SEQUENCER)
    for api, expected in [("winamp", "unknown MIDI API"), ("coremidi", "built without it")]:
        with pytest.raises(UsageError, match=expected):
            open_midi_port("virtual", api, scheduler)
    if not os.path.exists(ports.ALSA_SEQUENCER):  # as on these machines: auto falls through to JACK
        with pytest.raises(UsageError, match="no ALSA sequencer"):
            open_midi_port("virtual", "alsa", scheduler)
        port = open_midi_port("virtual", "auto", scheduler)
        assert port.status().endswith("(JACK)")
        port.close(clock())


@pytest.mark.skipif(os.path.exists(ports.ALSA_SEQUENCER), reason="this machine has ALSA MIDI")
def test_no_midi_api_here_is_said_in_one_line(monkeypatch, scheduler):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"no-such-server-{os.getpid()}")
    available, why = ports.midi_available()
    assert not available and "no ALSA sequencer" in why and "no JACK server running" in why
    for api, expected in [("auto", "no MIDI API works here"), ("jack", "not usable: no JACK server running")]:
        with pytest.raises(UsageError, match=expected) as error:
            open_midi_port("virtual", api, scheduler)
        assert "\n" not in str(error.value)


def test_a_port_that_goes_away_is_reported_and_reconnected_while_the_clock_runs(scheduler, jack, caplog):
    caplog.set_level(logging.WARNING, logger="instrument.midi")
    daw = Receiver("Test DAW", "in")
    start = clock() + 0.05
    tempo = TempoMap(start, 60 / 150)
    port = midi_port("test daw", scheduler, send_clock=True, tempo=tempo, watch_interval=0.1)
    try:
        port.start(start)
        assert wait_for(lambda: len(daw.of(0xF8)) >= 24, timeout=2)
        daw.close()
        assert wait_for(lambda: "port lost" in port.status(), timeout=2)
        assert port.status() == "MIDI: port lost, waiting for 'Test DAW:in' (JACK)"
        time.sleep(0.3)  # a few checks while it is gone: still one warning
        assert len([r for r in caplog.records if "is gone" in r.message]) == 1
        daw = Receiver("Test DAW", "in")
        assert wait_for(lambda: "connected to" in port.status(), timeout=2)
        assert wait_for(lambda: len(daw.of(0xF8)) >= 24, timeout=2)
        ticks = daw.of(0xF8)[2:]  # the first ones may straddle the reconnection
        first = round(tempo.beat_at(ticks[0][0] - 0.002) * 24)  # the clock kept counting:
        assert first > 24  # not started again, and no tick lost since
        check_times(ticks, [tempo.time_at((first + i) / 24) for i in range(len(ticks))])
        assert scheduler.alive and [m for _, m in daw.of(0xFA)] == []  # no restart, same clock
        assert any("port back" in r.message for r in caplog.records)
    finally:
        port.close(clock())
        daw.close()


@pytest.mark.skipif(not shutil.which("jackd"), reason="jackd is not installed (Debian package jackd2)")
def test_a_restarted_jack_server_gets_the_virtual_port_back(scheduler, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="instrument.midi")
    name = f"folk-instrument-restart-{os.getpid()}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    server = start_jack(name)
    port = None
    try:
        start = clock() + 0.05
        tempo = TempoMap(start, 60 / 300)
        port = midi_port("virtual", scheduler, send_clock=True, tempo=tempo, watch_interval=0.1)
        port.start(start)
        time.sleep(0.2)
        stop_jack(server)
        assert wait_for(lambda: "waiting for the JACK server" in port.status(), timeout=3)
        ran = []  # the timing thread is not stuck on the dead server
        scheduler.at(clock(), ran.append)
        assert wait_for(lambda: ran, timeout=1)
        server = start_jack(name)
        assert wait_for(lambda: port.status() == "MIDI: virtual port 'folk-instrument' (JACK)", timeout=5)
        daw = Receiver("Test DAW", "in")
        try:
            daw.listen_to(f"{ports.PRODUCT}:")
            assert wait_for(lambda: len(daw.of(0xF8)) >= 12, timeout=2)  # the same clock goes on
            check_notes_heard(port, daw)
        finally:
            daw.close()
        assert any("JACK server stopped" in r.message for r in caplog.records)
    finally:
        if port is not None:
            port.close(clock())
        stop_jack(server)


def check_notes_heard(port, listener, count: int = 5) -> None:
    """Notes scheduled now reach ``listener``, each on and off."""
    t = clock() + 0.05
    for i in range(count):
        port.schedule(ScheduledNote(t + 0.02 * i, t + 0.02 * i + 0.01, 60 + i, 90, 1, 1))
    assert wait_for(lambda: len(listener.of(NOTE_OFF)) >= count, timeout=3), listener.messages
    assert [m[1] for _, m in listener.of(NOTE_ON)][-count:] == [60 + i for i in range(count)]


@pytest.mark.skipif(not shutil.which("jackd"), reason="jackd is not installed (Debian package jackd2)")
def test_a_restarted_jack_server_gets_a_named_port_back_once_the_other_port_returns(scheduler, monkeypatch, caplog):
    """``--midi-out NAME`` across a server restart: the instrument's client comes back before the
    DAW's port does, waits for it without a virtual stand-in (rtmidi refuses ``open_port`` on a
    client that opened one: it logged "already opened virtual output port" and never played again),
    and plays notes to the DAW once it is back."""
    caplog.set_level(logging.WARNING, logger="instrument.midi")
    name = f"folk-instrument-restart-named-{os.getpid()}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    server = start_jack(name)
    daw = Receiver("Test DAW", "in")
    port = None
    try:
        port = midi_port("test daw", scheduler, watch_interval=0.1)
        assert port.status() == "MIDI: connected to 'Test DAW:in' (JACK)"
        check_notes_heard(port, daw)
        stop_jack(server)
        daw.close(server_gone=True)
        assert wait_for(lambda: "waiting for the JACK server" in port.status(), timeout=3)
        server = start_jack(name)
        assert wait_for(lambda: port.link.reconnects == 0 and port.status() == "MIDI: port lost, waiting for 'Test DAW:in' (JACK)"
                        and not port.link.waiting_for_server, timeout=5)
        daw = Receiver("Test DAW", "in")
        assert wait_for(lambda: port.status() == "MIDI: connected to 'Test DAW:in' (JACK)", timeout=5)
        check_notes_heard(port, daw)
        assert port.link.reconnects == 1
        assert not [r.message for r in caplog.records if "failed" in r.message]
    finally:
        if port is not None:
            port.close(clock())
        daw.close(server_gone=server.poll() is not None)
        stop_jack(server)
