"""``run.py play`` in a subprocess, steered and read over OSC on loopback as a performer's rig
does: shared by the tests that play the whole instrument (controllers, the web page)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from pythonosc.osc_message_builder import OscMessageBuilder

from tests.helpers import ROOT


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

    def __init__(self, checkpoint, patch: str, tmp_path, *extra: str):
        """``checkpoint`` None: the shipped model; ``extra``: more options for play."""
        self.osc, self.myo = free_port(), free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        model = ["--model", str(checkpoint)] if checkpoint else []
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "play", *model, "--patch", str(ROOT / "patches" / patch),
             "--no-audio", "--midi-out", "none", "--midi-in", "none", "--quiet", "--osc-port", str(self.osc),
             "--myo-port", str(self.myo), "--record", str(tmp_path / "take.mid"), "--tempo", "200", *extra],
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
