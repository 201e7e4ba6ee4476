"""Gesture control: a recorded Myo Mapper stream replayed with ``run.py gestures replay`` into a
rig playing myo-lobotomy.yaml, the EMG envelope, recording, and the synthetic stream."""

from __future__ import annotations

import argparse
import json
import math
import socket
import threading

import pytest

from controllers import gestures
from controllers.myo import EmgEnvelope
from controllers.rig import Controllers, add_controller_arguments
from instrument.live.params import Parameters
from tests.helpers import ROOT, run_cli
from bench.harness.midi import wait_for
from bench.harness.net import free_udp_port


def stream() -> list[dict]:
    """1.2 s at 50 Hz as Myo Mapper sends it: the arm rises and falls (pitch 0 -> 1 -> 0), the
    muscles tense in the middle, and a fist, a spread hand and a double tap, each then rest."""
    events = [{"t": 0.0, "address": "/myo1/pose", "args": ["rest"]}]
    poses = {10: "fist", 14: "rest", 30: "fingersSpread", 34: "rest", 50: "doubleTap", 54: "rest"}
    for n in range(60):
        t = n / 50
        pitch = 1 - abs(n - 30) / 30
        tense = 0.6 if 18 <= n < 42 else 0.02
        events.append({"t": t, "address": "/myo1/orientation/scaled", "args": [0.5, pitch, 0.5]})
        events.append({"t": t, "address": "/myo1/emg/scaled/abs", "args": [tense] * 8})
        events.append({"t": t, "address": "/myo1/emg/scaled/abs/mav", "args": [tense]})
        events.append({"t": t, "address": "/myo1/acceleration/scaled", "args": [0.1, 0.2, 0.3]})
        if n in poses:
            events.append({"t": t, "address": "/myo1/pose", "args": [poses[n]]})
    return events


def open_rig(params: Parameters, *argv: str) -> Controllers:
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    return Controllers.open(params, parser.parse_args(list(argv)))


def history(params: Parameters, *names: str) -> dict[str, list]:
    seen: dict[str, list] = {name: [] for name in names}
    params.listeners.append(lambda change: seen[change.name].append(change.value) if change.name in seen else None)
    return seen


def test_recorded_stream_replayed_plays_the_lobotomy_patch_both_ways(tmp_path):
    recording = tmp_path / "take.jsonl"
    recording.write_text("".join(json.dumps(e) + "\n" for e in stream()))
    params = Parameters()
    rig = open_rig(params, "--patch", str(ROOT / "patches" / "myo-lobotomy.yaml"), "--no-osc", "--midi-in", "none",
                   "--myo-port", "0")
    try:
        assert params.target("ablation.set") == "periodic" and params.target("ablation.layer") == 3
        seen = history(params, "ablation.depth", "stimulation.weight", "hold")
        result = run_cli("gestures", "replay", str(recording), "--port", str(rig.myo.port), timeout=30)
        assert result.returncode == 0, result.stderr
        assert f"sent {len(stream())} messages" in result.stderr
        assert wait_for(lambda: rig.myo.reporter.received >= len(stream()), timeout=3)
        depth, weight = seen["ablation.depth"], seen["stimulation.weight"]
        top = depth.index(max(depth))
        assert max(depth) > 0.9 and min(depth[top:]) < 0.1 and depth[0] < 0.1, depth
        peak = weight.index(max(weight))
        assert 0.45 < max(weight) <= 0.6 and weight[0] < 0.05 and min(weight[peak:]) < 0.1, weight
        assert seen["hold"] == [True]  # fist toggled hold once (rest in between is no press)
        assert params.fired("tune.new") == 1 and params.fired("panic") == 1
        assert rig.myo.reporter.ignored == 0
        assert any(line.startswith("Myo 127.0.0.1:") and "pose rest" in line for line in rig.status())
        assert any(source == "Myo" and "ablation.depth" in what for _, source, what in rig.activity)
    finally:
        rig.close()


def test_emg_envelope_is_a_one_pole_filter_in_real_time():
    envelope = EmgEnvelope(0.1)
    envelope.update(0.0, 0.0)
    assert envelope.update(1.0, 0.1) == pytest.approx(1 - math.exp(-1))
    steps = EmgEnvelope(0.1)  # the same time in ten steps gives the same value
    steps.update(0.0, 0.0)
    for i in range(1, 11):
        value = steps.update(1.0, i * 0.01)
    assert value == pytest.approx(1 - math.exp(-1))


def test_bad_myo_messages_are_counted_and_ignored(tmp_path):
    params = Parameters()
    rig = open_rig(params, "--patch", str(ROOT / "patches" / "myo-lobotomy.yaml"), "--no-osc", "--midi-in", "none",
                   "--myo-port", "0")
    try:
        myo = rig.myo
        myo.handle("/myo1/orientation/scaled", [0.5, "up", 0.5])
        myo.handle("/myo1/emg/scaled/abs", [0.1] * 7)
        myo.handle("/myo1/pose", [3])
        myo.handle("/myo1/orientation/scaled", [0.5, float("nan"), 0.5])
        myo.handle("/somewhere/else", [1.0])
        assert myo.reporter.ignored == 5
        myo.handle("/myo1/orientation/scaled", [0.5, 0.4, 0.5])
        assert params.target("ablation.depth") == pytest.approx(0.4)
    finally:
        rig.close()


def test_record_then_load_keeps_messages_and_timing(tmp_path):
    path, port, stop, ready = tmp_path / "rec.jsonl", free_udp_port(), threading.Event(), threading.Event()
    counted = []
    thread = threading.Thread(target=lambda: counted.append(gestures.record(path, port=port, stop=stop, ready=ready)))
    thread.start()
    try:
        events = [(0.0, "/myo1/pose", ["fist"]), (0.1, "/myo1/orientation/scaled", [0.25, 0.5, 0.75]),
                  (0.3, "/myo1/emg/scaled/abs/mav", [0.125])]
        assert ready.wait(2)
        assert gestures.send(events, port=port) == 3
        assert wait_for(lambda: len(path.read_text().splitlines()) == 3, timeout=2)
    finally:
        stop.set()
        thread.join(3)
    assert counted == [3]
    loaded = gestures.load(path)
    assert [(a, args) for _, a, args in loaded] == [(a, args) for _, a, args in events]
    assert loaded[2][0] == pytest.approx(0.3, abs=0.05)


def test_a_broken_recording_is_one_line_with_its_line_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"t": 0, "address": "/myo1/pose", "args": ["fist"]}\nnot json\n')
    result = run_cli("gestures", "replay", str(path), "--port", str(free_udp_port()))
    assert result.returncode == 2
    assert f"{path}:2: not a recorded message" in result.stderr and "Traceback" not in result.stderr


def test_synthetic_stream_moves_the_instrument(tmp_path):
    events = list(gestures.synthetic(12.0, seed=3))
    addresses = {a for _, a, _ in events}
    assert {"/myo1/orientation/scaled", "/myo1/emg/scaled/abs", "/myo1/pose"} <= addresses
    poses = [args[0] for _, a, args in events if a == "/myo1/pose"]
    assert len(set(poses)) >= 2 and all(-0.01 <= v <= 1.01 for _, a, args in events if a != "/myo1/pose" for v in args)
    params = Parameters()
    rig = open_rig(params, "--patch", str(ROOT / "patches" / "myo-lobotomy.yaml"), "--no-osc", "--midi-in", "none",
                   "--myo-port", "0", "--gestures", "synthetic")
    try:
        assert wait_for(lambda: rig.myo.reporter.received > 40 and params.target("ablation.depth") > 0, timeout=3)
        assert rig.myo.reporter.ignored == 0
        assert any("Gestures: feeding synthetic" in line for line in rig.status())
    finally:
        rig.close()


def test_synthetic_command_sends_for_the_seconds_asked():
    port = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", port))
        result = run_cli("gestures", "synthetic", "--seconds", "0.3", "--port", str(port), "--seed", "1")
        assert result.returncode == 0, result.stderr
        assert f"sent {len(list(gestures.synthetic(0.3, seed=1)))} messages to 127.0.0.1:{port}" in result.stderr
        sink.settimeout(1)
        assert sink.recv(65536).startswith(b"/myo1/")
