"""MIDI input over a real JACK server: a keyboard client connected to our input port moves
knobs, plays the keyboard stimulation, bends, toggles hold, learns a knob, changes program."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import rtmidi
from pythonosc.osc_message import OscMessage

from controllers.midi_in import DEFAULT_PORT
from controllers.rig import Controllers, add_controller_arguments
from instrument.errors import UsageError
from instrument.live.params import ParamError, Parameters
from instrument.midi.messages import BEND, CONTROL, NOTE_OFF, NOTE_ON, PROGRAM
from instrument.midi.input import MidiInputPort
from instrument.midi.ports import PRODUCT, abandon
from tests.helpers import ROOT
from tests.player import Lines
from bench.harness.jack_server import jack_ports, realtime_jack_server, start_jack, stop_jack
from bench.harness.wait import wait_for
from instrument.midi.ports import realtime_jack_threads
from bench.harness.osc import osc_message


@pytest.fixture(scope="module")
def jack(jack_server):
    with realtime_jack_server():
        yield jack_server


@pytest.fixture
def rig(jack):
    yield from _rig(ROOT / "patches" / "default.yaml")


def _rig(patch):
    """Controllers on ``patch`` with a MIDI input, and a keyboard client connected to it."""
    params = Parameters()
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    args = parser.parse_args(["--patch", str(patch), "--osc-port", "0", "--no-myo",
                              "--midi-in", "virtual", "--midi-in-api", "jack"])
    with realtime_jack_threads():
        controllers = Controllers.open(params, args)
    with realtime_jack_threads():
        keyboard = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="test-keyboard")
    keyboard.open_virtual_port("out")
    ours = [p for p in keyboard.get_ports() if DEFAULT_PORT in p]
    assert len(ours) == 1, keyboard.get_ports()
    subprocess.run(["jack_connect", "test-keyboard:out", ours[0]], check=True, capture_output=True, timeout=10)
    yield params, controllers, keyboard.send_message
    keyboard.close_port()
    keyboard.delete()
    controllers.close()


def test_knobs_bend_and_pedal_move_parameters(rig):
    params, controllers, send = rig
    send([CONTROL, 1, 127])  # CONTROL 1 -> temperature 0.2..2.0
    send([CONTROL | 3, 4, 0])  # CONTROL 4 on channel 4 -> tempo 60..200 (the patch listens on any channel)
    send([BEND, 0, 0])  # pitch bend fully down -> bias.rests -5
    send([CONTROL, 64, 127])  # sustain pedal down: hold on
    send([CONTROL, 64, 0])  # up: nothing
    wait_for(lambda: params.target("bias.rests") == pytest.approx(-5.0) and params.target("hold") is True, 10)
    assert params.target("temperature") == pytest.approx(2.0)
    assert params.target("tempo") == pytest.approx(60.0)
    assert params.source("temperature") == "MIDI CC 1 ch 1"
    send([BEND, 0x7F, 0x7F])
    send([CONTROL, 64, 127])  # pedal again: hold off
    send([CONTROL, 1, 0])
    wait_for(lambda: params.target("hold") is False and params.target("temperature") == pytest.approx(0.2), 10)
    assert params.target("bias.rests") == pytest.approx(5.0)
    assert controllers.midi.reporter.ignored == 0
    assert any(line.startswith(f"MIDI in '{DEFAULT_PORT}' (JACK)") for line in controllers.status())


def test_a_knob_flood_reaches_its_parameter_once_a_batch_and_every_pedal_press_counts(rig):
    """CC 1 moved 1,000 times as fast as JACK carries it: each batch the input reads applies its
    last value (the rest counted as superseded); CC 64 (an action: hold toggles) is never dropped."""
    params, controllers, send = rig
    moves: list[float] = []
    params.listen(lambda change: moves.append(change.value), "temperature")
    for i in range(1000):
        send([CONTROL, 1, i % 128])
        if i % 250 == 249:  # what rtmidi's input queue holds at once
            assert wait_for(lambda: controllers.midi.reporter.received >= i + 1, timeout=3, step=0.002)
    for value in (127, 0, 127, 0):  # the pedal pressed twice in the same moment: hold on, then off
        send([CONTROL, 64, value])
    send([CONTROL, 1, 127])
    assert wait_for(lambda: controllers.midi.reporter.received == 1005 and params.target("temperature") == pytest.approx(2.0),
                    timeout=3)
    assert params.target("hold") is False and params.source("hold") == "MIDI CC 64 ch 1"
    midi = controllers.midi.reporter
    assert midi.ignored == 0 and len(moves) + midi.superseded == 1001, (len(moves), midi.superseded)
    assert midi.superseded > 0


def test_held_keys_are_the_stimulation(rig):
    params, controllers, send = rig
    send([NOTE_ON, 60, 100])
    send([NOTE_ON, 64, 90])
    wait_for(lambda: params.target("stimulation.keys") == (60, 64), 10)
    assert params.target("stimulation.weight") == pytest.approx(0.4)  # the patch's keys: weight
    assert params.target("stimulation.source") == "keys"
    send([NOTE_OFF, 60, 0])
    wait_for(lambda: params.target("stimulation.keys") == (64,), 10)
    assert params.target("stimulation.weight") == pytest.approx(0.4)
    send([NOTE_ON, 64, 0])  # note on with velocity 0 is a release
    wait_for(lambda: params.target("stimulation.keys") == (), 10)
    assert params.target("stimulation.weight") == 0.0


def test_midi_learn_maps_the_next_knob(rig):
    params, controllers, send = rig
    with pytest.raises(ParamError):
        controllers.learn("tune.new")  # a trigger: no knob moves it
    assert "swing" in controllers.learn("swing")
    send([CONTROL | 1, 20, 127])  # CONTROL 20 on channel 2, not in the patch
    wait_for(lambda: params.target("swing") == 1.0, 10)
    assert controllers.midi.learned == ["- {source: {midi: {cc: 20, channel: 2}}, target: swing}"]
    assert controllers.midi.learning is None
    send([CONTROL | 1, 20, 0])
    wait_for(lambda: params.target("swing") == 0.0, 10)
    send([CONTROL, 20, 127])  # the same number on another channel is another knob
    send([CONTROL, 2, 127])  # and the patch's own knobs still work
    wait_for(lambda: params.target("stimulation.weight") == 1.0, 10)
    assert params.target("swing") == 0.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as osc:  # learn armed over OSC
        osc.sendto(osc_message("/midi/learn", "accent"), ("127.0.0.1", controllers.osc.port))
        wait_for(lambda: controllers.midi.learning == "accent", 10)
    send([CONTROL, 2, 0])  # a knob of the patch, now learned for accent instead
    wait_for(lambda: params.target("accent") == 0.0, 10)
    assert params.target("stimulation.weight") == 1.0


def test_program_change_switches_patch(rig):
    params, controllers, send = rig
    send([PROGRAM, 1])  # default.yaml: programs 1 -> myo-lobotomy.yaml
    wait_for(lambda: controllers.patch.name == "myo lobotomy", 10)
    assert params.target("ablation.set") == "periodic"  # its start state
    send([PROGRAM, 99])  # no such entry: ignored
    send([PROGRAM, 0])  # myo-lobotomy.yaml: 0 -> default.yaml
    wait_for(lambda: controllers.patch.name == "default", 10)
    assert controllers.midi.reporter.ignored == 1


SECRETS = {  # files a patch's programs: may name that are no patch, each holding a line nobody may see
    "plain.yaml": "root:x:0:0:SECRET-PLAIN:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin\n",
    "mapping.yaml": "password: SECRET-MAPPING\napi_key: SECRET-KEY\n",
    "broken.yaml": "token: 'SECRET-BROKEN\n  more: [\n",
}


def test_a_program_change_to_a_file_that_is_no_patch_names_it_and_never_shows_its_text(jack, tmp_path):
    """``programs: {1: /etc/passwd}`` used to pass ``patch check``; a program change then read the
    file and put its first line in the log and in /state. A program names a .yaml patch (checked
    when the patch is read), and whatever a named file holds, no message quotes it."""
    for name, text in SECRETS.items():
        (tmp_path / name).write_text(text)
    patch = tmp_path / "patch.yaml"
    patch.write_text("name: p\nprograms: {1: plain.yaml, 2: mapping.yaml, 3: broken.yaml}\n")
    passwd = tmp_path / "passwd.yaml"
    passwd.write_text("name: q\nprograms: {1: /etc/passwd}\n")
    checked = subprocess.run([sys.executable, str(ROOT / "run.py"), "patch", "check", str(passwd)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 2 and "programs.1: '/etc/passwd' is not a patch file" in checked.stderr, checked.stderr
    assert "root:" not in checked.stderr
    rig = _rig(patch)
    params, controllers, send = next(rig)
    try:
        for number, name in enumerate(SECRETS, 1):
            rejected = controllers.watcher.rejected
            send([PROGRAM, number])
            wait_for(lambda: controllers.watcher.rejected == rejected + 1, 30, what=lambda: name)
            error = controllers.watcher.last_error
            assert str(tmp_path / name) in error, error  # the file is named, and what is wrong with it
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as osc:  # what any /state reader sees
                osc.settimeout(5)
                osc.sendto(osc_message("/state"), ("127.0.0.1", controllers.osc.port))
                state = OscMessage(osc.recv(65536)).params[0]
            for shown in (error, "\n".join(controllers.status()), state):
                assert "SECRET" not in shown and "root:" not in shown and "daemon" not in shown, shown
            assert controllers.patch.name == "p"  # the patch played on
    finally:
        next(rig, None)


def test_a_missing_named_port_is_one_line(jack):
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    args = parser.parse_args(["--no-osc", "--no-myo", "--midi-in", "no such keyboard", "--midi-in-api", "jack"])
    with pytest.raises(UsageError, match="--midi-in no such keyboard: no MIDI output port matches"):
        Controllers.open(Parameters(), args)


def test_a_malformed_message_is_counted_and_ignored_and_the_keyboard_plays_on(rig):
    """A data byte over 127 (a junk byte, a broken cable) used to put note 200 among the held keys,
    after which every key was refused; a junk program change was logged as 'program change 237'."""
    params, controllers, send = rig
    send([NOTE_ON, 62, 200])  # a velocity byte over 127
    send([NOTE_ON, 200, 100])  # a note number over 127
    send([PROGRAM, 237])
    send([NOTE_ON, 60])  # a data byte short
    send([NOTE_ON, 64, 90])  # and then a well-formed key
    wait_for(lambda: params.target("stimulation.keys") == (64,), 10, what=lambda: params.target("stimulation.keys"))
    midi = controllers.midi
    assert midi.input.bad == 4 and midi.reporter.ignored == 4 and midi.reporter.received == 5
    assert controllers.patch.name == "default"  # no program change happened
    send([NOTE_OFF, 64, 0])
    wait_for(lambda: params.target("stimulation.keys") == (), 10)
    assert "6 msgs, 4 ignored" in midi.status()


def state_over_osc(port: int) -> dict:
    """What ``/state`` answers a sender on this machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.sendto(osc_message("/state"), ("127.0.0.1", port))
        return json.loads(OscMessage(sock.recv(65536)).params[0])


def sent_until(keyboard, message: list[int], heard) -> None:
    """Send ``message`` every 0.1 s until ``heard()``, as a knob turned keeps sending: a connection
    just made takes effect at the server's next graph change, so a single message may go out before."""
    def sent() -> bool:
        keyboard.send_message(message)
        return bool(heard())

    wait_for(sent, 10, f"{message} heard", step=0.1)


@pytest.mark.realtime
def test_midi_in_knows_when_each_message_arrived_though_it_reads_them_later(jack):
    """Read every 20 ms, 60 notes sent 37 ms apart keep their spacing to within a JACK period or
    so (the poll's times are off by up to 20 ms), each placed after its send and before it was
    read: a musician's timing is kept. The worst is bounded by how long each send took (the
    sender shares this process's GIL) and the machine's own stalls near it, measured in the same run."""
    from bench.harness.musician import MidiMusician
    from instrument.timing import clock
    from tests.timing import machine_jitter

    heard: list[tuple[float, float]] = []  # (arrival, when read)
    player = MidiMusician("timed-keyboard")
    port = None
    try:
        port = MidiInputPort("timed-keyboard", "jack", "timed in", lambda message, delta: heard.append((port.arrived, clock())),
                             poll_s=0.02)
        t0 = clock() + 0.3
        with machine_jitter() as jitter:
            player.play([(t0 + i * 0.037, "on", 60 + i % 12, 80) for i in range(60)])
            wait_for(lambda: len(heard) == 60, 10, "every note read")
    finally:
        if port is not None:
            port.close()
        player.close()
    sent, within = [t for t, _, _ in player.sent], player.sent_within  # each send lies in [t, t + within]
    assert all(s - 0.0005 <= arrived <= read for (arrived, read), s in zip(heard, sent))
    errors = [abs((a2 - a1) - (s2 - s1)) for (a1, _), (a2, _), s1, s2 in zip(heard, heard[1:], sent, sent[1:])]
    slack = [w1 + w2 + 2 * jitter.near(s1 - 0.005, max(a2, s2))
             for w1, w2, (_, _), (a2, _), s1, s2 in zip(within, within[1:], heard, heard[1:], sent, sent[1:])]
    spacing = sorted(errors)
    polled = sorted(abs((r2 - r1) - (s2 - s1)) for (_, r1), (_, r2), s1, s2 in zip(heard, heard[1:], sent, sent[1:]))
    worse = [(e, sl) for e, sl in zip(errors, slack) if e > 0.004 + sl]
    assert spacing[len(spacing) // 2] <= 0.001 and not worse, \
        f"spacing off by p50 {spacing[len(spacing) // 2] * 1e3:.2f} ms; beyond 4 ms and the stalls near: {worse[:3]}; {jitter}"
    assert polled[len(polled) // 2] >= 0.002, "the check can fail: the reading times' spacing is this far off"


@pytest.mark.serial  # starts and stops a JACK server of its own
def test_midi_in_comes_back_after_a_jack_server_restart(monkeypatch):
    """The server dies under our input port: the status (the view's and /state's) says so, the port
    comes back on the new server, a keyboard connected then moves a knob, and closing afterwards
    does not crash (it segfaulted in close_port: exit 139)."""
    name = f"folk-instrument-midi-in-restart-{os.getpid()}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    server = start_jack(name)
    params = Parameters()
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    args = parser.parse_args(["--patch", str(ROOT / "patches" / "default.yaml"), "--osc-port", "0", "--no-myo",
                              "--midi-in", "virtual", "--midi-in-api", "jack"])
    controllers = Controllers.open(params, args)
    controllers.publish_status(dict)
    controllers.midi.input.watch_s = 0.1
    midi_in_line = lambda: [line for line in state_over_osc(controllers.osc.port)["status"]["controllers"]  # noqa: E731
                            if line.startswith("MIDI in")]
    try:
        stop_jack(server)
        wait_for(lambda: controllers.midi.lost == "the JACK server stopped", 10)
        assert any("LOST (the JACK server stopped" in line for line in controllers.status())
        assert "LOST (the JACK server stopped" in midi_in_line()[0]
        server = start_jack(name)
        wait_for(lambda: controllers.midi.lost is None, 10)
        assert controllers.midi.input.reconnects == 1
        assert "LOST" not in midi_in_line()[0]
        with realtime_jack_threads():
            keyboard = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="test-keyboard")
        keyboard.open_virtual_port("out")
        try:
            ours = [p for p in keyboard.get_ports() if DEFAULT_PORT in p]
            subprocess.run(["jack_connect", "test-keyboard:out", ours[0]], check=True, capture_output=True, timeout=10)
            sent_until(keyboard, [CONTROL, 1, 127], lambda: params.target("temperature") == pytest.approx(2.0))
        finally:
            keyboard.close_port()
            keyboard.delete()
        stop_jack(server)  # and once more, then close with the server gone
        wait_for(lambda: controllers.midi.lost is not None, 10)
    finally:
        controllers.close()
        stop_jack(server)


@pytest.mark.serial  # starts and stops a JACK server of its own
def test_a_named_midi_input_follows_its_keyboard_across_a_jack_restart(monkeypatch):
    """``--midi-in NAME`` on a server that restarts: our input comes back before the keyboard's port
    does, waits for it (no virtual stand-in, which rtmidi would never let connect), and hears the
    keyboard once it is back."""
    name = f"folk-instrument-midi-in-named-{os.getpid()}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    server = start_jack(name)
    heard, keyboard, port = [], None, None

    def open_keyboard():
        with realtime_jack_threads():
            out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="test-keyboard")
        out.open_virtual_port("out")
        return out

    try:
        keyboard = open_keyboard()
        port = MidiInputPort("test-keyboard", "jack", "named in", lambda message, delta: heard.append(list(message)),
                             watch_s=0.1)
        assert port.status() == "'test-keyboard:out' (JACK)"
        sent_until(keyboard, [CONTROL, 1, 10], lambda: heard[-1:] == [[CONTROL, 1, 10]])
        assert all(m == [CONTROL, 1, 10] for m in heard), heard
        stop_jack(server)
        abandon(keyboard)  # its client died with the server
        keyboard = None
        wait_for(lambda: port.lost == "the JACK server stopped", 10)
        server = start_jack(name)
        wait_for(lambda: port.lost == "port 'test-keyboard:out' is gone", 10)
        keyboard = open_keyboard()
        wait_for(lambda: port.lost is None, 10)
        sent_until(keyboard, [CONTROL, 1, 20], lambda: heard[-1:] == [[CONTROL, 1, 20]])
        assert port.reconnects == 1
    finally:
        if port is not None:
            port.close()
        if keyboard is not None:
            keyboard.close_port()
            keyboard.delete()
        stop_jack(server)


@pytest.mark.serial  # starts and stops a JACK server of its own
def test_play_survives_a_jack_restart_and_ends_cleanly_on_sigterm(tmp_path, small_checkpoint):
    """The whole instrument, with MIDI in and out on a server that is killed and started again:
    SIGTERM then ends it with exit code 0 (it crashed with 139 in close_port)."""
    name = f"folk-instrument-play-restart-{os.getpid()}"
    server = start_jack(name)
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "play", "--quiet", "--no-osc", "--no-myo",
                             "--model", str(small_checkpoint), "--midi-out", "virtual", "--midi-in", "virtual",
                             "--midi-api", "jack", "--no-audio", "--seed", "1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said = Lines(proc.stderr)
    try:
        both = lambda: DEFAULT_PORT in jack_ports(name) and f"{PRODUCT}:{PRODUCT}" in jack_ports(name)  # noqa: E731
        wait_for(lambda: both() or proc.poll() is not None, 60, lambda: f"MIDI in and out: {jack_ports(name)}; {said.lines[-20:]}")
        assert proc.poll() is None, said.text()
        stop_jack(server)
        # the input and the output notice (each checks every second) before the server is back
        stopped = lambda what: said.said(what, "the JACK server stopped")  # noqa: E731
        wait_for(lambda: stopped("MIDI in ") and stopped(f"MIDI {PRODUCT}:"), 30, lambda: f"both to notice: {said.lines[-20:]}")
        server = start_jack(name)
        wait_for(both, 30, lambda: f"MIDI in and out back: {said.lines[-20:]}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        stop_jack(server)
    err = said.text()
    assert proc.returncode == 0, err[-2000:]
    assert "MIDI in" in err and "the JACK server stopped" in err and "back" in err, err[-2000:]
