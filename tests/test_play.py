"""``run.py play`` as a performer runs it, against a real JACK server: the notes that arrive
match the recording, SIGTERM leaves nothing sounding, and no device at all still records."""

from __future__ import annotations

import os
import shutil
import re
import signal
import subprocess
import socket
import sys

import mido
import numpy as np
import pytest

from instrument.midi.messages import CONTROL, NOTE_ON
from tests.helpers import ROOT, run_cli
from tests.timing import clock, machine_jitter
from bench.harness.jack_server import connections, realtime_jack_server
from bench.harness.midi import ClockSource, Receiver, sounding_after
from bench.harness.wait import wait_for
from tests.player import QUIET, STARTED, play


@pytest.fixture(scope="module")
def jack(jack_server):
    with realtime_jack_server():
        yield jack_server


def recorded_onsets(path) -> list[tuple[float, int]]:
    """(seconds, pitch) of every note-on in a MIDI file, read back with mido."""
    now, out = 0.0, []
    for message in mido.MidiFile(path):
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            out.append((now, message.note))
    return out


@pytest.mark.realtime
def test_notes_arrive_as_recorded_in_order_and_time(jack, tmp_path, plain_checkpoint):
    receiver = Receiver("play-receiver", "in")
    try:
        take = tmp_path / "take.mid"
        with machine_jitter() as jitter:
            proc = play("--model", str(plain_checkpoint), "--midi-out", "play-receiver", "--midi-api", "jack",
                        "--no-audio", "--record", str(take), "--bars", "4", "--tempo", "160", "--seed", "3")
            out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "limit reached" in err
        wait_for(lambda: any(m[0] & 0xF0 == CONTROL and m[1] == 123 for _, m in receiver.messages), 10)  # the last message
    finally:
        receiver.close()
    received = [(t, m[1]) for t, m in receiver.of(NOTE_ON) if m[2] > 0]
    recorded = recorded_onsets(take)
    assert len(recorded) >= 12
    assert [p for _, p in received] == [p for _, p in recorded]  # every note, in order
    lags = sorted(got - want for (got, _), (want, _) in zip(received, recorded))
    offset = lags[len(lags) // 2]
    errors = sorted(abs(lag - offset) for lag in lags)
    p99 = errors[min(len(errors) - 1, int(0.99 * len(errors)))]
    by_note = [abs(got - want - offset) for (got, _), (want, _) in zip(received, recorded)]
    worst = max(range(len(by_note)), key=by_note.__getitem__)
    shown = (f"p99 {p99 * 1000:.2f} ms, max {errors[-1] * 1000:.2f} ms (note {worst + 1}) over {len(errors)} notes; "
             f"first notes' errors {[round(e * 1000, 2) for e in by_note[:4]]} ms; {jitter}")
    assert p99 <= 0.002 + jitter.p99, shown + err  # our budget, plus the machine's own jitter over the take
    # each note within 8 ms, plus what the machine stalled near it
    late = [i + 1 for i, ((got, _), (want, _)) in enumerate(zip(received, recorded))
            if abs(got - want - offset) > 0.008 + jitter.near(want + offset - 0.05, got)]
    assert not late, f"notes {late[:10]} late; " + shown + err
    assert not sounding_after(receiver.messages)
    assert take.with_suffix(".abc").read_text().startswith("X:")


def test_sigterm_in_the_middle_of_a_note_leaves_nothing_sounding(jack, tmp_path, small_checkpoint):
    receiver = Receiver("term-receiver", "in")
    try:
        take = tmp_path / "cut.mid"
        # slow and legato: notes last long, so the signal lands inside one
        proc = play("--model", str(small_checkpoint), "--midi-out", "term-receiver", "--midi-api", "jack",
                    "--no-audio", "--record", str(take), "--tempo", "40", "--set", "articulation=1", "--seed", "5")
        sounding = lambda: sounding_after(receiver.messages) or proc.poll() is not None  # noqa: E731
        wait_for(sounding, 30, "a note sounding")
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGTERM)  # a note is sounding now, held long: the signal lands inside it
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "SIGTERM" in err
        wait_for(lambda: not sounding_after(receiver.messages), 10)
    finally:
        receiver.close()
    messages = receiver.messages
    assert not sounding_after(messages)
    assert any(m[0] & 0xF0 == CONTROL and m[1] == 123 for _, m in messages)  # All Notes Off at the end
    assert recorded_onsets(take)  # the recording was closed properly and reads back


def test_with_neither_midi_nor_audio_it_says_so_and_records(tmp_path, small_checkpoint):
    env_server = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = "no-such-server-here"
    try:
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "play", "--model", str(small_checkpoint), *QUIET,
                               "--bars", "1", "--no-audio", "--seed", "1"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
    finally:
        if env_server is None:
            del os.environ["JACK_DEFAULT_SERVER"]
        else:
            os.environ["JACK_DEFAULT_SERVER"] = env_server
    assert proc.returncode == 0, proc.stderr
    assert "neither MIDI nor audio" in proc.stderr
    takes = list((tmp_path / "takes").glob("take-*.mid"))
    assert len(takes) == 1 and recorded_onsets(takes[0])
    assert takes[0].with_suffix(".abc").is_file()


@pytest.mark.parametrize("args, words", [
    (("--bars", "-1"), "must not be negative"),
    (("--record", "/nonexistent-dir/x.mid", "--midi-out", "none", "--no-audio"), "--record"),
    (("--record", "take.wav", "--midi-out", "none", "--no-audio"), ".mid"),
    (("--midi-out", "no-such-port-anywhere", "--midi-api", "jack", "--no-audio"), "no-such-port-anywhere"),
    (("--set", "tempo=9999", "--midi-out", "none", "--no-audio"), "tempo"),
    (("--seconds", "nan"), "finite number of seconds"),  # nan compared false with 0: it played forever
    (("--seconds", "inf"), "finite number of seconds"),
    (("--seconds", "-2"), "finite number of seconds, 0 or more"),
    (("--seed", "-1"), "a seed is a whole number from 0"),
])
def test_bad_requests_are_one_line_with_exit_code_2(jack, tmp_path, small_checkpoint, args, words):
    proc = play("--model", str(small_checkpoint), "--bars", "2", *args, cwd=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err, err


def test_a_bad_argument_is_named_before_any_port_opens(tmp_path, small_checkpoint):
    """``play --mode lydian`` used to report the busy --myo-port it opened first."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = str(busy.getsockname()[1])
        for bad, words in ((("--mode", "lydian"), "unknown mode 'lydian'"), (("--meter", "5/4"), "unknown meter '5/4'"),
                           (("--web", "nowhere:x"), "--web takes [HOST:]PORT"),
                           (("--activity-osc", "no-port"), "--activity-osc takes HOST:PORT")):
            result = run_cli("play", "--model", str(small_checkpoint), "--midi-out", "none", "--no-audio", "--no-osc",
                             "--midi-in", "none", "--myo-port", port, "--seconds", "1", *bad)
            assert result.returncode == 2 and words in result.stderr, result.stderr
            assert "--myo-port" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        busy_port = run_cli("play", "--model", str(small_checkpoint), "--midi-out", "none", "--no-audio", "--no-osc",
                            "--midi-in", "none", "--myo-port", port, "--seconds", "1")
        assert busy_port.returncode == 2 and "--myo-port" in busy_port.stderr  # the check can fail


@pytest.mark.realtime
def test_follows_an_incoming_midi_clock_start_tempo_and_stop(jack, tmp_path, small_checkpoint):
    """--sync midi-clock waits for Start, plays at the clock's tempo (its own --send-clock ticks
    follow it) and ends at Stop with nothing left sounding.

    It listens to the source by name (``--clock-in rig-clock``): a test that looked for 'the' port
    ending in "clock in" connected the source to a stale one of an earlier, stuck run and waited
    for a Start that never came."""
    source = ClockSource("rig-clock")
    receiver = Receiver("sync-receiver", "in")
    try:
        proc = play("--model", str(small_checkpoint), "--midi-out", "sync-receiver", "--midi-api", "jack",
                    "--no-audio", "--sync", "midi-clock", "--clock-in", "rig-clock", "--send-clock", "--tempo", "90",
                    "--seed", "2")
        wait_for(lambda: connections(source.name) or proc.poll() is not None, 30)
        assert proc.poll() is None, proc.communicate()[1]
        qpm = 150.0
        started = clock()  # Start is sent after this (ClockSource begins 20 ms on)
        source.play([("start", 0), ("ticks", (24 * 20, qpm)), ("stop", 0)]).join(30)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "MIDI clock stop" in err
        wait_for(lambda: receiver.of(0xFC), 10)  # its own clock's Stop, the last message
    finally:
        receiver.close()
        source.close()
    assert receiver.of(NOTE_ON) and min(t for t, _ in receiver.of(NOTE_ON)) > started  # nothing before Start
    ticks = [t for t, m in receiver.of(0xF8)]
    later = np.diff(ticks[len(ticks) // 2:])  # after the follower has settled
    assert len(later) > 48
    assert abs(float(np.median(later)) - 60.0 / qpm / 24) < 0.02 * 60.0 / qpm / 24, float(np.median(later))
    assert not sounding_after(receiver.messages)


@pytest.mark.realtime
def test_the_same_seed_plays_the_same_performance(tmp_path, plain_checkpoint):
    takes, late_ms = [], 0.0
    for n in range(2):
        take = tmp_path / f"seed{n}.mid"
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "play", *QUIET, "--model", str(plain_checkpoint),
                               "--midi-out", "none", "--no-audio", "--record", str(take), "--bars", "6", "--tempo", "300",
                               "--seed", "11"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        takes.append(take)
        # a note the model thread composed after its time (a stalled machine) is recorded when it sounded
        late_ms += sum(float(ms) for ms in re.findall(r"a note was composed ([\d.]+) ms after its time", proc.stderr))
    first, second = (recorded_onsets(t) for t in takes)
    assert len(first) > 10
    assert [p for _, p in first] == [p for _, p in second]
    worst = max(abs(a - b) for (a, _), (b, _) in zip(first, second))
    assert worst < 0.002 + late_ms / 1000, (worst, late_ms)  # same rhythm
    assert takes[0].with_suffix(".abc").read_text() == takes[1].with_suffix(".abc").read_text()


def test_sigterm_while_it_opens_ends_it_cleanly(tmp_path, small_checkpoint):
    """A signal before the music starts (here while the step kernel builds, which a slow compiler
    stretches to seconds) used to kill play with the default action (exit -15, nothing closed)."""
    slow_cc = tmp_path / "slow-cc"
    slow_cc.write_text("#!/bin/sh\nsleep 4\nexit 1\n")
    slow_cc.chmod(0o755)
    env = dict(os.environ, PYTHONUNBUFFERED="1", CC=str(slow_cc), FOLK_INSTRUMENT_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "play", *QUIET, "--model", str(small_checkpoint),
                             "--midi-out", "none", "--no-audio", "--record", str(tmp_path / "take.mid")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    STARTED.append(proc)
    wait_for(lambda: (tmp_path / "cache").exists() or proc.poll() is not None, 60)  # building now
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.strip().splitlines()[-1].startswith("SIGTERM: 0 notes"), err


def test_without_real_time_permission_it_says_so_in_one_line_and_plays(tmp_path, small_checkpoint):
    """Where the system refuses real-time priority ('ulimit -r' 0 and no CAP_SYS_NICE), play says
    so in one line with what it costs, and plays on at normal priority."""
    if not shutil.which("prlimit"):
        pytest.skip("prlimit (util-linux) is not installed")
    unprivileged = ["prlimit", "--rtprio=0"]
    if os.geteuid() == 0:  # root may have real-time priority whatever the limit: drop that capability
        if not shutil.which("setpriv"):
            pytest.skip("setpriv (util-linux) is not installed")
        unprivileged += ["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice"]
    probe = subprocess.run([*unprivileged, sys.executable, "-c", "from instrument.timing import realtime_refused; "
                            "print(realtime_refused())"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if probe.returncode != 0 or probe.stdout.strip() == "None":
        pytest.skip(f"real-time priority cannot be refused here: {probe.stderr.strip()[-200:]}")
    proc = subprocess.run([*unprivileged, sys.executable, str(ROOT / "run.py"), "play", "--model", str(small_checkpoint),
                           *QUIET, "--bars", "2", "--no-audio", "--midi-out", "none", "--no-web", "--seed", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "real-time priority" in line]
    assert len(said) == 1 and "'ulimit -r' is 0" in said[0] and "late" in said[0], proc.stderr
