"""A running ``play`` steered from outside, as a performer's rig does: OSC /state and /temperature
and a flood of malformed packets on loopback, a Myo Mapper stream moving the lobotomy patch's
parameters both ways, and a broken patch refused with its line."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time

from pythonosc.osc_message_builder import OscMessageBuilder

from tests.helpers import ROOT, run_cli


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(address: str, *args) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


class Player:
    """``run.py play`` in a subprocess with its OSC and Myo ports, and a UDP socket to talk to it."""

    def __init__(self, checkpoint, patch: str, tmp_path):
        self.osc, self.myo = free_port(), free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "play", "--model", str(checkpoint), "--patch", str(ROOT / "patches" / patch),
             "--no-audio", "--midi-out", "none", "--midi-in", "none", "--quiet", "--osc-port", str(self.osc),
             "--myo-port", str(self.myo), "--record", str(tmp_path / "take.mid"), "--tempo", "200"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        deadline = time.monotonic() + 60
        while self.state() is None:
            assert self.proc.poll() is None, self.proc.stderr.read()
            assert time.monotonic() < deadline, "play never answered /state"

    def send(self, data: bytes, port: int | None = None) -> None:
        self.sock.sendto(data, ("127.0.0.1", port or self.osc))

    def state(self) -> dict | None:
        """Ask /state and decode the one reply: an OSC message /state with a JSON string."""
        self.send(message("/state"))
        try:
            data, _ = self.sock.recvfrom(65536)
        except socket.timeout:
            return None
        assert data.startswith(b"/state\x00")
        text = data[data.index(b",s\x00\x00") + 4:].split(b"\x00")[0]
        return json.loads(text)

    def wait_for(self, condition, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state is not None and condition(state):
                return state
            assert time.monotonic() < deadline, f"state never matched: {state}"
            time.sleep(0.05)

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        self.sock.close()
        assert self.proc.returncode == 0, err
        return err


def test_osc_state_temperature_and_a_flood_of_malformed_packets(tmp_path, plain_checkpoint):
    player = Player(plain_checkpoint, "default.yaml", tmp_path)
    try:
        state = player.state()
        assert state["temperature"] == 1.0
        assert state["status"]["step"]["backend"] in ("fast", "torch") and state["status"]["step"]["precision"]
        assert any(line.startswith("OSC ") for line in state["status"]["controllers"])
        player.send(message("/temperature", 0.5))
        player.wait_for(lambda s: s["temperature"] == 0.5)
        rng = random.Random(7)
        valid = message("/temperature", 0.7)
        for i in range(3000):
            kind = i % 5
            if kind == 0:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
            elif kind == 1:
                data = valid[: rng.randint(1, len(valid) - 1)]  # truncated
            elif kind == 2:
                data = b"/temperature\x00\x00\x00\x00,q\x00\x00" + bytes(4)  # unknown type tag
            elif kind == 3:
                data = message("/no/such/" + str(i), 1.0)
            else:
                data = message("/temperature", "hot")  # wrong type
            player.send(data)
        # UDP may drop what overflowed the socket's buffer during the flood: send until it lands
        state = player.wait_for(lambda s: player.send(message("/temperature", 1.25)) or s["temperature"] == 1.25)
        assert state["tempo"] == 200.0
        player.send(message("/temperature", 99.0))  # out of range: clamped
        player.wait_for(lambda s: s["temperature"] == 4.0)
    finally:
        err = player.stop()
    assert "SIGTERM" in err
    assert len(err.splitlines()) < 80  # the flood is summarised, not logged line by line


def test_myo_orientation_and_emg_move_the_lobotomy_patch_both_ways(tmp_path, plain_checkpoint):
    player = Player(plain_checkpoint, "myo-lobotomy.yaml", tmp_path)
    try:
        state = player.state()
        assert state["ablation.set"] == "periodic" and state["ablation.depth"] == 0.0

        def arm(pitch: float, tension: float, frames: int = 20) -> None:
            for _ in range(frames):
                player.send(message("/myo1/orientation/scaled", 0.5, pitch, 0.5), player.myo)
                player.send(message("/myo1/emg/scaled/abs", *([tension] * 8)), player.myo)
                player.send(message("/myo1/emg/scaled/abs/mav", tension), player.myo)
                time.sleep(0.02)

        arm(0.9, 0.6)
        player.wait_for(lambda s: s["ablation.depth"] > 0.7 and s["stimulation.weight"] > 0.3)
        arm(0.1, 0.02, frames=40)
        player.wait_for(lambda s: s["ablation.depth"] < 0.2 and s["stimulation.weight"] < 0.1)
    finally:
        player.stop()


def test_a_broken_patch_is_refused_with_its_line(tmp_path, plain_checkpoint):
    patch = tmp_path / "broken.yaml"
    patch.write_text("name: broken\nmappings:\n  - source: {osc: /1/fader1}\n    target: no.such.parameter\n")
    result = run_cli("play", "--model", str(plain_checkpoint), "--patch", str(patch), "--no-audio", "--midi-out", "none",
                     "--midi-in", "none", "--no-osc", "--no-myo", "--quiet", "--bars", "1")
    assert result.returncode == 2
    assert "broken.yaml:4" in result.stderr and "target" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
