"""The sound holds under a storm of controls: ``play`` for a minute while a performer's rig moves it
(500 OSC messages and 200 MIDI CCs a second), heard through JACK by an independent recorder, its
missed cycles counted by a bare client against the same server's under the same floods without the
instrument (a stub listener takes them), and not one note late."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from bench.harness.audio import JackRecorder, stalls, xrun_problem
from bench.harness.floods import MIDI_PORT, midi_flood, osc_flood, stub_listener
from bench.harness.jack_server import jack_ports
from bench.harness.net import free_udp_port
from bench.harness.wait import wait_for
from bench.harness.osc import wait_until_playing
from tests.helpers import ROOT
from tests.player import QUIET, STARTED
from tests.timing import Jitter, machine_jitter

OSC_RATE, MIDI_RATE = 500, 200  # a performer's rig: a TouchOSC surface, a MIDI controller, an armband
PLAY_S = 30  # some 170 notes at 200 BPM: the shortened rests made 2-6 notes late in 30 s before they were fixed
ALONE_S = 20  # the floods at the stub, with the bare client counting
MIDI_DELAY_S = 3.0  # the MIDI flood sends once its listener has connected
RECORDED_FROM = {"fluidsynth": "folk-instrument", "numpy": "PortAudio"}  # each sound's JACK client


def lateness_problem(closing: str, jitter: Jitter) -> str | None:
    """Why ``play``'s closing line shows notes late or dropouts of the sound's own beyond what the
    machine explains, or None. The machine's share is a bare loop's stalls over the same run: a note
    composed late by no more than the machine's worst stall; the numpy synth's ring run short (its
    render thread waited 30 ms) only as often as the machine stalled for 10 ms; a note reaching the
    sound late only when composed late or when the stream lost time (a dropout, or the server's
    cycles run late, after which the sound's clock follows the stream)."""
    found = lambda pattern: int(m.group(1)) if (m := re.search(pattern, closing)) else 0  # noqa: E731
    composed, worst_ms = found(r"(\d+) composed late"), found(r"by up to (\d+) ms")
    underruns, ring_short = found(r"(\d+) underruns"), found(r"\((\d+) the ring short")
    if underruns and "the ring short" not in closing:
        ring_short = underruns  # every underrun was the ring's
    machine = stalls(jitter.stalls(0.010))
    why = f"{closing}; the machine stalled {machine} times ({jitter})"
    if worst_ms > 1000 * jitter.max:
        return f"a note composed {worst_ms} ms late: {why}"
    if ring_short > machine:
        return f"the ring ran short {ring_short} times: {why}"
    lost = found(r"(\d+) after the stream lost time")  # the server's cycles run late: the stream lost time
    if found(r"(\d+) late notes") > composed + underruns + lost:
        return f"notes late at the sound: {why}"
    return None


def flood_port_exists(server: str) -> None:
    wait_for(lambda: MIDI_PORT in jack_ports(server), 30, f"the MIDI flood's port {MIDI_PORT}")


def storm_alone(server: str, bare: JackRecorder, seconds: float) -> tuple[list[float], float]:
    """Both floods at the stub listener for ``seconds``: the server's missed cycles meanwhile."""
    port = free_udp_port()
    midi = midi_flood(server, MIDI_RATE, seconds + 30, MIDI_DELAY_S)
    flood_port_exists(server)
    stub = stub_listener(server, port, seconds + 30, midi=True)
    osc = osc_flood(port, OSC_RATE, seconds + 30)
    try:
        time.sleep(MIDI_DELAY_S + 1.0)  # paces the stimulus: both floods under way before the count
        mark, began = len(bare.xrun_times), time.monotonic()
        time.sleep(seconds)  # a measured stretch: the bare client's missed cycles under the floods alone
        return bare.xrun_times[mark:], time.monotonic() - began
    finally:
        for proc in (osc, stub, midi):
            proc.terminate()
            proc.wait(30)


@pytest.mark.realtime
@pytest.mark.parametrize("synth", ["fluidsynth", "numpy"])
def test_the_sound_holds_under_a_performers_storm_of_controls(jack_256, synth):
    bare = JackRecorder("storm-bare", record=False, server=jack_256)
    recorder = JackRecorder("storm-recorder", server=jack_256)
    port = free_udp_port()
    try:
        alone, alone_s = storm_alone(jack_256, bare, ALONE_S / 2)
        midi = midi_flood(jack_256, MIDI_RATE, PLAY_S + 60, MIDI_DELAY_S)
        flood_port_exists(jack_256)  # before play connects to it
        env = dict(os.environ, JACK_DEFAULT_SERVER=jack_256, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "play", "--quiet", "--no-web", "--no-myo",
                                 "--synth", synth, "--midi-out", "virtual", "--midi-api", "jack",
                                 "--midi-in", MIDI_PORT, "--midi-in-api", "jack", "--osc-port", str(port),
                                 "--seconds", str(PLAY_S), "--tempo", "200", "--seed", "1"],
                                cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        STARTED.append(proc)
        osc = None
        try:
            wait_until_playing(port, alive=lambda: proc.poll() is None)
            recorder.connect_from(RECORDED_FROM[synth])
            osc = osc_flood(port, OSC_RATE, PLAY_S + 60)
            time.sleep(1.0)  # the recorder's connection is a change of the graph, which JACK may count
            with machine_jitter() as jitter:
                mark, began = len(bare.xrun_times), time.monotonic()
                time.sleep(PLAY_S - 3.0)  # a measured stretch: the bare client's missed cycles while play plays
                during, during_s = bare.xrun_times[mark:], time.monotonic() - began
                _, err = proc.communicate(timeout=60)
        finally:
            for flood in (osc, midi):
                if flood is not None:
                    flood.terminate()
                    flood.wait(30)
        more, more_s = storm_alone(jack_256, bare, ALONE_S / 2)
        alone, alone_s = alone + more, alone_s + more_s
    finally:
        recorder.close()
        bare.close()
    assert proc.returncode == 0, err
    closing = next(line for line in reversed(err.splitlines()) if "notes," in line and "bars" in line)
    problem = lateness_problem(closing, jitter)
    assert problem is None, f"{synth}: {problem}"
    # the storm reached play: its controllers' counts in the quiet view's status lines (every 30 s)
    osc = max(map(int, re.findall(r"OSC 127\.0\.0\.1:\d+ (\d+) msgs", err)), default=0)
    knobs = max(map(int, re.findall(r"MIDI in .*? (\d+) msgs", err)), default=0)
    assert osc >= 10 * OSC_RATE and knobs >= 10 * MIDI_RATE, (osc, knobs, err[-2000:])
    x, _ = recorder.audio()
    assert np.abs(x).max() > 0.01, "the recorder heard nothing"
    problem = xrun_problem(during, during_s, alone, alone_s)
    assert problem is None, f"{synth}: {problem}; {closing}"


# play with the numpy synth told that notes need no lead: the engine hands them over too late by design
NO_LEAD = ("import runpy, sys; import instrument.outputs as o; o.lead_of = lambda out: 0.0; "
           "import instrument.live.engine as e; e.lead_of = o.lead_of; "
           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.mark.realtime
def test_notes_handed_to_the_numpy_synth_without_its_lead_fail_the_lateness_check(jack_256):
    env = dict(os.environ, JACK_DEFAULT_SERVER=jack_256, PYTHONUNBUFFERED="1")
    with machine_jitter() as jitter:
        proc = subprocess.run([sys.executable, "-c", NO_LEAD, str(ROOT / "run.py"), "play", *QUIET, "--no-web",
                               "--synth", "numpy", "--midi-out", "none", "--seconds", "15", "--tempo", "200",
                               "--seed", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    closing = next(line for line in reversed(proc.stderr.splitlines()) if "notes," in line and "bars" in line)
    assert lateness_problem(closing, jitter) is not None, closing
