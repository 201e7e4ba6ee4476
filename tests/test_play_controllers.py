"""A running ``play`` steered from outside, as a performer's rig does: OSC /state and /temperature
and a flood of malformed packets on loopback, a Myo Mapper stream moving the lobotomy patch's
parameters both ways, and a broken patch refused with its line."""

from __future__ import annotations

import random
import time

from tests.helpers import run_cli
from bench.harness.osc import osc_message
from tests.player import Player


def test_osc_state_temperature_and_a_flood_of_malformed_packets(tmp_path, plain_checkpoint):
    player = Player(plain_checkpoint, "default.yaml", tmp_path)
    try:
        state = player.state()
        assert state["temperature"] == 1.0
        assert state["status"]["step"]["backend"] in ("fast", "torch") and state["status"]["step"]["precision"]
        assert any(line.startswith("OSC ") for line in state["status"]["controllers"])
        player.send(osc_message("/temperature", 0.5))
        player.wait_for(lambda s: s["temperature"] == 0.5)
        rng = random.Random(7)
        valid = osc_message("/temperature", 0.7)
        for i in range(3000):
            kind = i % 5
            if kind == 0:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
            elif kind == 1:
                data = valid[: rng.randint(1, len(valid) - 1)]  # truncated
            elif kind == 2:
                data = b"/temperature\x00\x00\x00\x00,q\x00\x00" + bytes(4)  # unknown type tag
            elif kind == 3:
                data = osc_message("/no/such/" + str(i), 1.0)
            else:
                data = osc_message("/temperature", "hot")  # wrong type
            player.send(data)
        # UDP may drop what overflowed the socket's buffer during the flood: send until it lands
        state = player.wait_for(lambda s: player.send(osc_message("/temperature", 1.25)) or s["temperature"] == 1.25)
        assert state["tempo"] == 200.0
        player.send(osc_message("/temperature", 99.0))  # out of range: clamped
        player.wait_for(lambda s: s["temperature"] == 4.0)
    finally:
        err = player.stop()
    assert "SIGTERM" in err
    assert len(err.splitlines()) < 80  # the flood is summarised, not logged line by line


def test_myo_orientation_and_emg_move_the_lobotomy_patch_both_ways(tmp_path, lobotomy_checkpoint):
    player = Player(lobotomy_checkpoint, "myo-lobotomy.yaml", tmp_path)
    try:
        state = player.state()
        assert state["ablation.set"] == "periodic" and state["ablation.depth"] == 0.0

        def arm(pitch: float, tension: float, frames: int = 20) -> None:
            for _ in range(frames):
                player.send(osc_message("/myo1/orientation/scaled", 0.5, pitch, 0.5), player.myo)
                player.send(osc_message("/myo1/emg/scaled/abs", *([tension] * 8)), player.myo)
                player.send(osc_message("/myo1/emg/scaled/abs/mav", tension), player.myo)
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
