"""MIDI input over a real JACK server: a keyboard client connected to our input port moves
knobs, plays the keyboard stimulation, bends, toggles hold, learns a knob, changes program."""

from __future__ import annotations

import argparse
import socket
import subprocess

import pytest
import rtmidi
from pythonosc.osc_message_builder import OscMessageBuilder

from controllers.midi_in import DEFAULT_PORT
from controllers.rig import Controllers, add_controller_arguments
from instrument.errors import UsageError
from instrument.live.params import ParamError, Parameters
from tests.helpers import ROOT
from tests.midi_helpers import realtime_jack_server, realtime_jack_threads, wait_for

CC, NOTE_ON, NOTE_OFF, BEND, PROGRAM = 0xB0, 0x90, 0x80, 0xE0, 0xC0


@pytest.fixture(scope="module")
def jack(jack_server):
    with realtime_jack_server():
        yield jack_server


@pytest.fixture
def rig(jack):
    params = Parameters()
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    args = parser.parse_args(["--patch", str(ROOT / "patches" / "default.yaml"), "--osc-port", "0", "--no-myo",
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
    send([CC, 1, 127])  # CC 1 -> temperature 0.2..2.0
    send([CC | 3, 4, 0])  # CC 4 on channel 4 -> tempo 60..200 (the patch listens on any channel)
    send([BEND, 0, 0])  # pitch bend fully down -> bias.rests -5
    send([CC, 64, 127])  # sustain pedal down: hold on
    send([CC, 64, 0])  # up: nothing
    assert wait_for(lambda: params.target("bias.rests") == pytest.approx(-5.0) and params.target("hold") is True, timeout=3)
    assert params.target("temperature") == pytest.approx(2.0)
    assert params.target("tempo") == pytest.approx(60.0)
    assert params.source("temperature") == "MIDI CC 1 ch 1"
    send([BEND, 0x7F, 0x7F])
    send([CC, 64, 127])  # pedal again: hold off
    send([CC, 1, 0])
    assert wait_for(lambda: params.target("hold") is False and params.target("temperature") == pytest.approx(0.2), timeout=3)
    assert params.target("bias.rests") == pytest.approx(5.0)
    assert controllers.midi.reporter.ignored == 0
    assert any(line.startswith(f"MIDI in '{DEFAULT_PORT}' (JACK)") for line in controllers.status())


def test_held_keys_are_the_stimulation(rig):
    params, controllers, send = rig
    send([NOTE_ON, 60, 100])
    send([NOTE_ON, 64, 90])
    assert wait_for(lambda: params.target("stimulation.keys") == (60, 64), timeout=3)
    assert params.target("stimulation.weight") == pytest.approx(0.4)  # the patch's keys: weight
    assert params.target("stimulation.source") == "keys"
    send([NOTE_OFF, 60, 0])
    assert wait_for(lambda: params.target("stimulation.keys") == (64,), timeout=3)
    assert params.target("stimulation.weight") == pytest.approx(0.4)
    send([NOTE_ON, 64, 0])  # note on with velocity 0 is a release
    assert wait_for(lambda: params.target("stimulation.keys") == (), timeout=3)
    assert params.target("stimulation.weight") == 0.0


def test_midi_learn_maps_the_next_knob(rig):
    params, controllers, send = rig
    with pytest.raises(ParamError):
        controllers.learn("tune.new")  # a trigger: no knob moves it
    assert "swing" in controllers.learn("swing")
    send([CC | 1, 20, 127])  # CC 20 on channel 2, not in the patch
    assert wait_for(lambda: params.target("swing") == 1.0, timeout=3)
    assert controllers.midi.learned == ["- {source: {midi: {cc: 20, channel: 2}}, target: swing}"]
    assert controllers.midi.learning is None
    send([CC | 1, 20, 0])
    assert wait_for(lambda: params.target("swing") == 0.0, timeout=3)
    send([CC, 20, 127])  # the same number on another channel is another knob
    send([CC, 2, 127])  # and the patch's own knobs still work
    assert wait_for(lambda: params.target("stimulation.weight") == 1.0, timeout=3)
    assert params.target("swing") == 0.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as osc:  # learn armed over OSC
        message = OscMessageBuilder("/midi/learn")
        message.add_arg("accent")
        osc.sendto(message.build().dgram, ("127.0.0.1", controllers.osc.port))
        assert wait_for(lambda: controllers.midi.learning == "accent", timeout=3)
    send([CC, 2, 0])  # a knob of the patch, now learned for accent instead
    assert wait_for(lambda: params.target("accent") == 0.0, timeout=3)
    assert params.target("stimulation.weight") == 1.0


def test_program_change_switches_patch(rig):
    params, controllers, send = rig
    send([PROGRAM, 1])  # default.yaml: programs 1 -> myo-lobotomy.yaml
    assert wait_for(lambda: controllers.patch.name == "myo lobotomy", timeout=3)
    assert params.target("ablation.set") == "periodic"  # its start state
    send([PROGRAM, 99])  # no such entry: ignored
    send([PROGRAM, 0])  # myo-lobotomy.yaml: 0 -> default.yaml
    assert wait_for(lambda: controllers.patch.name == "default", timeout=3)
    assert controllers.midi.reporter.ignored == 1


def test_a_missing_named_port_is_one_line(jack):
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    args = parser.parse_args(["--no-osc", "--no-myo", "--midi-in", "no such keyboard", "--midi-in-api", "jack"])
    with pytest.raises(UsageError, match="--midi-in no such keyboard: no MIDI output port matches"):
        Controllers.open(Parameters(), args)
